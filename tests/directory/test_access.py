from __future__ import annotations

import pytest

from mailcove.directory import AccessRule, Action, BadAccessRule, SqliteDirectory, Tag
from mailcove.directory.access import AccessTable, make_rule, parse_access_file, parse_rule_text


def _action(rule: AccessRule | None) -> Action | None:
    return rule.action if rule else None


def table(*lines: str) -> AccessTable:
    rules = []
    for line in lines:
        lhs, rhs = line.split(None, 1)
        rules.append(parse_rule_text(lhs, rhs))
    return AccessTable(rules)


def action(t: AccessTable, ip: str, name: str | None = None) -> Action | None:
    r = t.match_connect(ip, name)
    return r.action if r else None


def test_ip_exact_prefix_cidr_netmask() -> None:
    t = table("Connect:127.0.0.2 RELAY", "Connect:10.0.0 RELAY", "Connect:192.168.0.0/16 OK",
              "Connect:172.16.0.0/255.255.255.0 DISCARD")
    assert action(t, "127.0.0.2") is Action.RELAY
    assert action(t, "127.0.0.3") is None
    assert action(t, "10.0.0.77") is Action.RELAY and action(t, "10.0.1.1") is None
    assert action(t, "192.168.44.1") is Action.OK
    assert action(t, "172.16.0.9") is Action.DISCARD and action(t, "172.16.1.9") is None
    assert action(t, "::ffff:10.0.0.5") is Action.RELAY  # a dual-stack socket's view of an IPv4 client
    assert action(t, "not-an-ip") is None


def test_longest_prefix_wins_whatever_the_order() -> None:
    t = table("Connect:10 REJECT", "Connect:10.0.0.66 RELAY", "Connect:10.0.0.0/24 OK", "Connect:10.0.0.64/26 DISCARD")
    assert action(t, "10.0.0.66") is Action.RELAY
    assert action(t, "10.0.0.65") is Action.DISCARD
    assert action(t, "10.0.0.1") is Action.OK
    assert action(t, "10.9.9.9") is Action.REJECT


def test_ipv6_forms() -> None:
    t = table("Connect:IPv6:2001:db8::1 RELAY", "Connect:2001:db8::/32 REJECT", "Connect:IPv6:fd00:1 OK",
              "Connect:[::1] RELAY")
    assert action(t, "2001:db8::1") is Action.RELAY
    assert action(t, "2001:db8:5::9") is Action.REJECT
    assert action(t, "fd00:1::5") is Action.OK and action(t, "fd00:2::5") is None
    assert action(t, "::1") is Action.RELAY
    assert action(t, "127.0.0.1") is None


def test_hostnames_and_subdomains() -> None:
    t = table("Connect:hamap.local RELAY", "Connect:bad.hamap.local REJECT", "Connect:rocky9-3 RELAY")
    assert action(t, "10.9.9.9", "mx1.hamap.local") is Action.RELAY
    assert action(t, "10.9.9.9", "hamap.local") is Action.RELAY
    assert action(t, "10.9.9.9", "x.bad.hamap.local") is Action.REJECT
    assert action(t, "10.9.9.9", "ROCKY9-3.") is Action.RELAY
    assert action(t, "10.9.9.9", "nothamap.local") is None
    assert action(t, "10.9.9.9", None) is None


def test_name_before_ip_and_tagged_before_untagged() -> None:
    # Sendmail's Basic_check_relay looks up the client name before its address.
    t = table("Connect:hamap.local RELAY", "Connect:10.0.0.66 REJECT")
    assert action(t, "10.0.0.66", "x.hamap.local") is Action.RELAY
    assert action(t, "10.0.0.66", None) is Action.REJECT
    # At the same key, the tagged entry wins; a more specific untagged entry beats a tagged parent.
    t = table("10.0.0 REJECT", "Connect:10.0.0 RELAY", "10.0.0.5 OK")
    assert action(t, "10.0.0.1") is Action.RELAY
    assert action(t, "10.0.0.5") is Action.OK


def test_from_and_to() -> None:
    t = table("To:partner.example RELAY", "To:boss@partner.example REJECT", "From:spammer@bad.example DISCARD",
              "From:bad.example REJECT", "From:<> OK", "To:postmaster@ OK", "bad2.example REJECT")
    to = lambda a: (r.action if (r := t.match_address(Tag.TO, a)) else None)  # noqa: E731
    fr = lambda a: (r.action if (r := t.match_address(Tag.FROM, a)) else None)  # noqa: E731
    assert to("x@partner.example") is Action.RELAY
    assert to("x@mail.partner.example") is Action.RELAY  # subdomains, as Sendmail
    assert to("BOSS@partner.example") is Action.REJECT
    assert to("boss+x@partner.example") is Action.REJECT
    assert to("postmaster@anything.example") is Action.OK
    assert to("x@other.example") is None
    assert fr("spammer@bad.example") is Action.DISCARD
    assert fr("other@sub.bad.example") is Action.REJECT
    assert fr("<>") is Action.OK and fr("") is Action.OK
    assert to("x@bad.example") is None  # From: rules do not apply to recipients
    assert fr("x@bad2.example") is Action.REJECT and to("x@bad2.example") is Action.REJECT  # untagged: both


