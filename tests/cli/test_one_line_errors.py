"""docs/admin.md's promise: a failing command prints one line starting with `mailcove:` on
stderr. Usage errors (exit 2) are that one line, not click's three; deliver and sendmail keep
their sysexits codes (64 usage, 67 no such user, 75 try later) with the same prefix; a missing
password option is one line, not Python's GetPassWarning."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.cli_process import FAST_CONFIG, mailcove, one_line


@pytest.fixture
def lab(tmp_path: Path) -> list[str | Path]:
    config = tmp_path / "mailcove.toml"
    config.write_text(FAST_CONFIG)
    data = tmp_path / "data"
    args: list[str | Path] = ["--config", config, "--data", data]
    data.mkdir(mode=0o700)
    assert mailcove(*args, "domain", "add", "hamap.local").returncode == 0
    return args


@pytest.mark.parametrize(("command", "line"), [
    (("usr", "list"), "mailcove: no such command 'usr'. Did you mean 'user'? (see mailcove --help)"),
    (("user", "add"), "mailcove: user add: missing argument 'ADDRESS' (see mailcove user add --help)"),
    (("user", "add", "--bogus", "a@hamap.local"),
     "mailcove: user add: no such option '--bogus' (see mailcove user add --help)"),
    (("user", "add", "a@hamap.local", "--quota-messages", "-1"),
     "mailcove: user add: invalid value for '--quota-messages': -1 is not in the range x>=0 "
     "(see mailcove user add --help)"),
])
def test_usage_errors_are_one_line_and_exit_2(lab: list[str | Path], command: tuple[str, ...], line: str) -> None:
    r = mailcove(*lab, *command)
    assert r.returncode == 2
    assert one_line(r) == line
    assert r.stdout == ""


def test_help_and_version_still_work() -> None:
    r = mailcove("user", "add", "--help")
    assert r.returncode == 0 and r.stdout.startswith("Usage: mailcove user add")
    r = mailcove("--version")
    assert r.returncode == 0 and r.stdout.startswith("mailcove, version")


def test_no_password_option_without_a_terminal(lab: list[str | Path]) -> None:
    r = mailcove(*lab, "user", "add", "a@hamap.local", input="It1\n")
    assert r.returncode == 2
    assert one_line(r) == ("mailcove: no terminal to ask for the password: give --password-stdin or "
                           "--password-file")
    assert "GetPassWarning" not in r.stderr
    r = mailcove(*lab, "user", "list", "--json")
    assert r.stdout.strip() == "[]"


def test_deliver_keeps_sysexits_codes_with_the_mailcove_prefix(lab: list[str | Path]) -> None:
    r = mailcove(*lab, "deliver")
    assert r.returncode == 64  # EX_USAGE
    assert one_line(r) == "mailcove: deliver: missing option '--to' / '-d' (see mailcove deliver --help)"
    r = mailcove(*lab, "deliver", "--to", "nobody@hamap.local", input="Subject: x\n\nhi\n")
    assert r.returncode == 67  # EX_NOUSER
    assert one_line(r).startswith("mailcove: 550 5.1.1 ")
    r = mailcove(*lab, "deliver", "--to", "a@hamap.local", input="")
    assert r.returncode == 64
    assert one_line(r) == "mailcove: empty message on stdin"


def test_sendmail_keeps_sysexits_codes_with_the_mailcove_prefix(lab: list[str | Path]) -> None:
    r = mailcove(*lab, "sendmail", "-bx")
    assert r.returncode == 64
    assert one_line(r) == "mailcove: -bx is not supported (only -bm and -bp)"
    r = mailcove(*lab, "sendmail", "-i", input="Subject: x\n\nhi\n")
    assert r.returncode == 64
    assert one_line(r).startswith("mailcove: no recipients")


def test_queue_errors_have_the_mailcove_prefix(lab: list[str | Path]) -> None:
    r = mailcove(*lab, "queue", "show", "999")
    assert r.returncode == 1
    assert one_line(r).startswith("mailcove: ")


def test_deliver_and_sendmail_meet_a_bad_config_with_tempfail(tmp_path: Path) -> None:
    config = tmp_path / "mailcove.toml"
    config.write_text("[queue]\nretry_minutes = -5\n")
    for command in (("deliver", "--to", "a@hamap.local"), ("sendmail", "a@hamap.local")):
        r = mailcove("--config", config, "--data", tmp_path, *command, input="Subject: x\n\nhi\n")
        assert r.returncode == 75, r.stderr  # EX_TEMPFAIL: the MTA keeps the mail until the config is fixed
        assert one_line(r).startswith(f"mailcove: config error: {config}: queue.retry_minutes: out of range")
    r = mailcove("--config", config, "--data", tmp_path, "domain", "list")
    assert r.returncode == 2


def test_a_group_without_a_command_shows_its_help() -> None:
    r = mailcove("user")
    assert r.returncode == 2
    assert r.stderr.startswith("Usage: mailcove user [OPTIONS] COMMAND [ARGS]...\n")
    assert "\n  add " in r.stderr
