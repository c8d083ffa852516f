"""Invalid deflate data after COMPRESS=DEFLATE (issue 13, finding 13): the server logged a
traceback. Now a client whose compressed stream cannot be inflated gets `* BYE Invalid compressed
data` (compressed, as everything after COMPRESS) and the connection closes, the log holds no
traceback, and the server carries on."""

# ruff: noqa: F811 - the fixtures are imported from imap_lab and then requested by name
from __future__ import annotations

import sys
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "imap"))
from imap_lab import Client, imap, imap_module  # noqa: F401

GARBAGE = b"\xff" * 32  # a deflate block of the reserved type 3: "invalid block type"


def _rest_until_close(c: Client) -> bytes:
    out = b""
    while chunk := c.sock.recv(65536):
        out += chunk
    return out


def _compressed_bye(raw: bytes) -> bytes:
    return zlib.decompressobj(-15).decompress(raw)


def _start(imap) -> Client:  # type: ignore[no-untyped-def]
    c = imap.client()
    c.ok("NOOP")
    return c


def test_garbage_after_compress_gets_bye(imap) -> None:
    c = _start(imap)
    c.send(b"z1 COMPRESS DEFLATE\r\n")
    assert c.read_one().status == "OK"
    c.send(GARBAGE)
    assert b"* BYE Invalid compressed data\r\n" in _compressed_bye(_rest_until_close(c))


def test_garbage_after_good_compressed_commands_gets_bye(imap) -> None:
    c = _start(imap)
    c.send(b"z1 COMPRESS DEFLATE\r\n")
    assert c.read_one().status == "OK"
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    c.send(comp.compress(b"z2 NOOP\r\n") + comp.flush(zlib.Z_SYNC_FLUSH))
    c.send(b"\x00\x00\x00\x00" + GARBAGE)  # a stored block whose LEN/NLEN do not match, then junk
    out = _compressed_bye(_rest_until_close(c))
    assert b"z2 OK" in out and out.endswith(b"* BYE Invalid compressed data\r\n"), out


def test_garbage_pipelined_with_compress_gets_bye(imap) -> None:
    c = _start(imap)
    c.send(b"z1 COMPRESS DEFLATE\r\n" + GARBAGE)
    raw = b""
    while b"\r\n" not in raw:  # the tagged OK goes out in clear, then the stream is compressed
        raw += c.sock.recv(65536)
    raw += _rest_until_close(c)
    clear, _, compressed = raw.partition(b"\r\n")
    assert clear.startswith(b"z1 OK"), raw
    assert b"* BYE Invalid compressed data\r\n" in _compressed_bye(compressed)


def test_no_traceback_and_still_serving(imap) -> None:
    for _ in range(3):
        c = _start(imap)
        c.send(b"z1 COMPRESS DEFLATE\r\n" + GARBAGE)
        _rest_until_close(c)
    imap.client().ok("NOOP")
    logs = imap.srv.logs()
    assert "Traceback" not in logs and "zlib.error" not in logs, logs[-3000:]
