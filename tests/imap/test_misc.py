"""ENABLE, ID, NAMESPACE, NOOP, CHECK, LOGOUT, QUOTA, COMPRESS=DEFLATE, IDLE, bad input."""

from __future__ import annotations

import zlib

from imap_lab import message

from mailcove.proto.imap.client import ResponseParser, Tagged


def test_enable_id_namespace(imap):
    c = imap.client()
    untagged = c.ok("ENABLE CONDSTORE NONSENSE IMAP4rev2")
    assert untagged[0].kind == "ENABLED" and set(untagged[0].data) == {"CONDSTORE", "IMAP4rev2"}
    assert c.ok("ENABLE CONDSTORE")[0].data in ([], None)
    untagged = c.ok('ID ("name" "test" "version" "1")')
    assert untagged[0].kind == "ID"
    untagged = c.ok("ID NIL")
    assert untagged[0].kind == "ID"
    untagged = c.ok("NAMESPACE")
    assert untagged[0].kind == "NAMESPACE"
    c.ok("SELECT INBOX")
    c.ok("CHECK")
    c.ok("NOOP")
    c.send(b"z LOGOUT\r\n")
    assert c.read_one().kind == "BYE"
    r = c.read_one()
    assert isinstance(r, Tagged) and r.status == "OK"


def test_quota(imap_factory):
    box = imap_factory(quota={"a@hamap.local": 10 * 1024 * 1024})
    box.deliver(message("q"))
    c = box.client()
    untagged = c.ok("GETQUOTAROOT INBOX")
    assert [r.kind for r in untagged] == ["QUOTAROOT", "QUOTA"]
    assert b"STORAGE 1 10240" in untagged[1].raw
    assert [r.kind for r in c.ok('GETQUOTA ""')] == ["QUOTA"]
    _, done = c.cmd('SETQUOTA "" (STORAGE 1)')
    assert done.status == "NO"


def test_compress_deflate(imap):
    imap.deliver(message("zipped", "z" * 5000))
    c = imap.client()
    c.send(b"z1 COMPRESS DEFLATE\r\n")
    r = c.read_one()
    assert isinstance(r, Tagged) and r.status == "OK"
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    dec = zlib.decompressobj(-15)
    parser = ResponseParser()

    def send(line: bytes) -> None:
        c.sock.sendall(comp.compress(line) + comp.flush(zlib.Z_SYNC_FLUSH))

    def until(tag: str):
        out = []
        while True:
            r = parser.next_response()
            if r is None:
                parser.receive_data(dec.decompress(c.sock.recv(65536)))
                continue
            out.append(r)
            if isinstance(r, Tagged) and r.tag == tag:
                return out

    send(b"z2 SELECT INBOX\r\nz3 FETCH 1 (BODY.PEEK[])\r\n")
    until("z2")
    out = until("z3")
    assert out[-1].status == "OK"
    assert out[0].data["BODY[]"].count(b"z") >= 5000
    send(b"z4 COMPRESS DEFLATE\r\n")
    assert until("z4")[-1].status == "NO"


def test_bad_commands_then_bye(imap):
    c = imap.client()
    for _ in range(3):
        _, done = c.cmd("FOO BAR")
        assert done.status == "BAD"
    c.ok("NOOP")  # the session carries on
    for _ in range(10):
        c.send(b"x BOGUS\r\n")
    seen = c.poll(2.0)
    assert any(getattr(r, "kind", None) == "BYE" for r in seen)
