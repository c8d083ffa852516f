"""`setup --users alice,bob` gives each user their own password: asked per user, one line each
from --password-stdin / --password-file, or generated and printed once (--generate-passwords).
It used to read one password and give it to every user. Checked by logging in over POP3."""

from __future__ import annotations

import poplib
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from cli.cli_process import FAST_CONFIG, mailcove, one_line
from mailcove_testing import ServerProcess

SERVE_CONFIG = FAST_CONFIG.replace("[auth]\n", "[auth]\nallow_plaintext = true\n") + "[tls]\nenabled = false\n"


def _setup(tmp_path: Path, *args: str, input: str = "") -> tuple[Path, subprocess.CompletedProcess[str]]:
    config = tmp_path / "mailcove.toml"
    config.write_text(FAST_CONFIG)
    data = tmp_path / "data"
    r = mailcove("--config", config, "--data", data, "setup", "hamap.local", "--no-http", *args, input=input)
    return data, r


def _logs_in(srv: ServerProcess, user: str, password: str) -> bool:
    c = poplib.POP3(*srv.address("pop3"), timeout=30)
    try:
        c.user(user)
        c.pass_(password)
        return True
    except poplib.error_proto:
        return False
    finally:
        c.quit()


def test_one_password_line_per_user(tmp_path: Path, serve_factory: Callable[..., ServerProcess]) -> None:
    data, r = _setup(tmp_path, "--users", "alice,bob", "--password-stdin", input="Alice-pw1\nBob-pw2\n")
    assert r.returncode == 0, r.stderr
    srv = serve_factory(SERVE_CONFIG, data_dir=data)
    assert _logs_in(srv, "alice@hamap.local", "Alice-pw1")
    assert _logs_in(srv, "bob@hamap.local", "Bob-pw2")
    assert not _logs_in(srv, "bob@hamap.local", "Alice-pw1")


def test_too_few_lines_are_refused(tmp_path: Path) -> None:
    data, r = _setup(tmp_path, "--users", "alice,bob", "--password-stdin", input="Same-for-all\n")
    assert r.returncode == 1
    assert one_line(r) == ("mailcove: standard input has 1 password line(s) for 2 users: give one line per user, "
                           "in the order of --users (or --generate-passwords)")
    assert not data.exists()


def test_the_seed_lab_may_share_one_password(tmp_path: Path, serve_factory: Callable[..., ServerProcess]) -> None:
    data, r = _setup(tmp_path, "--users", "a,b", "--password-stdin", "--lab", input="It1\n")
    assert r.returncode == 0, r.stderr
    srv = serve_factory(SERVE_CONFIG, data_dir=data)
    assert _logs_in(srv, "a@hamap.local", "It1") and _logs_in(srv, "b@hamap.local", "It1")


def test_generated_passwords_are_printed_once(tmp_path: Path, serve_factory: Callable[..., ServerProcess]) -> None:
    data, r = _setup(tmp_path, "--users", "alice,bob", "--generate-passwords")
    assert r.returncode == 0, r.stderr
    found = dict(re.findall(r"^password for (\S+): (\S+)$", r.stdout, re.M))
    assert set(found) == {"alice@hamap.local", "bob@hamap.local"}
    assert found["alice@hamap.local"] != found["bob@hamap.local"]
    assert all(len(p) >= 20 for p in found.values())
    srv = serve_factory(SERVE_CONFIG, data_dir=data)
    for user, password in found.items():
        assert _logs_in(srv, user, password)


def test_no_terminal_and_no_password_option(tmp_path: Path) -> None:
    data, r = _setup(tmp_path, "--users", "alice,bob")
    assert r.returncode == 2
    assert one_line(r) == ("mailcove: no terminal to ask for the password: give --password-stdin, --password-file "
                           "or --generate-passwords")
    assert not data.exists()


@pytest.mark.parametrize("extra", [("--password-stdin", "--generate-passwords")])
def test_one_way_at_a_time(tmp_path: Path, extra: tuple[str, ...]) -> None:
    _, r = _setup(tmp_path, "--users", "alice", *extra, input="x\n")
    assert r.returncode == 2
    assert "give one of" in one_line(r)
