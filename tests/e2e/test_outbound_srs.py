"""An alias of a.test forwarding to b.test: the envelope sender of the forwarded copy is
rewritten with SRS into a.test's name, and reverses to the original sender with a.test's key."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "queue"))

from outbound_testing import Dnsmasq, cli, free_tcp_port, send, start_instance, wait_for

from mailcove.queue import srs


def test_forwarded_mail_gets_an_srs_sender(serve_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    pa, pb = free_tcp_port(), free_tcp_port()
    dns = Dnsmasq(tmp_path)
    for d in ("a.test", "b.test"):
        dns.mx(d, f"mx.{d}", 10)
        dns.host(f"mx.{d}", "127.0.0.1")
    dns.start()
    try:
        a = start_instance(serve_factory, "a.test", pa, dns, pb, start=False)
        cli(a, "alias", "add", "fwd@a.test", "b@b.test")
        a.start()
        b = start_instance(serve_factory, "b.test", pb, dns, pa)
        send(pa, "x@c.test", ["fwd@a.test"], b"From: x@c.test\r\nSubject: fwd\r\n\r\nforwarded\r\n")
        [got] = wait_for(lambda: b.read_mailbox("b@b.test"), what="forwarded copy")
        rp = got.split(b"\r\n", 1)[0].decode()
        assert rp.startswith("Return-Path: <SRS0=") and rp.endswith("=c.test=x@mx.a.test>")
        secret = srs.load_secret(a.data_dir / "srs.key")
        assert srs.reverse(rp[len("Return-Path: <"):-1], secret) == "x@c.test"
    finally:
        dns.stop()


def test_a_bounce_to_an_srs_address_goes_back_to_the_original_sender(serve_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The bounce half: a DSN for forwarded mail comes back to a.test's SRS address from a host
    that may not relay through a.test; a.test reverses the address and sends the bounce on to
    the original sender (here b@b.test). A forged SRS address is refused, and relaying for any
    other address from that host is still denied."""
    import smtplib

    import pytest

    pa, pb = free_tcp_port(), free_tcp_port()
    dns = Dnsmasq(tmp_path)
    for d in ("a.test", "b.test"):
        dns.mx(d, f"mx.{d}", 10)
        dns.host(f"mx.{d}", "127.0.0.1")
    dns.start()
    try:
        a = start_instance(serve_factory, "a.test", pa, dns, pb)
        b = start_instance(serve_factory, "b.test", pb, dns, pa)
        secret = srs.load_secret(a.data_dir / "srs.key")  # what a's queue uses for its SRS addresses
        address = srs.forward("b@b.test", "mx.a.test", secret)
        bounce = b"From: MAILER-DAEMON@mx.c.test\r\nSubject: Undelivered Mail\r\n\r\nbounced\r\n"
        with smtplib.SMTP("127.0.0.1", pa, timeout=30, source_address=("127.0.0.9", 0)) as s:
            s.ehlo("mx.c.test")
            s.sendmail("", [address], bounce)
            forged = address.replace("SRS0=", "SRS0=x", 1)
            with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
                s.sendmail("", [forged], bounce)
            assert e.value.recipients[forged][0] == 550
            with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
                s.sendmail("", ["b@b.test"], bounce)
            assert e.value.recipients["b@b.test"][0] == 550  # relaying denied for 127.0.0.9
        [got] = wait_for(lambda: b.read_mailbox("b@b.test"), what="the bounce at the original sender")
        assert got.startswith(b"Return-Path: <>\r\n") and got.endswith(b"bounced\r\n")
    finally:
        dns.stop()
