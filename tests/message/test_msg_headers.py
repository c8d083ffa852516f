from __future__ import annotations

import pytest

from mailcove.message import Address, base_subject, decode_header_value, parse_address_list, parse_date, scan
from mailcove.message.addresses import _full_list
from mailcove.message.headers import parse_params
from mailcove.message.model import _param

A = Address


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("a@b", (A(None, None, "a", "b"),)),
        ("Fred F <fred@ex.com>", (A("Fred F", None, "fred", "ex.com"),)),
        ('"Last, First" <f@l.org>, x@y', (A("Last, First", None, "f", "l.org"), A(None, None, "x", "y"))),
        ('"q \\"x\\"" <q@w>', (A('q "x"', None, "q", "w"),)),
        ("J. Smith <j@s>", (A("J. Smith", None, "j", "s"),)),
        ("a@b (Comment here)", (A("Comment here", None, "a", "b"),)),
        ("<@r1,@r2:a@b>", (A(None, "@r1,@r2", "a", "b"),)),
        ("g: a@b, c@d;", (A(None, None, "g", None), A(None, None, "a", "b"), A(None, None, "c", "d"),
                          A(None, None, None, None))),
        ("undisclosed-recipients:;", (A(None, None, "undisclosed-recipients", None), A(None, None, None, None))),
        ("foo", (A(None, None, "foo", "MISSING_DOMAIN"),)),
        ("<>", (A(None, None, "MISSING_MAILBOX", "SYNTAX_ERROR"),)),
        ("=?utf-8?q?x?= <a@b>", (A("=?utf-8?q?x?=", None, "a", "b"),)),
        ('"a b"@c', (A(None, None, "a b", "c"),)),
        ("a@[127.0.0.1]", (A(None, None, "a", "[127.0.0.1]"),)),
        ("", ()),
        ("  ", ()),
    ],
)
def test_address_lists(value: str, want: tuple[Address, ...]) -> None:
    assert parse_address_list(value) == want
    assert _full_list(value) == want or not value.strip()


def test_sender_and_reply_to_default_to_from() -> None:
    env = scan(b"From: a@b\r\nSender:\r\nTo: c@d\r\n\r\n").envelope
    assert env.sender == env.reply_to == env.from_ == (A(None, None, "a", "b"),)
    assert env.to == (A(None, None, "c", "d"),)
    assert env.cc == env.bcc == ()


def test_first_occurrence_wins_and_values_are_unfolded() -> None:
    info = scan(b"Subject: one\r\n two\r\nSubject: other\r\nMessage-ID:\r\n <x@y>\r\n\r\n")
    assert info.envelope.subject == "one two"
    assert info.envelope.message_id == "<x@y>" and info.message_id == "x@y"


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("plain", "plain"),
        ("=?utf-8?q?caf=C3=A9?=", "café"),
        ("=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=", "ab"),  # whitespace between encoded words is dropped
        ("=?utf-8?b?w6k=?= x", "é x"),
        ("x =?utf-8?B?w6k?=", "x é"),  # missing padding
        ("=?unknown-cs?q?abc?=", "abc"),
        ("=?utf-8?q?bad", "=?utf-8?q?bad"),
        (b"caf\xc3\xa9", "café"),
        (b"caf\xe9", "café"),  # not UTF-8: Windows-1252 fallback
        ("a\r\n b", "a b"),
    ],
)
def test_decode_header_value(raw: str | bytes, want: str) -> None:
    assert decode_header_value(raw) == want


@pytest.mark.parametrize(
    ("subject", "want"),
    [
        ("Re: hello", "hello"),
        ("RE: Fwd: [list] hello (fwd)", "hello"),
        ("Re:   re[2]:  hello  world ", "hello world"),
        ("[Fwd: the thing]", "the thing"),
        ("[list]", "[list]"),
        ("[a] [b] x", "x"),
        ("plain subject", "plain subject"),
        ("", ""),
        ("fw: fwd: re: ", ""),
    ],
)
def test_base_subject(subject: str, want: str) -> None:
    assert base_subject(subject) == want


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("Tue, 15 Nov 1994 08:12:31 -0500", 784905151.0),
        ("15 Nov 1994 13:12:31 +0000 (UTC)", 784905151.0),
        ("Tue, 15 Nov 94 08:12:31 EST", 784905151.0),
        ("not a date", None),
        (None, None),
        ("", None),
    ],
)
def test_parse_date(value: str | None, want: float | None) -> None:
    assert parse_date(value) == want


def test_params_rfc2231_and_quoting() -> None:
    main, params = parse_params(
        "Application/X-Thing; A=\"q;u\\\"o\"; title*0*=us-ascii'en'This%20is; title*1*=%20fun; plain=tok"
    )
    assert main == "application/x-thing"
    # the wire form Dovecot serves in BODYSTRUCTURE: plain parameters first, RFC 2231 merged after
    assert params == (("a", 'q;u"o'), ("plain", "tok"), ("title*", "us-ascii'en'This%20is%20fun"))
    assert _param(params, "title") == "This is fun"
    assert _param(params, "a") == 'q;u"o'


@pytest.mark.parametrize(
    ("header", "want", "decoded"),
    [
        # one extended section
        ("x; filename*=iso-8859-1''%E9t%E9.bin", (("filename*", "iso-8859-1''%E9t%E9.bin"),), "\u00e9t\u00e9.bin"),
        # non-extended continuations join into the plain name
        ('x; name*0="a b"; name*1=c', (("name", "a bc"),), "a bc"),
        # mixed: '' in front for a plain first section, % escaped in plain sections
        ("x; n*0=50%; n*1*=%20off", (("n*", "''50%25%20off"),), "50% off"),
        # a missing section number keeps the raw sections
        ("x; k*0=a; k*2=c", (("k*0", "a"), ("k*2", "c")), None),
        # sections out of order are sorted
        ("x; t*1*=b; t*0*=utf-8''a", (("t*", "utf-8''ab"),), "ab"),
    ],
)
def test_params_rfc2231_merge_like_dovecot(header: str, want: tuple[tuple[str, str], ...], decoded: str | None) -> None:
    _main, params = parse_params(header)
    assert params == want
    name = want[0][0].split("*")[0]
    assert _param(params, name) == decoded


def test_search_text_is_decoded_on_demand() -> None:
    info = scan(b"From: =?utf-8?q?J=C3=BCrgen?= <j@x>\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n\r\n")
    assert info.header_text("from") == "Jürgen <j@x>"
    assert info.header_text("subject") == info.subject == "café"
    assert info.header_text("cc") is None
    assert info.envelope.from_[0] == A("=?utf-8?q?J=C3=BCrgen?=", None, "j", "x")
