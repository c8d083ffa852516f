"""MIME: message/'s one-pass scanner (scanner.py, with headers.py, addresses.py, dates.py,
subject.py) that builds MessageInfo at delivery, and what IMAP then serves from it: ENVELOPE,
BODY and BODYSTRUCTURE (imap/fmt.py), SEARCH BODY text, SORT keys and THREAD (imap/search.py,
sort.py, thread.py; not in the coverage figure), BODY[section] ranges (sections.py), BINARY decoding
(decode.py), the MessageInfo serialisation the store keeps (model.py), the CRLF normaliser of
APPEND (newlines.py) and the binary re-encoding of delivery (binary.py).

The input is a whole message (after the two control bytes: data[0] bit 0 asks for UTF-8 FETCH
output, data[1] cuts the message into reads for the incremental CRLF normaliser).

`scan()` never raises by contract: it catches everything and describes the message as one text
part, which hides a bug as a wrong BODYSTRUCTURE. So the target calls the inner `_scan`, and an
exception there is a finding. Other findings: offsets outside the message or out of order, a
serialisation that does not read back equal, a CRLF normaliser that disagrees with to_crlf.
The documented refusals are `UnknownTransferEncoding` (NO [UNKNOWN-CTE]) and `SectionNotFound`."""

from __future__ import annotations

from collections.abc import Generator

from fuzz.common import Finding, seed, split
from mailcove.imap import fmt
from mailcove.imap import search as imap_search
from mailcove.imap import sort as imap_sort
from mailcove.imap import thread as imap_thread
from mailcove.message import binary, newlines
from mailcove.message.addresses import parse_address_list
from mailcove.message.dates import parse_date, parse_date_day
from mailcove.message.decode import UnknownTransferEncoding, decode_body
from mailcove.message.headers import decode_header_value
from mailcove.message.model import MessageInfo, Part, _param
from mailcove.message.scanner import _scan
from mailcove.message.sections import SectionNotFound, find_section
from mailcove.message.subject import base_subject, is_reply_or_forward
from mailcove.store.api import MessageMeta

INSTRUMENT = ["mailcove.message", "mailcove.imap.fmt"]
MODULES = [f"src/mailcove/message/{m}.py" for m in (
    "scanner", "headers", "addresses", "dates", "subject", "decode", "sections", "model", "newlines", "binary")
] + ["src/mailcove/imap/fmt.py"]

_SIMPLE = (b"Return-Path: <alice@example.org>\r\nReceived: from a by b; Mon, 1 Jan 2024 10:00:00 +0000\r\n"
           b"Date: Mon, 1 Jan 2024 10:00:00 +0100\r\nFrom: \"Alice A.\" <alice@example.org>\r\n"
           b"Sender: alice@example.org\r\nReply-To: list@example.org\r\n"
           b"To: Bob <bob@example.net>, undisclosed-recipients:;\r\nCc: team: carol@example.net, dave@x.y;\r\n"
           b"Subject: Re: [list] Fwd: hello\r\nMessage-ID: <1@example.org>\r\nIn-Reply-To: <0@example.org>\r\n"
           b"References: <a@b> <0@example.org>\r\n\r\nHello Bob,\r\n\r\nbye\r\n")
_MULTI = (b"From: =?utf-8?q?J=C3=B6rg?= <j@example.org>\r\nTo: =?ISO-8859-1?B?SvZyZw==?= <x@y>\r\n"
          b"Subject: =?utf-8?b?w6TDtsO8?= =?utf-8?q?_more?=\r\nDate: 1 Jan 24 10:00 EST\r\nMIME-Version: 1.0\r\n"
          b"Content-Type: multipart/mixed;\r\n boundary=\"outer\"\r\n\r\npreamble\r\n--outer\r\n"
          b"Content-Type: multipart/alternative; boundary=inner\r\n\r\n--inner\r\n"
          b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
          b"caf=C3=A9 =\r\nsoft\r\n--inner\r\nContent-Type: text/html\r\n\r\n<p>hi</p>\r\n--inner--\r\n"
          b"--outer\r\nContent-Type: application/pdf; name*=utf-8''r%C3%A9sum%C3%A9.pdf\r\n"
          b"Content-Disposition: attachment; filename*0=\"a\"; filename*1=\"b.pdf\"; size=10\r\n"
          b"Content-Transfer-Encoding: base64\r\nContent-ID: <part@x>\r\nContent-Description: a file\r\n"
          b"Content-Language: en, de\r\nContent-Location: http://x/y\r\nContent-MD5: abc=\r\n\r\n"
          b"JVBERi0xLjQK\r\n--outer\r\nContent-Type: message/rfc822\r\n\r\n" + _SIMPLE
          + b"\r\n--outer--\r\nepilogue\r\n")
