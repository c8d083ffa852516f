"""The parts of system users that need no Unix accounts: .forward parsing, login.defs, shadow
entries and their expiry rules, crypt(3) through libxcrypt, and the configuration keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailcove.config import load_settings
from mailcove.config.loader import ConfigError
from mailcove.directory.forward_file import MAX_FORWARD_ENTRIES, Entry, Kind, parse_forward
from mailcove.directory.system import NAME_RE, SystemAccounts, login_defs_range
from mailcove.directory.system_shadow import crypt, make_dummy_hash, parse_shadow_line, verify_hash


def test_parse_forward() -> None:
    text = (
        "# forward everything\n"
        "b, c@remote.example\n"
        "\\a\n"
        '"|/usr/bin/procmail -f-", /var/mail/backup\n'
        ":include:/etc/mail/list\n"
        "Bob Smith <bob@remote.example>\n"
        "b\n"  # a duplicate
        "  # an indented comment\n"
        "not an address\n"
    )
    assert parse_forward(text) == [
        Entry(Kind.ADDRESS, "b"),
        Entry(Kind.ADDRESS, "c@remote.example"),
        Entry(Kind.LOCAL, "a"),
        Entry(Kind.PROGRAM, "/usr/bin/procmail -f-"),
        Entry(Kind.FILE, "/var/mail/backup"),
        Entry(Kind.INCLUDE, "/etc/mail/list"),
        Entry(Kind.ADDRESS, "bob@remote.example"),
    ]
    assert parse_forward("") == []
    assert len(parse_forward(",".join(f"u{i}@x.example" for i in range(500)))) == MAX_FORWARD_ENTRIES


def test_login_defs(tmp_path: Path) -> None:
    p = tmp_path / "login.defs"
    p.write_text("# comment\nUID_MIN\t\t 2000\nUID_MAX 0x7000\nSYS_UID_MIN 100\n")
    assert login_defs_range(str(p)) == (2000, 0x7000)
    assert login_defs_range(str(tmp_path / "missing")) == (1000, 60000)


def test_names() -> None:
    for ok in ("a", "mct12ab_a", "john.doe", "x-y", "_svc", "machine$"):
        assert NAME_RE.fullmatch(ok), ok
    for bad in ("", "A", "1abc", "a b", "a/b", "a" * 40, "../etc", "a\x00"):
        assert not NAME_RE.fullmatch(bad), bad
    assert SystemAccounts(1000, 60000).check("../etc") == (None, "not a valid Unix user name")
    assert SystemAccounts(0, 60000).min_uid == 1  # root is never in range


def test_shadow_entries_and_expiry() -> None:
    today = 20000
    e = parse_shadow_line("a:$y$j9T$salt$hash:19990:0:99999:7:::\n")
    assert e is not None and e.refusal(today) is None
    assert parse_shadow_line("a:!$y$x:19990:0:99999:7:::").refusal(today).startswith("the account is locked")  # type: ignore[union-attr]
    assert parse_shadow_line("a:*:19990::::::").refusal(today) is not None  # type: ignore[union-attr]
    assert parse_shadow_line("a:$6$x$y:19990:0:99999:7::19999:").refusal(today) == "the account has expired"  # type: ignore[union-attr]
    assert "changed first" in parse_shadow_line("a:$6$x$y:0:0:99999:7:::").refusal(today)  # type: ignore[union-attr,operator]
    assert "expired" in parse_shadow_line("a:$6$x$y:19000:0:90:7:::").refusal(today)  # type: ignore[union-attr,operator]
    assert "inactive" in parse_shadow_line("a:$6$x$y:19000:0:90:7:30::").refusal(today)  # type: ignore[union-attr,operator]
    assert parse_shadow_line("garbage") is None


def test_crypt_through_libxcrypt() -> None:
    # Known answers: SHA-512 crypt from its specification's test vectors, and MD5-crypt.
    assert crypt(b"Hello world!", b"$6$saltstring") == (
        b"$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
    )
    h = make_dummy_hash()
    assert h.startswith("$")
    assert verify_hash(b"whatever", h) is False
    assert verify_hash(b"x", "!" + h) is False and verify_hash(b"x", "") is False
    assert verify_hash(b"", "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl") is False
    assert crypt(b"a", b"$unknown$") is None


def test_config_keys(tmp_path: Path) -> None:
    p = tmp_path / "m.toml"
    p.write_text('directory = "system"\n')
    assert load_settings(p).directory.users == "system"
    p.write_text('[directory]\nusers = "system"\nsystem_auth = "shadow"\nsystem_users_allow = ["svc"]\n')
    d = load_settings(p).directory
    assert (d.users, d.system_auth, d.system_users_allow) == ("system", "shadow", ["svc"])
    for text, key in [
        ('directory = "unix"\n', "directory.users"),
        ('[directory]\nsystem_auth = "ldap"\n', "directory.system_auth"),
    ]:
        p.write_text(text)
        with pytest.raises(ConfigError) as err:
            load_settings(p)
        assert err.value.key == key and str(err.value).startswith(f"{p}: {key}: expected one of")