def test_error_forms_and_replies() -> None:
    r = make_rule(Tag.CONNECT, "1.2.3.4", "ERROR:5.7.1:550 Go away")
    assert r.action is Action.REJECT and r.reply() == (550, "5.7.1", "Go away")
    r = make_rule(Tag.FROM, "x@y.example", 'ERROR:"450 Try later"')
    assert r.reply() == (450, "4.7.1", "Try later")
    assert make_rule(Tag.CONNECT, "1.2.3.4", "REJECT").reply() == (550, "5.7.1", "Access denied")
    for bad in ("ERROR:250 ok", "ERROR:4.7.1:550 x", "SKIP", "QUARANTINE:x", "FRIEND", "nonsense"):
        with pytest.raises(BadAccessRule):
            make_rule(Tag.CONNECT, "1.2.3.4", bad)
    for bad_pattern in ("10.0.0.0/33", "300.1.1", "a@b", ""):
        with pytest.raises(BadAccessRule):
            make_rule(Tag.CONNECT, bad_pattern, "OK")


def test_same_network_same_key() -> None:
    keys = {make_rule(Tag.CONNECT, p, "RELAY").key for p in ("10.0.0", "10.0.0.0/24", "10.0.0.0/255.255.255.0")}
    assert keys == {"10.0.0.0/24"}


def test_parse_access_file_reports_unmappable() -> None:
    text = "# comment\n\nConnect:10.0.0 RELAY\nSpam:abuse@ FRIEND\nTo:x.example   OK   # trailing\n" \
           "From:a@b.example ERROR:5.7.1:550 no thanks\nConnect:1.2.3.4\nGreetPause:localhost 0\n" \
           "Connect:1.2.3.5 QUARANTINE:held\n"
    lines = list(parse_access_file(text))
    good = [(ln.lineno, ln.rule.display) for ln in lines if ln.rule]
    bad = [(ln.lineno, ln.problem) for ln in lines if not ln.rule]
    assert [n for n, _ in good] == [3, 5, 6]
    assert [n for n, _ in bad] == [4, 7, 8, 9]
    assert "Spam" in bad[0][1] and "no action" in bad[1][1] and "QUARANTINE" in bad[3][1]


# --- through the directory, with the system resolver ------------------------------------------------


async def test_directory_connect_by_hostname_via_etc_hosts(seeded: SqliteDirectory) -> None:
    # /etc/hosts maps localhost <-> 127.0.0.1, so the reverse name is confirmed forward.
    assert await seeded.client_name("127.0.0.1") == "localhost"
    await seeded.put_access_rules([make_rule(Tag.CONNECT, "localhost", "REJECT")])
    assert _action(await seeded.match_connect("127.0.0.1")) is Action.REJECT
    # A caller-supplied name that does not resolve back to the IP is not believed.
    assert await seeded.match_connect("127.0.0.9", hostname="localhost") is None
    assert _action(await seeded.match_connect("127.0.0.1", hostname="localhost")) is Action.REJECT


async def test_relay_allowed(seeded: SqliteDirectory) -> None:
    d = seeded
    assert await d.relay_allowed("127.0.0.3", "a@hamap.local")  # local recipient: not relaying
    assert await d.relay_allowed("127.0.0.3", "a@rocky9-3")
    assert not await d.relay_allowed("127.0.0.3", "x@remote.example")
    assert await d.relay_allowed("127.0.0.1", "x@remote.example")  # Sendmail: originated locally
    assert await d.relay_allowed("::1", "x@remote.example")
    await d.put_access_rules(
        [
            make_rule(Tag.CONNECT, "127.0.0.2", "RELAY"),
            make_rule(Tag.CONNECT, "127.0.0.4", "OK"),  # OK accepts but does not relay
            make_rule(Tag.TO, "partner.example", "RELAY"),
            make_rule(Tag.FROM, "trusted@remote.example", "RELAY"),
            make_rule(Tag.CONNECT, "127.0.0.1", "REJECT"),
        ]
    )
    assert await d.relay_allowed("127.0.0.2", "x@remote.example")
    assert not await d.relay_allowed("127.0.0.4", "x@remote.example")
    assert await d.relay_allowed("127.0.0.3", "x@mail.partner.example")
    assert await d.relay_allowed("127.0.0.3", "x@remote.example", sender="trusted@remote.example")
    assert not await d.relay_allowed("127.0.0.3", "x@remote.example", sender="other@remote.example")
    assert not await d.relay_allowed("127.0.0.1", "x@remote.example")  # an explicit rule overrides
    assert _action(await d.match_to("x@partner.example")) is Action.RELAY
    assert _action(await d.match_from("trusted@remote.example")) is Action.RELAY
    rule = await d.match_connect("127.0.0.1")
    assert isinstance(rule, AccessRule) and rule.reply()[0] == 550


async def test_relay_by_hostname(seeded: SqliteDirectory) -> None:
    await seeded.put_access_rules([make_rule(Tag.CONNECT, "localhost", "RELAY")])
    seeded.relay_from_localhost = False
    assert await seeded.relay_allowed("127.0.0.1", "x@remote.example")
    assert not await seeded.relay_allowed("127.0.0.2", "x@remote.example")


async def test_put_updates_and_delete(seeded: SqliteDirectory) -> None:
    r1 = await seeded.put_access_rules([make_rule(Tag.CONNECT, "10.0.0", "RELAY")])
    r2 = await seeded.put_access_rules([make_rule(Tag.CONNECT, "10.0.0.0/255.255.255.0", "REJECT")])
    assert (r1.created, r2.updated) == (1, 1)
    assert _action(await seeded.match_connect("10.0.0.1")) is Action.REJECT
    deleted = await seeded.delete_access_rule(Tag.CONNECT, "10.0.0.0/24")
    assert deleted.action is Action.REJECT
    assert await seeded.match_connect("10.0.0.1") is None
    from mailcove.directory import UnknownAccessRule

    with pytest.raises(UnknownAccessRule):
        await seeded.delete_access_rule(Tag.CONNECT, "10.0.0")
