# `make serve` and `make test` work from a clean clone: each creates or refreshes .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve install uninstall test test-interop lint fuzz bench bench-store bench-smtp bench-imap bench-imaptest bench-pop3 bench-queue bench-importmail bench-scale clean venv

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,fast]'
	@touch $(STAMP)

venv: $(STAMP)

# ARGS: options for `mailcove serve`, e.g. ARGS='--listen smtp=*:2025' next to a running Sendmail.
serve: $(STAMP)
	$(BIN)/mailcove serve $(ARGS)

# `make install` (as root, docs/deploy.md): mailcove in its own venv under PREFIX, on PATH as
# BINDIR/mailcove and BINDIR/mailcove-sendmail for root and the service user, the systemd unit,
# the `mailcove` account (sysusers.d, or useradd without systemd-sysusers) and its directories.
# Needs nothing but the package registry pip is configured with. The venv is made from the
# system's Python 3.11+ (Rocky/RHEL 9: python3.11, as python3 is 3.9); a Python under /root
# (pyenv) would keep the service user from reading it. INSTALL_PYTHON=... picks another.
PREFIX ?= /opt/mailcove
BINDIR ?= /usr/local/bin
UNITDIR ?= /etc/systemd/system
INSTALL_PYTHON ?= $(firstword $(foreach p,/usr/bin/python3 /usr/bin/python3.13 /usr/bin/python3.12 /usr/bin/python3.11 \
	python3,$(shell $(p) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && command -v $(p))))

install:
	@test -n "$(INSTALL_PYTHON)" || { echo "make install: no Python 3.11 or newer found (Debian 12: apt install python3-venv; Rocky/RHEL 9: dnf install python3.11)" >&2; exit 1; }
	@test -x $(PREFIX)/bin/python || $(INSTALL_PYTHON) -m venv $(PREFIX)
	$(PREFIX)/bin/python -m pip install --quiet --upgrade '.[fast]'
	install -d $(BINDIR) $(UNITDIR) /etc/sysusers.d /etc/tmpfiles.d /etc/mailcove
	ln -sfn $(PREFIX)/bin/mailcove $(BINDIR)/mailcove
	ln -sfn $(PREFIX)/bin/mailcove-sendmail $(BINDIR)/mailcove-sendmail
	sed 's|^ExecStart=/usr/local/bin/mailcove |ExecStart=$(BINDIR)/mailcove |' contrib/systemd/mailcove.service > $(UNITDIR)/mailcove.service
	install -m 0644 contrib/sysusers.d/mailcove.conf /etc/sysusers.d/mailcove.conf
	install -m 0644 contrib/tmpfiles.d/mailcove.conf /etc/tmpfiles.d/mailcove.conf
	id mailcove >/dev/null 2>&1 || systemd-sysusers /etc/sysusers.d/mailcove.conf 2>/dev/null || \
		useradd --system --user-group --home-dir /var/lib/mailcove --shell /usr/sbin/nologin mailcove
	systemd-tmpfiles --create /etc/tmpfiles.d/mailcove.conf 2>/dev/null || install -d -m 0700 -o mailcove -g mailcove /var/lib/mailcove
	runuser -u mailcove -- $(BINDIR)/mailcove --version
	@echo "installed: $(BINDIR)/mailcove -> $(PREFIX); unit $(UNITDIR)/mailcove.service (systemctl daemon-reload)"

# Removes what `make install` put in place; the data dir, /etc/mailcove and the account stay
# (docs/deploy.md#uninstall).
uninstall:
	rm -f $(BINDIR)/mailcove $(BINDIR)/mailcove-sendmail $(UNITDIR)/mailcove.service \
		/etc/sysusers.d/mailcove.conf /etc/tmpfiles.d/mailcove.conf
	rm -rf $(PREFIX)

# `make test` runs everything but the suites that drive real peers and conformance programs, on
# TEST_WORKERS xdist workers (most tests wait on real servers, so more workers than cores pays);
# each test file runs whole on one worker (its module fixtures start once); modules that change the
# machine (Unix accounts, standard ports; marker host_state) take turns under one shared lock.
# `make test-interop` runs those suites (Dovecot, Postfix, imaptest, Thunderbird) one at a time.
# CI (.ci/run) runs both.
TEST_WORKERS ?= 4

test: lint
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not interop" $(PYTEST_ARGS)

test-interop: $(STAMP)
	$(BIN)/python -m pytest -q -m interop $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/vulture src/mailcove tools/vulture_whitelist.py --min-confidence 60

# Coverage-guided fuzzing of the SMTP, IMAP, POP3, HTTP and MIME parsers (docs/fuzzing.md): 10^5 inputs per
# target, one target at a time; FUZZ_ARGS="--target smtp --runs 1000" for a short run. Never run by CI.
FUZZ_ARGS ?= --runs 100000

fuzz: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,fast,fuzz]'
	$(BIN)/python -m fuzz $(FUZZ_ARGS)

# Benchmarks install their peers (Postfix, Dovecot) from Debian and need root; never run by CI.
bench: bench-store bench-smtp bench-imap bench-imaptest bench-pop3 bench-queue bench-importmail bench-scale

bench-store: $(STAMP)
	$(BIN)/python -m bench.store

bench-smtp bench-imap bench-imaptest bench-pop3 bench-queue bench-importmail bench-scale: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,fast,bench]'
	$(BIN)/python -m bench.$(@:bench-%=%)

# Issue 13's fairness rule: every expensive attack against one `mailcove serve` while probes on
# other connections measure the SMTP banner, IMAP NOOP and POP3 STAT (docs/fairness.md).
fairness: $(STAMP)
	$(BIN)/python -m bench.fairness $(FAIRNESS_ARGS)

clean:
	rm -rf $(VENV) mailcove-data .pytest_cache
