"""Addresses the directory takes in are RFC 5321/6531 syntax: a dot-atom (UTF-8 allowed) or a
quoted local part, one @, a domain that is local. `user add 'a@@hamap.local'` used to make an
account that could log in."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.cli_process import FAST_CONFIG, mailcove, one_line
from mailcove.directory.address_syntax import parse_mailbox
from mailcove.directory.errors import BadAddress


@pytest.fixture
def lab(tmp_path: Path) -> list[str | Path]:
    config = tmp_path / "mailcove.toml"
    config.write_text(FAST_CONFIG)
    args: list[str | Path] = ["--config", config, "--data", tmp_path / "data"]
    (tmp_path / "data").mkdir(mode=0o700)
    assert mailcove(*args, "domain", "add", "hamap.local").returncode == 0
    return args


BAD = ["a@@hamap.local", "@hamap.local", "a@", ".a@hamap.local", "a.@hamap.local", "a..b@hamap.local",
       "a b@hamap.local", "a\"b@hamap.local", "a(b)@hamap.local", "a@b@hamap.local", '"a b"@hamap.local',
       "x" * 65 + "@hamap.local", "a@hamap..local", "a@-hamap.local"]


@pytest.mark.parametrize("address", BAD)
def test_user_add_refuses_bad_syntax(lab: list[str | Path], address: str) -> None:
    r = mailcove(*lab, "user", "add", address, "--password-stdin", input="It1\n")
    assert r.returncode == 1, r.stdout
    assert one_line(r).startswith("mailcove: bad address syntax: ")
    assert mailcove(*lab, "user", "list", "--json").stdout.strip() == "[]"


def test_good_addresses_are_taken(lab: list[str | Path]) -> None:
    for address, key in [("jörg@hamap.local", "jörg@hamap.local"), ("o'brien@hamap.local", "o'brien@hamap.local"),
                         ('"c.d"@hamap.local', "c.d@hamap.local"), ("E.F@HAMAP.LOCAL", "e.f@hamap.local")]:
        r = mailcove(*lab, "user", "add", address, "--password-stdin", input="It1\n")
        assert r.returncode == 0, r.stderr
        assert r.stdout == f"added user {key}\n"


def test_a_local_domain_is_required(lab: list[str | Path]) -> None:
    r = mailcove(*lab, "user", "add", "a@example.org", "--password-stdin", input="It1\n")
    assert r.returncode == 1
    assert one_line(r).startswith("mailcove: unknown domain: example.org")


def test_aliases_and_their_targets_are_checked(lab: list[str | Path]) -> None:
    r = mailcove(*lab, "alias", "add", "team@@hamap.local", "far@example.net")
    assert r.returncode == 1 and one_line(r).startswith("mailcove: bad address syntax: 'team@@hamap.local'")
    r = mailcove(*lab, "alias", "add", "team@hamap.local", "far@@example.net")
    assert r.returncode == 1 and one_line(r).startswith("mailcove: bad address syntax: 'far@@example.net'")
    r = mailcove(*lab, "alias", "add", "team@hamap.local", "far@example.net")
    assert r.returncode == 0, r.stderr


def test_setup_users_are_checked(tmp_path: Path) -> None:
    config = tmp_path / "mailcove.toml"
    config.write_text(FAST_CONFIG)
    r = mailcove("--config", config, "--data", tmp_path / "data", "setup", "hamap.local", "--users", "a@@hamap.local",
                 "--password-stdin", input="It1\n")
    assert r.returncode == 1
    assert one_line(r).startswith("mailcove: bad address syntax: 'a@@hamap.local'")


@pytest.mark.parametrize("address", BAD)
def test_parse_mailbox_refuses(address: str) -> None:
    with pytest.raises(BadAddress):
        parse_mailbox(address)


def test_parse_mailbox_takes() -> None:
    assert str(parse_mailbox("<a.b+c@Hamap.Local>")) == "a.b+c@hamap.local"
    assert str(parse_mailbox('"a\\.b"@hamap.local')) == "a.b@hamap.local"
    assert str(parse_mailbox("δοκιμή@hamap.local")) == "δοκιμή@hamap.local"
    assert str(parse_mailbox("a@rocky9-3")) == "a@rocky9-3"
