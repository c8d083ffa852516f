"""message.binary: binary parts of a literal8 APPEND are stored as base64 with the same decoded
content (RFC 3516 4.4), so BINARY[] gives the octets back and BODY[] never carries NUL."""

from __future__ import annotations

from mailcove.message import decode_body, find_part, scan, to_crlf
from mailcove.message.binary import encode_binary_parts, has_binary_content

SINGLE = (b"From: user@domain.org\r\nMime-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
          b"Content-Transfer-Encoding: binary\r\n\r\n\x00-\xe4\n\r\n\n")


def stored(data: bytes) -> bytes:
    """What APPEND keeps: binary parts re-encoded, then line ends normalised."""
    return to_crlf(encode_binary_parts(data))


def test_single_part_binary_round_trips():
    out = stored(SINGLE)
    assert b"\x00" not in out and b"Content-Transfer-Encoding: base64\r\n" in out
    assert b"binary" not in out
    root = scan(out).root
    assert root.cte == "base64" and decode_body(out, root) == b"\x00-\xe4\n\r\n\n"


def test_multipart_only_binary_leaves_change():
    msg = (b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Transfer-Encoding: binary\r\n  folded\r\n\r\n\x00a\nb\r\n"
           b"--b\r\n\r\n\x00x\r\n"  # no header at all, default 7bit, but a NUL: re-encoded too
           b"--b\r\nContent-Type: text/plain\r\n\r\nline\nx\r\n"  # text: only normalised
           b"--b\r\nContent-Transfer-Encoding: binary\r\n\r\nclean\xff\r\n"  # binary but CRLF-clean
           b"--b--\r\n")
    out = stored(msg)
    assert b"\x00" not in out and b"folded" not in out
    info = scan(out)
    parts = [find_part(info.root, (i,)) for i in (1, 2, 3, 4)]
    assert [p.cte for p in parts] == ["base64", "base64", "7bit", "binary"]
    assert [decode_body(out, p) for p in parts] == [b"\x00a\nb", b"\x00x", b"line\r\nx", b"clean\xff"]


def test_nested_message_and_clean_input_untouched():
    inner = b"Content-Transfer-Encoding: binary\r\n\r\n\x00\x01"
    msg = b"Content-Type: message/rfc822\r\n\r\n" + inner
    out = stored(msg)
    assert b"\x00" not in out
    assert decode_body(out, scan(out).root.message) == b"\x00\x01"
    clean = b"Subject: x\r\nContent-Transfer-Encoding: binary\r\n\r\n\xe4\xf6\r\n"
    assert not has_binary_content(clean) and encode_binary_parts(clean) is clean
    b64 = b"Content-Transfer-Encoding: base64\r\n\r\nAAE=\n\x00"
    assert encode_binary_parts(b64) == b64  # already encoded: left as it is
