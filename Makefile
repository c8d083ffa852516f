# `make serve` and `make test` work from a clean clone: each creates or refreshes .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test test-interop lint fuzz bench bench-store bench-smtp bench-imap bench-imaptest bench-pop3 bench-queue bench-importmail bench-scale clean venv

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,fast]'
	@touch $(STAMP)

venv: $(STAMP)

# ARGS: options for `mailcove serve`, e.g. ARGS='--listen smtp=*:2025' next to a running Sendmail.
serve: $(STAMP)
	$(BIN)/mailcove serve $(ARGS)

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
