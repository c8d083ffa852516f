"""SRS forward/reverse, DSN wants() and the shape of a report, the 8BITMIME downgrade, routes."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest

from mailcove.config.settings import Settings
from mailcove.dns.fake import FakeResolver
from mailcove.queue import dsn, srs
from mailcove.queue.convert import to_7bit
from mailcove.queue.routes import RouteError, Router, parse_hostport
from mailcove.store.api import OutboundEnvelope

SECRET = b"k" * 32
NOW = 1_800_000_000.0


def test_srs_round_trip_and_refusals(tmp_path: Path) -> None:
    a = srs.forward("alice@example.org", "mx.a.test", SECRET, NOW)
    assert a.startswith("SRS0=") and a.endswith("=example.org=alice@mx.a.test")
    assert srs.reverse(a, SECRET, NOW) == "alice@example.org"
    assert srs.reverse(a.upper(), SECRET, NOW) is not None  # hashes compare case-insensitively
    assert srs.reverse(a.lower(), SECRET, NOW) is not None  # base32: an MTA lower-casing it changes nothing
    assert srs.reverse(a, SECRET, NOW + srs.MAX_AGE_DAYS * 86400) == "alice@example.org"
    assert srs.verify(a, SECRET, NOW + (srs.MAX_AGE_DAYS + 1) * 86400) == (None, srs.Check.EXPIRED)
    assert srs.verify(a, SECRET, NOW - 86400) == (None, srs.Check.EXPIRED)  # stamped in the future
    assert srs.reverse(a, b"other", NOW) is None  # not ours
    assert srs.verify(a.replace("alice", "mallory"), SECRET, NOW) == (None, srs.Check.FORGED)
    h = a.split("=")[1]
    assert len(h) == 8 and set(h) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")  # 40 bits, one case
    assert srs.verify(a.replace(h, h[:4], 1), SECRET, NOW) == (None, srs.Check.MALFORMED)  # pre-issue-13 length
    assert srs.reverse("alice@example.org", SECRET, NOW) is None
    assert srs.forward(a, "mx.b.test", SECRET, NOW) == a
    key = tmp_path / "srs.key"
    assert srs.load_secret(key) == srs.load_secret(key)
    assert key.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("notify", "action", "sender", "wanted"),
    [
        ((), "failed", "a@x", True), ((), "delayed", "a@x", True), ((), "relayed", "a@x", False),
        (("NEVER",), "failed", "a@x", False), (("SUCCESS",), "failed", "a@x", False),
        (("SUCCESS",), "relayed", "a@x", True), (("FAILURE", "DELAY"), "delayed", "a@x", True),
        ((), "failed", "", False),
    ],
)
def test_dsn_wants(notify: tuple[str, ...], action: str, sender: str, wanted: bool) -> None:
    assert dsn.wants(notify, action, sender) is wanted


@pytest.mark.parametrize("ret", ["FULL", "HDRS"])
def test_dsn_report_shape(ret: str) -> None:
    original = b"Subject: orig\r\nFrom: a@a.test\r\n\r\nsecret body\r\n"
    env = OutboundEnvelope("a@a.test", (), envid="E-9", ret=ret)
    report = dsn.build(reporting_mta="mx.a.test", postmaster="postmaster@mx.a.test", envelope=env, arrival=NOW,
                       recipients=[dsn.RecipientStatus("x@b.test", "rfc822;x@b.test", "failed", "5.1.1",
                                                       "550 5.1.1 no such\r\n user", "mx.b.test")],
                       original=original, now=NOW)
    msg = email.message_from_bytes(report, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report" and msg.get_param("report-type") == "delivery-status"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == [
        "text/plain", "message/delivery-status", "message/rfc822" if ret == "FULL" else "text/rfc822-headers"]
    status = report[report.index(b"Reporting-MTA"):]
    assert b"Original-Envelope-Id: E-9\r\n" in status and b"Original-Recipient: rfc822;x@b.test\r\n" in status
    assert b"Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n" in status  # one line, whatever came in
    assert (b"secret body" in report) is (ret == "FULL")


def test_8bit_downgrade() -> None:
    m = b"Subject: x\r\nContent-Type: text/plain; charset=utf-8\r\n\r\ncaf\xc3\xa9 = ok\r\n"
    out = to_7bit(m)
    assert out is not None and out.isascii()
    assert b"Content-Transfer-Encoding: quoted-printable" in out and b"caf=C3=A9 =3D ok" in out
    assert to_7bit(b"Subject: caf\xc3\xa9\r\n\r\nx\r\n") is None  # 8-bit header: needs SMTPUTF8


async def test_routes() -> None:
    assert parse_hostport("[::1]:2525", 25) == ("::1", 2525) and parse_hostport("h", 25) == ("h", 25)
    s = Settings()
    s.transport = {"t.test": "127.0.0.1:2525", ".sub.test": "10.0.0.1"}
    r = Router(s, FakeResolver({("m.test", "MX"): [(20, "b.m.test"), (10, "a.m.test")],
                                ("none.test", "A"): ["192.0.2.1"], ("null.test", "MX"): [(0, "")]}))
    assert (await r.route("t.test")).hosts == (("127.0.0.1", 2525),)
    assert (await r.route("x.sub.test")).hosts == (("10.0.0.1", 25),)
    assert (await r.route("m.test")).hosts == (("a.m.test", 25), ("b.m.test", 25))
    assert (await r.route("none.test")).hosts == (("none.test", 25),)  # implicit MX
    with pytest.raises(RouteError) as e:
        await r.route("null.test")
    assert e.value.permanent and e.value.status == "5.1.10"
    with pytest.raises(RouteError) as e:
        await r.route("nx.test")
    assert e.value.permanent and e.value.status == "5.1.2"
    s.relayhost.host = "smart.test"
    assert (await r.route("m.test")).key == "relay:smart.test:587"
