"""Open-relay tricks from an unauthenticated client without a RELAY rule (127.0.0.3): none may
put mail into the outbound queue. Each must be refused at RCPT time (never accepted then
bounced)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "smtp"))
from smtp_lab import start_lab

TRICKS = {
    b"<user%example.net@hamap.local>": (b"550", b"5.1.1"),
    b'<"user@example.net"@hamap.local>': (b"553", b"5.1.3"),  # quoted local parts: not ours
    b"<@hamap.local:user@example.net>": (b"550", b"5.7.1"),
    b"<@hamap.local,@mx1.hamap.local:user@example.net>": (b"550", b"5.7.1"),
    b"<example.net!user@hamap.local>": (b"550", b"5.1.1"),
    b"<example.net!user>": (b"501", b"5.1.3"),
    b"<user@example.net@hamap.local>": (b"501", b"5.1.3"),
    b"<user@[192.0.2.1]>": (b"550", b"5.7.1"),
    b"<user@example.net.>": (b"550", b"5.7.1"),
    b"<user@EXAMPLE.NET>": (b"550", b"5.7.1"),
    b"user@example.net": (b"550", b"5.7.1"),
    b"<user%example.net>": (b"501", b"5.1.3"),
    b'<"user%example.net"@hamap.local>': (b"550", b"5.1.1"),  # unquoted: a plain local part
    b'<"user@example.net"@example.net>': (b"553", b"5.1.3"),
}


def _try(lab, source):
    out = {}
    c = lab.raw(source=source)
    c.cmd(b"EHLO x")
    for rcpt in TRICKS:
        assert c.cmd(b"MAIL FROM:<x@example.org>").startswith(b"250")
        r = c.cmd(b"RCPT TO:" + rcpt)
        out[rcpt] = (r[:3], r[4:9])
        c.cmd(b"RSET")
    c.close()
    return out


def test_open_relay_tricks_refused(serve_factory):
    lab = start_lab(serve_factory, smtp="max_errors = 100")
    got = _try(lab, "127.0.0.3")
    assert got == TRICKS
    assert lab.queue() == []


def test_tricks_with_catch_all_stay_local(serve_factory):
    """A catch-all takes `user%remote@local` locally; it never becomes a relay."""
    lab = start_lab(serve_factory, smtp="max_errors = 100",
                    setup=lambda lab: lab.cli("alias", "add", "@hamap.local", "b@hamap.local"))
    c = lab.raw(source="127.0.0.3")
    c.cmd(b"EHLO x")
    c.send(b"MAIL FROM:<x@example.org>\r\nRCPT TO:<user%example.net@hamap.local>\r\n"
           b"RCPT TO:<example.net!user@hamap.local>\r\nRCPT TO:<@hamap.local:user@example.net>\r\nDATA\r\n")
    assert [r[:3] for r in c.replies(5)] == [b"250", b"250", b"250", b"550", b"354"]
    c.send(b"Subject: x\r\n\r\nx\r\n.\r\n")
    assert c.reply().startswith(b"250")
    c.close()
    assert len(lab.inbox("b@hamap.local")) == 1  # both local forms, one copy
    assert lab.queue() == []


def test_localhost_relays_by_default_and_not_when_disabled(serve_factory):
    lab = start_lab(serve_factory)
    c = lab.raw(source="127.0.0.1")
    c.cmd(b"EHLO x")
    c.cmd(b"MAIL FROM:<x@hamap.local>")
    assert c.cmd(b"RCPT TO:<far@example.net>").startswith(b"250")
    c.close()
    lab2 = start_lab(serve_factory, directory="relay_from_localhost = false")
    c = lab2.raw(source="127.0.0.1")
    c.cmd(b"EHLO x")
    c.cmd(b"MAIL FROM:<x@hamap.local>")
    assert c.cmd(b"RCPT TO:<far@example.net>").startswith(b"550 5.7.1")
    c.close()
