# `make serve` and `make test` work from a clean clone: each creates or refreshes .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test lint fuzz bench bench-store bench-smtp bench-imap bench-pop3 bench-queue bench-importmail bench-scale clean venv

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,fast]'
	@touch $(STAMP)

venv: $(STAMP)

serve: $(STAMP)
	$(BIN)/mailcove serve

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# Coverage-guided fuzzing of the SMTP, IMAP, POP3, HTTP and MIME parsers (docs/fuzzing.md): 10^5 inputs per
# target, one target at a time; FUZZ_ARGS="--target smtp --runs 1000" for a short run. Never run by CI.
FUZZ_ARGS ?= --runs 100000

fuzz: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,fast,fuzz]'
	$(BIN)/python -m fuzz $(FUZZ_ARGS)

# Benchmarks install their peers (Postfix, Dovecot) from Debian and need root; never run by CI.
bench: bench-store bench-smtp bench-imap bench-pop3 bench-queue bench-importmail bench-scale

bench-store: $(STAMP)
	$(BIN)/python -m bench.store

bench-smtp bench-imap bench-pop3 bench-queue bench-importmail bench-scale: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,fast,bench]'
	$(BIN)/python -m bench.$(@:bench-%=%)

# Issue 13's fairness rule: every expensive attack against one `mailcove serve` while probes on
# other connections measure the SMTP banner, IMAP NOOP and POP3 STAT (docs/fairness.md).
fairness: $(STAMP)
	$(BIN)/python -m bench.fairness $(FAIRNESS_ARGS)

clean:
	rm -rf $(VENV) mailcove-data .pytest_cache
