"""DSN parameter injection (issue 13, finding 10): ENVID and ORCPT are xtext (RFC 3461 section 4),
so `+0D+0A` decodes to a line break. Such a value was stored and then written into a DSN's
delivery-status part as a new field. Decoded control characters (CR, LF, NUL, ESC, DEL) are
refused with 501 5.5.4 at MAIL/RCPT, as Postfix refuses them, and the DSN builder also flattens
any control character a queue entry made before this fix may still hold."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mailcove.queue import dsn
from mailcove.store.api import OutboundEnvelope, OutboundRecipient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "smtp"))
from smtp_lab import start_lab

INJECTIONS = ["+0D+0AX-Injected:+20yes", "+0A", "+0D", "+00", "a+0Db", "+1B[31m", "+7F", "+09"]


def test_envid_and_orcpt_with_controls_are_refused(serve_factory):
    lab = start_lab(serve_factory)
    c = lab.raw(source="127.0.0.5")
    assert c.cmd(b"EHLO x").startswith(b"250")
    for bad in INJECTIONS:
        reply = c.cmd(f"MAIL FROM:<x@example.org> ENVID=id{bad}".encode())
        assert reply.startswith(b"501 5.5.4"), (bad, reply)
    assert c.cmd(b"MAIL FROM:<x@example.org> ENVID=ok+2Bfine").startswith(b"250")
    for bad in INJECTIONS:
        reply = c.cmd(f"RCPT TO:<a@hamap.local> ORCPT=rfc822;a{bad}@hamap.local".encode())
        assert reply.startswith(b"501 5.5.4"), (bad, reply)
    assert c.cmd(b"RCPT TO:<a@hamap.local> ORCPT=rfc822;a+2Bx@hamap.local").startswith(b"250")
    c.send(b"DATA\r\n")
    assert c.reply().startswith(b"354")
    assert c.cmd(b"Subject: t\r\n\r\nbody\r\n.").startswith(b"250")
    assert c.cmd(b"QUIT").startswith(b"221")
    c.close()
    assert len(lab.inbox("a@hamap.local")) == 1


@pytest.mark.parametrize("bad", ["\r\nX-Injected: yes", "\n", "\r", "\x00", "\x1b[31m"])
def test_dsn_never_writes_a_control_character(bad):
    """A queue entry stored before the parser refused these must not add a field to a DSN."""
    env = OutboundEnvelope("s@example.org", (OutboundRecipient("r@remote.test", f"rfc822;r{bad}@x"),),
                           envid=f"id{bad}")
    report = dsn.build(reporting_mta="mx.test", postmaster="postmaster@mx.test", envelope=env, arrival=0.0,
                       recipients=[dsn.RecipientStatus("r@remote.test", f"rfc822;r{bad}@x", "failed", "5.1.1")],
                       original=b"Subject: x\r\n\r\nbody\r\n", now=0.0)
    for line in report.split(b"\r\n"):
        if line.startswith((b"Original-Envelope-Id:", b"Original-Recipient:")):
            assert not any(ch < 0x20 or ch == 0x7F for ch in line), line
    assert b"\r\nX-Injected" not in report and b"\x00" not in report and b"\x1b" not in report
    assert b"\n\n" not in report and b"\r\r" not in report
