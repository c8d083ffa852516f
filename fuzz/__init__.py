"""Coverage-guided fuzzing of mailcove's parsers (issue 13 part 4): `make fuzz`, or

    .venv/bin/python -m fuzz --runs 100000 [--target smtp]

One target per parser in `fuzz.targets` (SMTP, IMAP, POP3, HTTP, MIME). Each target is a plain
function `one_input(data: bytes)` that feeds a whole protocol session (or a whole message) to the
parser and raises only on a bug; `fuzz.worker` runs it under atheris (libFuzzer), `fuzz.replay`
runs a corpus through it without atheris (coverage measurement, the test suite's smoke test).
docs/fuzzing.md has the figures and how to read them."""
