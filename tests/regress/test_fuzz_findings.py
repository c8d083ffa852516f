"""What `make fuzz` (fuzz/, docs/fuzzing.md) found, one test per finding, each failing before its fix.

Charset names from the message (issue 13 part 4, MIME target): an RFC 2047 encoded word, an RFC
2231 parameter or a text part's charset names a codec that Python has but that raises ValueError
rather than LookupError on bytes.decode(name, "replace"): "idna" and "undefined" refuse the error
handler, "punycode" fails on 8-bit input, a NUL in the name is "embedded null character", and an
8-bit name holds a lone surrogate. Any sender could put one in a header: the scanner's safety net
then described the message as one text/plain part with no envelope (wrong BODYSTRUCTURE and
ENVELOPE), and SEARCH FROM/SUBJECT/BODY over the mailbox raised. Such a charset now falls back as
an unknown one does."""

from __future__ import annotations

import asyncio

import pytest

from mailcove.imap.search import _body_text
from mailcove.message import decode_header_value
from mailcove.message.model import _param
from mailcove.message.scanner import _scan
from mailcove.web.http import HttpConnection, Limits, Request, Response

HOSTILE = ["idna", "undefined", "punycode", "a\x00b", "\udcff\udcfe"]


@pytest.mark.parametrize("charset", HOSTILE)
def test_encoded_word_with_a_hostile_charset_decodes(charset: str) -> None:
    value = f"=?{charset}?q?=FFx?= and =?{charset}?b?w6Q=?= tail"
    assert decode_header_value(value).endswith(" tail")


@pytest.mark.parametrize("charset", HOSTILE)
def test_message_with_hostile_charsets_scans_fully(charset: str) -> None:
    name = charset.encode("utf-8", "surrogateescape")
    msg = (b"From: =?" + name + b"?q?Eve?= <eve@example.org>\r\nSubject: =?" + name + b"?q?hi?=\r\n"
           b"Content-Type: text/plain; charset=\"" + name + b"\"; name*=" + name + b"''%FFx\r\n\r\nbody\r\n")
    info = _scan(msg)  # scan() would hide an exception behind a one-part fallback
    assert not info.truncated
    assert info.envelope.from_ and info.root.params[0] == ("charset", charset.lower())
    assert info.subject is not None and info.header_text("from") is not None
    assert isinstance(_body_text(msg, info), str)  # SEARCH BODY reads the part in its charset
    assert info.root.param("name").endswith("x")  # RFC 2231, decoded on demand


@pytest.mark.parametrize("charset", HOSTILE)
def test_rfc2231_charset_parameter_with_a_hostile_charset_decodes(charset: str) -> None:
    name = charset.encode("utf-8", "surrogateescape")
    msg = (b"Content-Type: text/plain; charset*=" + name + b"''utf-8\r\n"
           b"Content-Disposition: attachment; filename*=" + name + b"''a%20b\r\n\r\nbody\r\n")
    info = _scan(msg)
    assert info.root.charset is not None and _param(info.root.disposition_params, "filename") is not None
    assert isinstance(_body_text(msg, info), str)


def test_rfc2231_value_with_raw_8bit_bytes_decodes() -> None:
    """8-bit bytes written raw (not %XX) in an RFC 2231 value (issue 13 part 4, MIME target, found
    once the target read every part's parameters): header text keeps bytes that are not UTF-8 as
    lone surrogates, and urllib's unquote_to_bytes encodes a str as strict UTF-8, so Part.param
    raised UnicodeEncodeError, and with it SEARCH BODY over the mailbox (the part's charset)."""
    msg = (b"Content-Type: text/plain; charset*=utf-8''\xff%41; name*=iso-8859-1''caf\xe9%20x\r\n"
           b"Content-Disposition: attachment; filename*=''\xe4.txt\r\n\r\nbody\r\n")
    info = _scan(msg)
    assert info.root.charset is not None
    assert info.root.param("name") is not None and info.root.param("name").endswith(" x")
    assert (_param(info.root.disposition_params, "filename") or "").endswith(".txt")
    assert "body" in _body_text(msg, info)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data

    async def read(self, n: int) -> bytes:
        out, self.data = self.data[:n], self.data[n:]
        return out


class _Writer:
    def __init__(self) -> None:
        self.out = bytearray()

    def write(self, data: bytes) -> None:
        self.out += data

    async def drain(self) -> None:
        return None


async def _app(req: Request) -> Response:
    return Response(200, b"ok")


@pytest.mark.parametrize("target", [b"//x[", b"//[::1", b"//a]b[c/d?q=1", b"http://[/"])
def test_http_request_target_urlsplit_refuses_is_a_400(target: bytes) -> None:
    """HTTP target, found by `make fuzz`: an origin-form target starting with "//" reads as a
    network location to urllib's urlsplit, which raises ValueError ("Invalid IPv6 URL") for an
    unbalanced "[". The exception left HttpConnection.serve(): no answer, a traceback in the log.
    It is a 400 now, and the connection closes."""
    writer = _Writer()
    request = b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"
    asyncio.run(HttpConnection(_Reader(request), writer, _app, Limits()).serve())  # type: ignore[arg-type]
    assert writer.out.startswith(b"HTTP/1.1 400 "), bytes(writer.out[:200])
    assert writer.out.count(b"HTTP/1.1 ") == 1
