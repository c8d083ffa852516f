"""Inbound checks in the real flow: b.test's SMTP session adds Authentication-Results with
dkim=pass spf=pass dmarc=pass for a.test's signed mail found by MX through dnsmasq, removes a
forged field carrying its authserv-id, refuses a p=reject failure and files a p=quarantine one
into Junk."""

from __future__ import annotations

import re
import smtplib
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "queue"))

from outbound_testing import Dnsmasq, cli, free_tcp_port, send, start_instance, wait_for

MSG = (b"From: A <a@a.test>\r\nTo: B <b@b.test>\r\nSubject: checked\r\nDate: Sat, 28 Nov 2026 00:00:00 +0000\r\n"
       b"Authentication-Results: mx.b.test; dmarc=pass (forged)\r\n"
       b"Message-ID: <4@a.test>\r\n\r\nchecked body\r\n")


def test_authentication_results_in_the_mailbox(serve_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    pa, pb = free_tcp_port(), free_tcp_port()
    dns = Dnsmasq(tmp_path)
    a = start_instance(serve_factory, "a.test", pa, dns, pb, start=False)
    for line in cli(a, "dkim", "generate", "a.test").splitlines():
        if "._domainkey." in line:
            dns.txt(line.split()[0].rstrip("."), *re.findall(r'"([^"]*)"', line))
    for d in ("a.test", "b.test"):
        dns.mx(d, f"mx.{d}", 10)
        dns.host(f"mx.{d}", "127.0.0.1")
    dns.txt("a.test", "v=spf1 ip4:127.0.0.0/8 -all")
    dns.txt("_dmarc.a.test", "v=DMARC1; p=reject")
    dns.txt("rej.test", "v=spf1 -all")
    dns.txt("_dmarc.rej.test", "v=DMARC1; p=reject")
    dns.txt("q.test", "v=spf1 -all")
    dns.txt("_dmarc.q.test", "v=DMARC1; p=quarantine")
    dns.start()
    try:
        a.config_path.write_text(a.config_path.read_text().replace('nameservers = ["127.0.0.1:0"]',
                                                                   f'nameservers = ["{dns.server}"]'))
        a.start()
        b = start_instance(serve_factory, "b.test", pb, dns, pa, start=False)
        # Every client here connects from 127.0.0.1, which mailcove trusts by default like a
        # LAN client (no checks for mail from machines allowed to relay): b plays an MX on the
        # Internet, so it trusts nobody.
        b.config_path.write_text(b.config_path.read_text().replace(
            "[directory]\n", "[directory]\nrelay_from_localhost = false\n", 1)
            # small limits so that a 40 KB message takes the on-disk path of check_inbound
            + "[store]\ninline_max_bytes = 4096\n[mailauth]\nmax_dkim_bytes = 8192\n")
        b.start()
        send(pa, "a@a.test", ["b@b.test"], MSG)
        [got] = wait_for(lambda: b.read_mailbox("b@b.test"), what="delivery")
        head = got[: got.index(b"\r\n\r\n")].decode()
        fields = re.sub(r"\r\n[ \t]+", " ", head).split("\r\n")
        ar = [f for f in fields if f.lower().startswith("authentication-results:")]
        assert len(ar) == 1 and "(forged)" not in head  # ours only; the forged one is gone
        assert ar[0].startswith("Authentication-Results: mx.b.test;")
        for result in ("dkim=pass header.d=a.test", "spf=pass smtp.mailfrom=a@a.test", "dmarc=pass"):
            assert result in ar[0]
        # DMARC p=reject: refused at the end of DATA
        with pytest.raises(smtplib.SMTPDataError) as e:
            send(pb, "x@rej.test", ["b@b.test"], b"From: x@rej.test\r\nSubject: r\r\n\r\nr\r\n")
        assert e.value.smtp_code == 550 and b"5.7.1" in e.value.smtp_error
        # the same for a message too large to rewrite in memory: refused, and no spool left over
        big = b"From: x@rej.test\r\nSubject: big\r\n\r\n" + (b"y" * 78 + b"\r\n") * 500
        with pytest.raises(smtplib.SMTPDataError) as e:
            send(pb, "x@rej.test", ["b@b.test"], big)
        assert e.value.smtp_code == 550
        assert not [p for p in b.data_dir.rglob("*.tmp")], "a refused message left a spool file"
        # and a large message that passes is stored whole, with the field on top
        large = MSG.replace(b"checked body", b"z" * 60000)
        send(pb, "a@a.test", ["b@b.test"], large)
        got2 = wait_for(lambda: [m for m in b.read_mailbox("b@b.test") if b"zzzz" in m], what="large delivery")[0]
        assert got2.index(b"Authentication-Results: mx.b.test;") < got2.index(b"Received:")
        assert got2.endswith(b"z" * 60000 + b"\r\n") and b"(forged)" not in got2
        # served without the forged field, stored as received: the file was never rewritten (issue 14)
        assert large in [p.read_bytes() for p in (b.data_dir / "blobs").rglob("*") if p.is_file()]
        # DMARC p=quarantine: into Junk
        send(pb, "x@q.test", ["b@b.test"], b"From: x@q.test\r\nSubject: q\r\n\r\nq\r\n")
        [junk] = wait_for(lambda: b.read_mailbox("b@b.test", "Junk"), what="Junk")
        assert b"dmarc=fail (p=quarantine) header.from=q.test" in junk
        assert len(b.read_mailbox("b@b.test")) == 2
        # a client allowed to relay (localhost, on a) is not checked: no A-R field, and a
        # domain's p=reject does not refuse a LAN machine sending in its name
        send(pa, "x@rej.test", ["b@a.test"], b"From: x@rej.test\r\nSubject: lan\r\n\r\nlan\r\n")
        [lan] = wait_for(lambda: a.read_mailbox("b@a.test"), what="LAN delivery")
        assert b"Authentication-Results:" not in lan
    finally:
        dns.stop()
