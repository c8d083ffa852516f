"""imap/fmt.py: ENVELOPE / BODY / BODYSTRUCTURE from scanned messages, checked by the strict response
parser and against the exact forms Dovecot gives for simple cases; the HEADER.FIELDS filter."""

from __future__ import annotations

import pytest

from mailcove.imap.fmt import body, bodystructure, envelope, filter_header_fields
from mailcove.message import scan
from mailcove.proto.imap.client import parse_responses

SIMPLE = b"From: Joe <joe@example.com>\r\nTo: a@b.c\r\nSubject: hi\r\nMessage-ID: <1@x>\r\n\r\nhello\r\n"
NESTED = (
    b"From: \"A B\" <a@x.org>\r\nTo: g: c@d.e, f@g.h;\r\nSubject: =?utf-8?q?h=C3=A9?= caf\xc3\xa9\r\n"
    b"Content-Type: multipart/mixed; boundary=XX\r\n\r\npre\r\n"
    b"--XX\r\nContent-Type: multipart/alternative; boundary=YY\r\n\r\n"
    b"--YY\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nh\xc3\xa9\r\n"
    b"--YY\r\nContent-Type: text/html\r\nContent-Language: en, de\r\n\r\n<p>x</p>\r\n--YY--\r\n"
    b"--XX\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nFrom: i@j.k\r\n\r\nbody\r\n"
    b"--XX\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\nContent-Disposition: attachment; filename=a.pdf\r\n"
    b"Content-Transfer-Encoding: base64\r\nContent-ID: <p1>\r\nContent-Description: the pdf\r\n\r\nAAAA\r\n--XX--\r\n"
)
NO_HEADERS = b"\r\njust a body\r\n"
BROKEN = b"Subject: \xff\xfe broken\r\nFrom: <<<@@@\r\nContent-Type: multipart/mixed\r\n\r\nno boundary\r\n"


def _check(msg: bytes, utf8: bool = False) -> dict[str, object]:
    info = scan(msg)
    line = (b"* 1 FETCH (ENVELOPE " + envelope(info.envelope, utf8) + b" BODY " + body(info, utf8) +
            b" BODYSTRUCTURE " + bodystructure(info, utf8) + b")\r\n")
    (resp,) = parse_responses(line)
    return resp.data  # type: ignore[union-attr, no-any-return]


@pytest.mark.parametrize("msg", [SIMPLE, NESTED, NO_HEADERS, BROKEN], ids=["simple", "nested", "noheaders", "broken"])
@pytest.mark.parametrize("utf8", [False, True])
def test_grammar(msg: bytes, utf8: bool) -> None:
    data = _check(msg, utf8)
    assert set(data) == {"ENVELOPE", "BODY", "BODYSTRUCTURE"}


def test_simple_matches_dovecot_form() -> None:
    info = scan(SIMPLE)
    assert envelope(info.envelope) == (
        b'(NIL "hi" (("Joe" NIL "joe" "example.com")) (("Joe" NIL "joe" "example.com")) '
        b'(("Joe" NIL "joe" "example.com")) ((NIL NIL "a" "b.c")) NIL NIL NIL "<1@x>")')
    assert bodystructure(info) == b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 7 1 NIL NIL NIL NIL)'
    assert body(info) == b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 7 1)'


def test_nested_structure() -> None:
    bs = _check(NESTED)["BODYSTRUCTURE"]
    assert isinstance(bs, dict)
    assert bs["subtype"] == b"mixed" and bs["params"] == [(b"boundary", b"XX")]
    alt, msg, pdf = bs["parts"]
    assert alt["subtype"] == b"alternative" and [p["subtype"] for p in alt["parts"]] == [b"plain", b"html"]
    assert alt["parts"][1]["language"] == [b"en", b"de"]
    assert msg["type"] == b"message" and msg["envelope"][1] == b"inner" and msg["body"]["subtype"] == b"plain"
    assert pdf["disposition"] == (b"attachment", [(b"filename", b"a.pdf")])
    assert (pdf["id"], pdf["description"], pdf["encoding"]) == (b"<p1>", b"the pdf", b"base64")
    env = _check(NESTED)["ENVELOPE"]
    assert env[1] == b"=?utf-8?q?h=C3=A9?= caf\xc3\xa9"  # raw header bytes, as Dovecot sends them
    assert env[5] == [[None, None, b"g", None], [None, None, b"c", b"d.e"], [None, None, b"f", b"g.h"],
                      [None, None, None, None]]


def test_8bit_header_is_a_literal_unless_valid_utf8_in_utf8_mode() -> None:
    info = scan(NESTED)
    assert b"{25}\r\n" in envelope(info.envelope)
    assert b'"=?utf-8?q?h=C3=A9?= caf\xc3\xa9"' in envelope(info.envelope, utf8=True)
    info = scan(BROKEN)
    assert b"{" in envelope(info.envelope, utf8=True)  # \xff is not UTF-8: literal even for rev2


HEADER = (b"Received: from a\r\n\tby b\r\nFrom: x@y\r\nTO: z@w\r\nSubject: s\r\n  continued\r\n"
          b"X-Empty:\r\nSubject: second\r\n\r\n")


@pytest.mark.parametrize(("names", "exclude", "expected"), [
    (["From"], False, b"From: x@y\r\n\r\n"),
    (["to", "SUBJECT"], False, b"TO: z@w\r\nSubject: s\r\n  continued\r\nSubject: second\r\n\r\n"),
    (["Nope"], False, b"\r\n"),
    (["Received", "Subject"], True, b"From: x@y\r\nTO: z@w\r\nX-Empty:\r\n\r\n"),
    (["x-empty"], False, b"X-Empty:\r\n\r\n"),
])
def test_filter_header_fields(names: list[str], exclude: bool, expected: bytes) -> None:
    assert filter_header_fields(HEADER, names, exclude) == expected


def test_filter_header_fields_without_blank_line() -> None:
    assert filter_header_fields(b"From: a\r\nTo: b", ["to"]) == b"To: b\r\n"


@pytest.mark.parametrize("msg", [SIMPLE, NESTED, NO_HEADERS], ids=["simple", "nested", "noheaders"])
def test_imapclient_reads_the_same_structure(msg: bytes) -> None:
    """A real client library's parser (imapclient, used by many tools) agrees with ours."""
    from imapclient.response_parser import parse_fetch_response

    info = scan(msg)
    bs, env = bodystructure(info, True), envelope(info.envelope, True)
    theirs = parse_fetch_response([b"1 (BODYSTRUCTURE " + bs + b" ENVELOPE " + env + b")"])[1]
    ours = _check(msg, True)

    def count_parts(node: object) -> int:  # leaf parts in imapclient's tuple form
        if isinstance(node, list):
            return sum(count_parts(n) for n in node)
        if isinstance(node, tuple) and node and isinstance(node[0], list):
            return count_parts(node[0])
        return 1

    def count_ours(node: dict[str, object]) -> int:
        parts = node.get("parts")
        return sum(count_ours(p) for p in parts) if isinstance(parts, list) else 1  # type: ignore[arg-type]

    assert count_parts(theirs[b"BODYSTRUCTURE"]) == count_ours(ours["BODYSTRUCTURE"])  # type: ignore[arg-type]
    assert theirs[b"ENVELOPE"].subject == ours["ENVELOPE"][1]  # type: ignore[index]
