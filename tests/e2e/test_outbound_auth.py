"""DKIM on the way out, checked on the way in over real DNS: a.test's keys made with
`mailcove dkim generate`, their printed TXT records served by dnsmasq with SPF and DMARC; a
message from a.test to b.test by MX arrives signed, and SPF, DKIM and DMARC all pass when b.test's
checker verifies it against dnsmasq. Then the same path through a relay host with AUTH over
STARTTLS, and through a [transport] entry with no DNS at all."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "queue"))

from outbound_testing import Dnsmasq, cli, free_tcp_port, queue_items, send, start_instance, wait_for

from mailcove.config import load_settings
from mailcove.mailauth import InboundChecker

MSG = (b"From: A <a@a.test>\r\nTo: B <b@b.test>\r\nSubject: signed\r\nDate: Sat, 28 Nov 2026 00:00:00 +0000\r\n"
       b"Message-ID: <2@a.test>\r\n\r\nsigned body caf\xc3\xa9\r\n")


def test_dkim_signed_by_mx_and_verified_over_dnsmasq(serve_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    pa, pb = free_tcp_port(), free_tcp_port()
    dns = Dnsmasq(tmp_path)
    a = start_instance(serve_factory, "a.test", pa, dns, pb, start=False)
    out = cli(a, "dkim", "generate", "a.test")
    for line in out.splitlines():
        if "._domainkey." in line:
            name = line.split()[0].rstrip(".")
            dns.txt(name, *re.findall(r'"([^"]*)"', line))  # the printed strings, as a zone would hold them
    for d in ("a.test", "b.test"):
        dns.mx(d, f"mx.{d}", 10)
        dns.host(f"mx.{d}", "127.0.0.1")
    dns.txt("a.test", "v=spf1 ip4:127.0.0.0/8 -all")
    dns.txt("_dmarc.a.test", "v=DMARC1; p=reject")
    dns.start()
    try:
        # the printed records are what the server will read back: start the instances now
        a.config_path.write_text(a.config_path.read_text().replace('nameservers = ["127.0.0.1:0"]',
                                                                   f'nameservers = ["{dns.server}"]'))
        a.start()
        b = start_instance(serve_factory, "b.test", pb, dns, pa)
        send(pa, "a@a.test", ["b@b.test"], MSG)
        [got] = wait_for(lambda: b.read_mailbox("b@b.test"), what="delivery")
        assert got.count(b"DKIM-Signature:") == 2
        assert b"\r\n\r\nsigned body caf\xc3\xa9\r\n" in got  # b.test offers 8BITMIME: no conversion
        settings = load_settings(b.config_path, data_dir=str(b.data_dir))
        v = asyncio.run(InboundChecker(settings).check(ip="127.0.0.1", helo="mx.a.test", mail_from="a@a.test",
                                                       message=got))
        header = v.header.decode()
        assert "dkim=pass header.d=a.test header.s=mailcove;" in header
        assert "dkim=pass header.d=a.test header.s=mailcove-ed25519;" in header
        assert "spf=pass smtp.mailfrom=a@a.test" in header and "dmarc=pass" in header
    finally:
        dns.stop()


def test_relayhost_with_auth_over_starttls(serve_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    pa, pb = free_tcp_port(), free_tcp_port()
    dns = Dnsmasq(tmp_path)  # no MX for b.test: only the relay host knows the way
    dns.host("mx.a.test", "127.0.0.1")
    dns.start()
    try:
        b = start_instance(serve_factory, "b.test", pb, dns, pa, start=False)
        # the relay account; it owns the From: address, as the submission listener demands
        cli(b, "domain", "add", "a.test")
        cli(b, "user", "add", "a@a.test", "--password-stdin", input="It1\n")
        b.start()
        sub = b.port("submission")
        secret = tmp_path / "relay-password"
        secret.write_text("It1\n")
        relay = (f'[relayhost]\nhost = "127.0.0.1"\nport = {sub}\nusername = "a@a.test"\n'
                 f'password_file = "{secret}"\ntls = "starttls"\ntls_verify = false\n')
        a = start_instance(serve_factory, "a.test", pa, dns, 1, extra=relay)
        send(pa, "a@a.test", ["b@b.test"], MSG)
        [got] = wait_for(lambda: b.read_mailbox("b@b.test"), what="delivery through the relay host")
        assert b"with ESMTPSA" in got and b"authenticated as a@a.test" in got
        wait_for(lambda: not queue_items(a), what="empty queue")
    finally:
        dns.stop()


def test_transport_entry_without_dns(serve_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    pa, pb = free_tcp_port(), free_tcp_port()
    dns = Dnsmasq(tmp_path)  # knows nothing about b.test
    dns.start()
    try:
        b = start_instance(serve_factory, "b.test", pb, dns, pa)
        a = start_instance(serve_factory, "a.test", pa, dns, 1,
                           extra=f'[transport]\n"b.test" = "127.0.0.1:{pb}"\n')
        send(pa, "a@a.test", ["b@b.test"], MSG)
        wait_for(lambda: b.read_mailbox("b@b.test"), what="delivery by transport")
        wait_for(lambda: not queue_items(a), what="empty queue")
    finally:
        dns.stop()
