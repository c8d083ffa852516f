"""DKIM verification, DMARC alignment and policy, the Authentication-Results field and the
removal of forged ones carrying our authserv-id, over the fake resolver."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mailcove.config.settings import Settings
from mailcove.dns import TempError
from mailcove.dns.fake import FakeResolver
from mailcove.mailauth import InboundChecker, check_inbound, remove_our_results
from mailcove.mailauth.dmarc import org_domain
from mailcove.queue.dkim import generate, load_keys, public_records, sign
from mailcove.store.spool import Spool

MSG = (b"From: Alice <alice@a.test>\r\nTo: b@b.test\r\nSubject: hi\r\nDate: Sat, 28 Nov 2026 00:00:00 +0000\r\n"
       b"Message-ID: <1@a.test>\r\n\r\nhello\r\n")


@pytest.fixture
def world(tmp_path: Path) -> tuple[Settings, FakeResolver, bytes]:
    s = Settings(hostname="mx.b.test", data_dir=tmp_path)
    generate(s, "a.test")
    r = FakeResolver()
    for sel, value in public_records(s, "a.test"):
        r.add(f"{sel}._domainkey.a.test", "TXT", value)
    r.add("a.test", "TXT", "v=spf1 ip4:192.0.2.1 -all")
    r.add("_dmarc.a.test", "TXT", "v=DMARC1; p=reject")
    signed = sign(MSG, "a.test", load_keys(s, "a.test")) + MSG
    return s, r, signed


async def test_all_pass(world) -> None:  # type: ignore[no-untyped-def]
    s, r, signed = world
    v = await InboundChecker(s, r).check(ip="192.0.2.1", helo="mx.a.test", mail_from="alice@a.test", message=signed)
    assert [d.result for d in v.dkim] == ["pass", "pass"]
    assert (v.spf.result, v.dmarc.result, v.reject, v.junk) == ("pass", "pass", None, False)
    h = v.header.decode()
    assert h.startswith("Authentication-Results: mx.b.test;\r\n\tdkim=pass header.d=a.test header.s=mailcove;")
    assert "spf=pass smtp.mailfrom=alice@a.test" in h and "dmarc=pass (p=reject) header.from=a.test" in h


async def test_dkim_alone_aligns_when_spf_fails(world) -> None:  # type: ignore[no-untyped-def]
    s, r, signed = world
    v = await InboundChecker(s, r).check(ip="198.51.100.1", helo="relay.other", mail_from="x@other.test",
                                         message=signed)
    assert v.spf.result == "none" and v.dmarc.result == "pass"


async def test_dmarc_reject_and_quarantine(world) -> None:  # type: ignore[no-untyped-def]
    s, r, signed = world
    tampered = signed.replace(b"hello", b"HELLO")
    c = InboundChecker(s, r)
    v = await c.check(ip="198.51.100.1", helo="evil", mail_from="alice@a.test", message=tampered)
    assert [d.result for d in v.dkim] == ["fail", "fail"] and v.spf.result == "fail"
    assert v.dmarc.result == "fail" and v.reject == (550, "5.7.1", "Rejected by the DMARC policy of a.test")
    r.add("_dmarc.a.test", "TXT", "v=DMARC1; p=quarantine")
    v = await c.check(ip="198.51.100.1", helo="evil", mail_from="alice@a.test", message=tampered)
    assert v.junk and v.reject is None
    s.mailauth.dmarc_quarantine_to_junk = False
    v = await c.check(ip="198.51.100.1", helo="evil", mail_from="alice@a.test", message=tampered)
    assert not v.junk


async def test_subdomain_uses_the_organizational_record(world) -> None:  # type: ignore[no-untyped-def]
    s, r, _ = world
    msg = MSG.replace(b"alice@a.test", b"alice@news.a.test")
    v = await InboundChecker(s, r).check(ip="198.51.100.1", helo="x", mail_from="x@y.test", message=msg)
    assert (v.dmarc.result, v.dmarc.policy) == ("fail", "reject")
    assert org_domain("mail.example.co.uk") == "example.co.uk" and org_domain("a.b.c.test") == "c.test"


async def test_dns_timeout_is_temperror_and_never_hangs(world) -> None:  # type: ignore[no-untyped-def]
    s, _, signed = world

    class Hanging(FakeResolver):
        async def txt(self, name: str) -> list[bytes]:
            await asyncio.sleep(3600)
            return []

    s.mailauth.timeout = 0.3
    v = await asyncio.wait_for(InboundChecker(s, Hanging()).check(
        ip="192.0.2.1", helo="x", mail_from="alice@a.test", message=signed), 5)
    assert v.spf.result == "temperror" and {d.result for d in v.dkim} == {"temperror"}
    assert v.dmarc.result == "temperror" and v.reject is None
    r = FakeResolver({("a.test", "TXT"): TempError("SERVFAIL")})
    v = await InboundChecker(s, r).check(ip="192.0.2.1", helo="x", mail_from="alice@a.test", message=MSG)
    assert v.spf.result == "temperror"


def test_forged_results_with_our_id_are_removed() -> None:
    head = (b"Received: from x\r\n"
            b"Authentication-Results: MX.B.TEST; dmarc=pass\r\n"
            b"Authentication-Results: (comment) mx.b.test;\r\n\tdkim=pass\r\n"
            b"Authentication-Results: mx.other.test; spf=pass\r\n"
            b"Subject: s\r\n\r\n")
    assert remove_our_results(head, "mx.b.test") == (
        b"Received: from x\r\nAuthentication-Results: mx.other.test; spf=pass\r\nSubject: s\r\n\r\n")


@pytest.mark.parametrize("inline_max", [1 << 20, 64])
async def test_check_inbound_never_rewrites_the_spool(world, tmp_path: Path, inline_max: int) -> None:  # type: ignore[no-untyped-def]
    """The message is only read: the Authentication-Results field and the header without the
    forged field come back as values (issue 14). Before, a spool on disk was copied whole into a
    new one to insert the field."""
    s, r, signed = world
    forged = b"Authentication-Results: mx.b.test; dmarc=pass\r\n"
    received = forged + signed
    spool = Spool(tmp_path / "sp1", inline_max)
    spool.write(received)
    spool.finish()
    before = None if spool.inline else (spool.path.stat().st_ino, spool.path.stat().st_mtime_ns)
    out = await check_inbound(InboundChecker(s, r), spool, ip="192.0.2.1", helo="mx.a.test", mail_from="alice@a.test")
    assert out.results.startswith(b"Authentication-Results: mx.b.test;\r\n\tdkim=pass") and out.reject is None
    data = spool.getvalue() if spool.inline else spool.path.read_bytes()
    assert data == received
    if before is not None:
        assert (spool.path.stat().st_ino, spool.path.stat().st_mtime_ns) == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["dkim", "sp1"]  # no second spool
    assert out.header is not None and forged not in out.header.data
    end = received.index(b"\r\n\r\n") + 4
    assert out.header.replaces == end and out.header.data == received[len(forged) : end]
    # what the store serves: results, then the rewritten header, then the body from its end on
    assert out.results + out.header.data + received[out.header.replaces :] == out.results + signed


async def test_check_inbound_takes_bytes(world) -> None:  # type: ignore[no-untyped-def]
    s, r, signed = world
    out = await check_inbound(InboundChecker(s, r), b"Received: x\r\n" + signed,
                              ip="192.0.2.1", helo="mx.a.test", mail_from="alice@a.test")
    assert out.results.startswith(b"Authentication-Results: mx.b.test;") and out.header is None
    s.mailauth.enabled = False
    off = await check_inbound(InboundChecker(s, r), signed, ip="192.0.2.1", helo="x", mail_from="")
    assert (off.results, off.header) == (b"", None)


async def test_return_path_stays_first_and_utf8_sender(world) -> None:  # type: ignore[no-untyped-def]
    """Return-Path (the local copies' only) first, our field next, then our Received: the order
    delivery.Trace serves them in."""
    from mailcove.delivery import Trace

    s, r, signed = world
    out = await check_inbound(InboundChecker(s, r), signed, ip="192.0.2.1", helo="mx.a.test",
                              mail_from="j\u00f6rg@a.test")
    prefix = Trace(out.results + b"Received: x\r\n", out.header).prefix("j\u00f6rg@a.test")
    first, second = prefix.local.split(b"\r\n", 2)[:2]
    assert first == "Return-Path: <j\u00f6rg@a.test>".encode() and second.startswith(b"Authentication-Results: ")
    assert "smtp.mailfrom=j\u00f6rg@a.test".encode() in prefix.local
    assert prefix.queued == out.results + b"Received: x\r\n" and prefix.skip == 0