_DIGEST = (b"Content-Type: multipart/digest; boundary=d\n\n--d\n\nFrom: a@b\nSubject: one\n\nbody one\n--d\n"
           b"Content-Type: text/plain\n\nnot a message\n--d\nContent-Type: message/global\n\nSubject: \xc3\xa4\n\nx\n"
           b"--d--\n")
_ODD = (b"From: <@route,@a:x@y> (comment (nested)) , \"q\\\"uote\" <a@[1.2.3.4]>, bad address, <>\r\n"
        b"To: =?bogus?x?zz?=\r\nSubject: \xe4\xf6\xfc 8-bit\r\n =?utf-8?q?folded?=\r\n"
        b"Date: 31 Feb 2024 25:61:61 +9999\r\n"
        b"Content-Type: multipart/mixed; boundary=\"b\"; boundary=c\r\nContent-Transfer-Encoding: x-uuencode\r\n"
        b"no colon line\r\n\r\n--b \r\nContent-Type: text/plain; charset=\"\r\n\r\n\x00binary\rbare CR\nbare LF\r\n"
        b"--b\r\nContent-Type: multipart/related; boundary=b\r\n\r\n--b\r\n--b--")
_DEEP = b"".join(b"Content-Type: multipart/mixed; boundary=%d\r\n\r\n--%d\r\n" % (i, i) for i in range(70)) + b"x\r\n"
MESSAGES = [_SIMPLE, _MULTI, _DIGEST, _ODD, _DEEP, b"", b"\r\n", b"Subject: only a header",
            b"Content-Type: message/rfc822\r\n\r\nContent-Type: message/rfc822\r\n\r\nSubject: x\r\n\r\ny"]
SEEDS = [seed(m) for m in MESSAGES] + [seed(_MULTI, 1, 7), seed(_ODD, 1, 1)]
TOKENS = [b"Content-Type: ", b"multipart/mixed", b"multipart/alternative", b"multipart/digest", b"message/rfc822",
          b"message/global", b"text/plain", b"; boundary=", b"; charset=", b"*0=", b"*1*=", b"utf-8''",
          b"Content-Transfer-Encoding: ", b"base64", b"quoted-printable", b"binary", b"8bit",
          b"Content-Disposition: attachment", b"; filename=", b"Content-Language: ", b"Content-ID: ",
          b"From: ", b"To: ", b"Cc: ", b"Bcc: ", b"Subject: ", b"Date: ", b"Message-ID: ", b"In-Reply-To: ",
          b"References: ", b"Reply-To: ", b"Sender: ", b"=?utf-8?q?", b"=?utf-8?b?", b"?=", b"\r\n--", b"--\r\n",
          b"\r\n\r\n", b"\r\n ", b"<", b">", b"@", b":", b";", b"\"", b"(", b")", b"[", b"]", b"\\", b"Re: ",
          b"Fwd: ", b"[list] ", b" +0100", b"Mon, 1 Jan 2024 10:00:00", b"=3D", b"=\r\n"]

_SUB = ("", "HEADER", "TEXT", "MIME", "HEADER.FIELDS (From)")


def _run(steps: Generator[None, None, object]) -> object:
    """A stepped algorithm (imap/sort.py, imap/thread.py) to its end, without the event loop that
    cooperative.drive would pause on between steps."""
    try:
        while True:
            next(steps)
    except StopIteration as stop:
        return stop.value


