"""IDLE (RFC 2177): continuation, DONE, a wrong line, IDLE without a selected mailbox, and the
BYE a client in IDLE gets when the server shuts down."""

from __future__ import annotations

from imap_lab import message

from mailcove.proto.imap.client import Continuation, Tagged, Untagged


def test_idle_done_and_wrong_line(imap):
    c = imap.client()
    c.send(b"i1 IDLE\r\n")  # authenticated state: allowed, nothing to report
    assert isinstance(c.read_one(), Continuation)
    c.send(b"DONE\r\n")
    r = c.read_one()
    assert isinstance(r, Tagged) and r.tag == "i1" and r.status == "OK"
    c.ok("SELECT INBOX")
    c.send(b"i2 IDLE\r\n")
    assert isinstance(c.read_one(), Continuation)
    c.send(b"NOOP\r\n")  # anything but DONE ends IDLE with BAD
    r = c.read_one()
    assert isinstance(r, Tagged) and r.tag == "i2" and r.status == "BAD"
    c.ok("NOOP")


def test_idle_gets_bye_at_shutdown(imap_factory):
    box = imap_factory()
    box.deliver(message("x"))
    c = box.client(select="INBOX")
    c.send(b"i1 IDLE\r\n")
    assert isinstance(c.read_one(), Continuation)
    box.srv.stop(timeout=30)
    seen = c.poll(3)
    assert any(isinstance(r, Untagged) and r.kind == "BYE" for r in seen)
