"""Literal and line bombs: announced sizes far over the limit, endless lines, deep nesting,
many literals, a deflate bomb. None may make the server buffer without bound; each gets a
protocol error or BYE, and the server keeps serving other sessions."""

# ruff: noqa: F811 - the fixtures are imported from imap_lab and then requested by name
from __future__ import annotations

import sys
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "imap"))
from imap_lab import Client, imap, imap_module  # noqa: F401

from mailcove.proto.imap.client import Continuation, Tagged, Untagged


def test_huge_literal_announcements(imap):
    c = imap.client()
    # (A non-synchronising literal over the limit is refused too, but its bytes are then skipped
    # by counting, so nothing after it could be checked here.)
    for line in (b"a LOGIN {99999999999}\r\n", b"a SEARCH TEXT {5000000}\r\n", b"a APPEND INBOX {99999999999}\r\n"):
        c.send(line)
        r = c.read_one()
        assert isinstance(r, Tagged) and r.status in ("NO", "BAD"), line
    c.ok("NOOP")


def test_endless_line_gets_bye(imap):
    c = imap.client()
    try:
        for _ in range(200):
            c.send(b"x" * 8192)
    except OSError:
        pass
    seen = c.poll(3)
    assert any(isinstance(r, Untagged) and r.kind == "BYE" for r in seen)
    imap.client().ok("NOOP")  # the server is fine


def test_deep_nesting_and_many_literals(imap):
    c = imap.client(select="INBOX")
    _, done = c.cmd(b"SEARCH " + b"(" * 500 + b"ALL" + b")" * 500)
    assert done.status == "BAD"
    _, done = c.cmd(b"SEARCH " + b"NOT " * 500 + b"ALL")
    assert done.status == "BAD"
    # many small non-synchronising literals in one command: bounded by the command size limit
    line = b"t SEARCH " + b" ".join(b"TEXT {1+}\r\nx" for _ in range(200000)) + b"\r\n"
    try:
        c.send(line)
    except OSError:
        pass
    seen = c.poll(5)
    assert any(isinstance(r, (Tagged, Untagged)) and r.kind in ("BAD", "BYE") if isinstance(r, Untagged)
               else r.status in ("BAD", "NO") for r in seen)
    imap.client().ok("NOOP")


def test_deflate_bomb(imap):
    c = imap.client()
    c.send(b"z COMPRESS DEFLATE\r\n")
    assert c.read_one().status == "OK"
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = comp.compress(b"A" * (200 * 1024 * 1024)) + comp.flush(zlib.Z_SYNC_FLUSH)  # 200 MB -> ~200 KB
    try:
        c.sock.sendall(bomb)
    except OSError:
        pass
    c.sock.settimeout(5)
    data = b""
    dec = zlib.decompressobj(-15)
    try:
        while True:
            chunk = c.sock.recv(65536)
            if not chunk:
                break
            data += dec.decompress(chunk)
    except OSError:
        pass
    assert b"BYE" in data
    imap.client().ok("NOOP")
    assert Client


def test_before_login_only_small_commands_are_read(imap):
    """Issue 13 finding 2: an unauthenticated client may not park a 1 MiB command (Dovecot's
    imap-login keeps a few KB too); after login the full limits apply."""
    c = imap.raw()
    c.send(b"a LOGIN {100000}\r\n")
    r = c.read_one()
    assert isinstance(r, Tagged) and r.status in ("NO", "BAD"), r
    c.send(b"b NOOP\r\n")
    assert c.read_one().status == "OK"
    c.send(b"c LOGIN " + b"x" * 70000 + b" y\r\n")  # a line over the pre-login limit
    seen = c.poll(3)
    assert any((isinstance(r, Tagged) and r.status == "BAD") or (isinstance(r, Untagged) and r.kind == "BYE")
               for r in seen), seen
    # a logged-in client may still send a 20 KB literal
    d = imap.client(select="INBOX")
    d.send(b"d SEARCH TEXT {20000+}\r\n" + b"z" * 20000 + b"\r\n")
    r = d.read_one()
    while not isinstance(r, Tagged):
        r = d.read_one()
    assert r.status == "OK", r


def test_before_login_literals_are_at_most_4_kib(imap):
    """Before login a literal inside a command (LOGIN's password, an ID value) may be at most
    4 KiB: only the command as a whole was capped (64 KiB), so `a LOGIN {60000}` was answered
    with "+" and read. Refused before any of it is read; a non-synchronising one is skipped."""
    c = imap.raw()
    c.send(b"a LOGIN {4097}\r\n")
    r = c.read_one()
    assert isinstance(r, Tagged) and (r.status, r.code) == ("BAD", "TOOBIG"), r
    assert r.text == "Literal larger than 4096 bytes"
    c.send(b"b LOGIN {5000+}\r\n" + b"x" * 5000 + b" y\r\nc NOOP\r\n")
    r = c.read_one()
    assert isinstance(r, Tagged) and (r.tag, r.status, r.code) == ("b", "BAD", "TOOBIG"), r
    assert c.read_one().status == "OK"  # the 5,000 bytes were skipped, not taken as commands
    c.send(b"d LOGIN {4096}\r\n")
    assert isinstance(c.read_one(), Continuation)  # 4 KiB is allowed
    c.send(b"x" * 4096 + b" y\r\n")
    r = c.read_one()
    assert isinstance(r, Tagged) and (r.status, r.code) == ("NO", "AUTHENTICATIONFAILED"), r
    # after login the full limits apply: a 20 KB literal is read
    d = imap.client()
    d.send(b"e STATUS {20000}\r\n")
    assert isinstance(d.read_one(), Continuation)