def _check_part(part: Part, size: int) -> None:
    if not 0 <= part.header_start <= part.body_start <= part.body_end <= size:
        raise Finding(f"offsets out of order or outside the message: {part!r}")
    for child in part.parts:
        if not part.body_start <= child.header_start or not child.body_end <= part.body_end:
            raise Finding(f"a child outside its multipart: {child!r} in {part!r}")


def _sections(part: Part, prefix: str, out: list[str], budget: list[int]) -> None:
    budget[0] -= 1
    if budget[0] < 0:
        return
    kids = part.parts or ((part.message,) if part.message is not None else ())
    if part.message is not None and part.message.parts:
        kids = part.message.parts
    for i, child in enumerate(kids, 1):
        spec = f"{prefix}{i}"
        out.append(spec)
        _sections(child, spec + ".", out, budget)


def one_input(data: bytes) -> None:
    policy, reads = split(data)
    message = data[2:]
    utf8 = bool(policy & 0x01)
    info = _scan(message)
    size = len(message)
    if info.size != size:
        raise Finding(f"MessageInfo.size {info.size} for {size} bytes")
    for part in info.root.walk():
        _check_part(part, size)
        # parameters are RFC 2231 decoded on demand (FETCH BODYSTRUCTURE sends them as written)
        part.charset  # noqa: B018
        part.param("name")
        _param(part.disposition_params, "filename")
        try:
            decode_body(message, part)
        except UnknownTransferEncoding:
            pass
    # What FETCH serves.
    fmt.bodystructure(info, utf8)
    fmt.body(info, utf8)
    fmt.envelope(info.envelope, utf8)
    specs: list[str] = []
    _sections(info.root, "", specs, [200])
    for spec in ["", "0", "1", "1.1", "99", *specs]:
        for sub in _SUB:
            full = f"{spec}.{sub}" if spec and sub else (spec or sub)
            try:
                start, end = find_section(info, full)
            except SectionNotFound:
                continue
            if not 0 <= start <= end <= size:
                raise Finding(f"BODY[{full}] range {start}..{end} outside the message of {size} bytes")
            if sub.startswith("HEADER.FIELDS"):
                fmt.filter_header_fields(message[start:end], ["From", "Subject"], exclude=bool(policy & 0x02))
    # SEARCH and SORT.
    for name in ("from", "to", "cc", "bcc", "subject"):
        text = info.header_text(name)
        if text is not None:
            is_reply_or_forward(text)
    base_subject(info.subject)
    imap_search._body_text(message, info)  # SEARCH BODY / TEXT
    metas = [(1, MessageMeta(1, frozenset(), 1, 0.0, size, info)), (2, MessageMeta(2, frozenset(), 2, 0.0, size, info))]
    keys = imap_sort.distinct_keys([(key, False) for key in sorted(imap_sort.SORT_KEYS)])
    _run(imap_sort.order_steps([(seq, imap_sort.key_values(m, keys)) for seq, m in metas], keys))
    fields = [(seq, imap_thread.fields(m)) for seq, m in metas]
    _run(imap_thread.references_steps(fields))  # the same Message-ID twice, too
    _run(imap_thread.ordered_subject_steps(fields))
    parse_address_list(info.from_raw)
    decode_header_value(info.to_raw or "")
    parse_date_day(info.envelope.date)
    parse_date(info.envelope.date)
    # What the store keeps must read back the same.
    if MessageInfo.from_bytes(info.to_bytes()) != info:
        raise Finding("MessageInfo does not survive to_bytes/from_bytes")
    # APPEND's incremental CRLF normaliser agrees with the one-shot one.
    norm = newlines.CrlfNormalizer()
    streamed = b"".join(norm.feed(chunk) for chunk in reads) + norm.finish()
    whole = newlines.to_crlf(message)
    if streamed != whole or not newlines.is_crlf_clean(whole):
        raise Finding("CrlfNormalizer and to_crlf disagree")
    binary.encode_binary_parts(message)
