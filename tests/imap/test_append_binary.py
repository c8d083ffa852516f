"""APPEND of a literal8 with binary content (RFC 3516 4.4): BINARY[] and BINARY.SIZE[] give the
exact octets back (bare LF/CR and NUL included), and BODY[] never carries a NUL (RFC 9051 4.3)."""

from __future__ import annotations

from imap_lab import fetches

CONTENT = b"\x00-\xe4\n\r\n\n"
MSG = (b"From: user@domain.org\r\nMime-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
       b"Content-Transfer-Encoding: binary\r\n\r\n" + CONTENT)


def test_append_literal8_binary_part(imap):
    c = imap.client()
    c.ok(b"APPEND INBOX ~{%d+}\r\n" % len(MSG) + MSG)
    c.ok("SELECT INBOX")
    got = fetches(c.ok("FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1] BODY.PEEK[1] BODY.PEEK[])"))[1]
    assert got["BINARY.SIZE[1]"] == len(CONTENT) == 7
    assert got["BINARY[1]"] == CONTENT
    assert b"\x00" not in got["BODY[1]"] and b"\x00" not in got["BODY[]"]


def test_append_literal8_text_is_normalised_as_before(imap):
    c = imap.client()
    text = b"Subject: t\nContent-Type: text/plain\n\nline one\nline two\n"
    c.ok(b"APPEND INBOX ~{%d+}\r\n" % len(text) + text)
    c.ok("SELECT INBOX")
    got = fetches(c.ok("FETCH 1 (BODY.PEEK[] BINARY.PEEK[1])"))[1]
    assert got["BODY[]"] == text.replace(b"\n", b"\r\n")
    assert got["BINARY[1]"] == b"line one\r\nline two\r\n"
