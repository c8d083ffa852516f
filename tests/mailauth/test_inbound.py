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
async def test_check_inbound_rewrites_the_spool(world, tmp_path: Path, inline_max: int) -> None:  # type: ignore[no-untyped-def]
    s, r, signed = world
    forged = b"Authentication-Results: mx.b.test; dmarc=pass\r\n"
    spool = Spool(tmp_path / "sp1", inline_max)
    trace = b"Received: from mx.a.test by mx.b.test\r\n"
    spool.write(trace + forged + signed)
    counter = iter(range(100))
    out = await check_inbound(InboundChecker(s, r), spool, lambda: Spool(tmp_path / f"n{next(counter)}", inline_max),
                              ip="192.0.2.1", helo="mx.a.test", mail_from="alice@a.test")
    src = out.source
    data = src if isinstance(src, bytes) else (src.getvalue() if src.inline else src.path.read_bytes())
    assert data.startswith(b"Authentication-Results: mx.b.test;\r\n\tdkim=pass")
    assert forged not in data and data.endswith(trace + signed) and out.reject is None


async def test_check_inbound_takes_bytes(world) -> None:  # type: ignore[no-untyped-def]
    s, r, signed = world
    out = await check_inbound(InboundChecker(s, r), b"Received: x\r\n" + signed, lambda: None,  # type: ignore[arg-type,return-value]
                              ip="192.0.2.1", helo="mx.a.test", mail_from="alice@a.test")
    assert isinstance(out.source, bytes) and out.source.startswith(b"Authentication-Results: mx.b.test;")
    s.mailauth.enabled = False
    assert (await check_inbound(InboundChecker(s, r), signed, lambda: None,  # type: ignore[arg-type,return-value]
                                ip="192.0.2.1", helo="x", mail_from="")).source == signed


async def test_return_path_stays_first_and_utf8_sender(world) -> None:  # type: ignore[no-untyped-def]
    s, r, signed = world
    msg = "Return-Path: <j\u00f6rg@a.test>\r\nReceived: x\r\n".encode() + signed
    out = await check_inbound(InboundChecker(s, r), msg, lambda: None,  # type: ignore[arg-type,return-value]
                              ip="192.0.2.1", helo="mx.a.test", mail_from="j\u00f6rg@a.test")
    assert isinstance(out.source, bytes)
    first, second = out.source.split(b"\r\n", 2)[:2]
    assert first == "Return-Path: <j\u00f6rg@a.test>".encode() and second.startswith(b"Authentication-Results: ")
    assert "smtp.mailfrom=j\u00f6rg@a.test".encode() in out.source
