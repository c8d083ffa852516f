"""Differential tests: every fast path of the scanner against the full path it short-cuts.

The fast paths (simple address lists, the common Date form, the header split over decoded text,
parameters without quotes, plain-ASCII subjects, the marshal serialisation) must give exactly what
the general code gives. Values are generated from the pieces real headers are made of, with enough
odd ones (quotes, comments, groups, routes, encoded words, 8-bit, stray whitespace) to walk over
every fast path's edge.
"""

from __future__ import annotations

import calendar
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailcove.message import (
    MessageInfo,
    addresses,
    dates,
    headers,
    model,
    parse_address_list,
    parse_date,
    scan,
    scanner,
)
from mailcove.message.addresses import _full_list
from mailcove.message.dates import _fast_date, _full_date
from mailcove.message.headers import _split_params, first_fields, parse_header_block, unfold
from mailcove.message.model import Address, Envelope, Part
from mailcove.message.scanner import _scan

# --- format 1 (JSON), the writer stores used before format 2: the reader must still take what it wrote


def _enc_addrs(addrs: tuple[Address, ...]) -> list[list[str | None]]:
    return [[a.name, a.adl, a.mailbox, a.host] for a in addrs]


def _enc_env(e: Envelope) -> list[Any]:
    return [e.date, e.subject, _enc_addrs(e.from_), _enc_addrs(e.sender), _enc_addrs(e.reply_to),
            _enc_addrs(e.to), _enc_addrs(e.cc), _enc_addrs(e.bcc), e.in_reply_to, e.message_id]


def _enc_part(p: Part) -> list[Any]:
    return [p.header_start, p.body_start, p.body_end, p.type, p.subtype, [list(kv) for kv in p.params], p.id,
            p.description, p.encoding, p.md5, p.disposition, [list(kv) for kv in p.disposition_params],
            list(p.language), p.location, p.lines, [_enc_part(c) for c in p.parts],
            None if p.message is None else _enc_part(p.message),
            None if p.envelope is None else _enc_env(p.envelope), p.truncated]


def to_json_v1(info: MessageInfo) -> bytes:
    return json.dumps(
        [1, info.size, _enc_part(info.root), _enc_env(info.envelope), info.subject,
         info.base_subject, info.date, info.message_id, list(info.in_reply_to), list(info.references),
         info.from_raw, info.to_raw, info.cc_raw, info.bcc_raw, info.part_count, info.truncated],
        separators=(",", ":"),
        ensure_ascii=True,  # lone surrogates (8-bit header bytes) survive as \udcXX escapes
    ).encode("ascii")


def raw_str(value: bytes) -> str:
    return value.decode("utf-8", "surrogateescape")

# --- address lists -------------------------------------------------------------------------------

ATOMS = st.sampled_from(["a", "bob", "Alice", "x.y", "J.", "o'neil", "a+tag", "=?utf-8?q?J=C3=BCrgen?=", "Jürgen",
                         "caf\udce9", "\xa0", "1", "-", ".", "..", "a..b", "x.", ".x", "#!$%&*/=?^_`{|}~"])
SPACE = st.sampled_from(["", " ", "  ", "\t", " \t", "\r", "\n", "\r\n "])
PUNCT = st.sampled_from(["@", "<", ">", ",", ":", ";", '"', "(", ")", "[", "]", "\\", "."])


@st.composite
def phrase(draw: Any) -> str:
    words = draw(st.lists(st.one_of(ATOMS, st.sampled_from(['"Last, First"', '"q \\"x\\""', '""', '"a b"'])),
                          min_size=1, max_size=3))
    return draw(st.sampled_from([" ", "  ", "\t", ""])).join(words)


@st.composite
def addr_spec(draw: Any) -> str:
    local = draw(st.sampled_from(["a", "bob", "first.last", "x+y", '"a b"', "caf\udce9", "", "a.", ".a"]))
    domain = draw(st.sampled_from(["example.org", "b", "[127.0.0.1]", "ex-ample.co.uk", "", "a..b", "d\xe9.fr"]))
    at = draw(st.sampled_from(["@", "@", "@", " @ ", ""]))
    return local + at + domain


@st.composite
def mailbox(draw: Any) -> str:
    kind = draw(st.sampled_from(["spec", "angle", "angle", "named", "comment", "route", "group", "junk"]))
    sp = draw(SPACE)
    if kind == "spec":
        return sp + draw(addr_spec()) + draw(SPACE)
    if kind == "angle":
        return sp + "<" + draw(addr_spec()) + ">" + draw(SPACE)
    if kind == "named":
        return sp + draw(phrase()) + draw(SPACE) + "<" + draw(addr_spec()) + ">" + draw(SPACE)
    if kind == "comment":
        return draw(addr_spec()) + " (" + draw(phrase()) + ")"
    if kind == "route":
        return "<@r1,@r2:" + draw(addr_spec()) + ">"
    if kind == "group":
        return draw(phrase()) + ": " + ", ".join(draw(st.lists(addr_spec(), max_size=2))) + ";"
    return "".join(draw(st.lists(st.one_of(ATOMS, PUNCT, SPACE), max_size=6)))


ADDRESS_LISTS = st.lists(mailbox(), min_size=1, max_size=4).map(lambda xs: ",".join(xs)) | st.builds(
    lambda xs, tail: ",".join(xs) + tail, st.lists(mailbox(), min_size=1, max_size=3),
    st.sampled_from([",", ", ", ",,", " ,", ",\t"]))


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ADDRESS_LISTS)
def test_address_fast_path_equals_full_parser(value: str) -> None:
    assert parse_address_list(value) == _full_list(value)


@pytest.mark.parametrize("value", [
    "Sender <sender@example.org>", "bench@example.test", "Bob <bob@hamap.local>, carol@hamap.local",
    "Alice  Example\t<alice@example.org>", "a@b,", "a@b, ", "J\udcfcrgen <j@example.org>", "=?utf-8?q?x?= <a@b>",
    "x.y <a@b>", ". <a@b>", "a@b,,c@d", "a@b\n", "\xa0 <a@b>", "a@b (c)", '"a" <b@c>, d@e', "Jane\xa0Doe <j@d>",
    '"Jane"\xa0Doe <j@d>', "a\x85b <c@d>",
])
def test_address_fast_path_examples(value: str) -> None:
    assert addresses._simple_list(value) in (None, _full_list(value))
    assert parse_address_list(value) == _full_list(value)


def test_everyday_addresses_take_the_fast_path() -> None:
    for value in ("Sender <sender@example.org>", "bench@example.test", "Bob <bob@x>, carol@y", "A B <a@b>,"):
        assert addresses._unquoted_list(value) is not None, value


# --- dates -----------------------------------------------------------------------------------------

@settings(max_examples=1000, deadline=None)
@given(st.sampled_from(["", "Fri, ", "Mon,", "xyz, "]), st.integers(0, 99), st.sampled_from(["Jan", "feb", "MAR",
       "Dec", "Xyz"]), st.one_of(st.integers(0, 9999), st.integers(1890, 2110)), st.integers(0, 99),
       st.integers(0, 99), st.sampled_from(["", ":00", ":59", ":60", ":99"]), st.sampled_from(["+", "-"]),
       st.integers(0, 9999), st.sampled_from(["", " (UTC)", "  ", " x"]))
def test_date_fast_path_equals_stdlib_arithmetic(wd: str, day: int, mon: str, year: int, hh: int, mm: int,
                                                 ss: str, sign: str, off: int, tail: str) -> None:
    value = f"{wd}{day} {mon} {year:04d} {hh:02d}:{mm:02d}{ss} {sign}{off:04d}{tail}"
    fast = _fast_date(value)
    assert fast is None or fast == _full_date(value)
    assert parse_date(value) == _full_date(value)


def test_date_fast_path_covers_the_common_form() -> None:
    assert _fast_date("Fri, 27 Nov 2026 10:00:00 +0000") == calendar.timegm((2026, 11, 27, 10, 0, 0, 0, 0, 0))
    assert _fast_date("29 Feb 2000 23:59:59 -1230") == _full_date("29 Feb 2000 23:59:59 -1230")
    assert _fast_date("1 Mar 0000 00:00 +0000") is None and _full_date("1 Mar 0000 00:00 +0000") is None


# --- header fields and parameters ------------------------------------------------------------------

FIELD_NAMES = st.sampled_from(["From", "TO", "cc", "Subject", "Date", "Message-ID", "Content-Type", "X-Thing",
                               "Received", "content-transfer-encoding", "References", "Bad Name", "Subject "])
FIELD_VALUES = st.lists(st.sampled_from([*'ab:;<>@ \t"\r', "\r\n ", "\n\t", "\xe9", "\udce9", "ü"]),
                        max_size=20).map("".join)


@st.composite
def header_block(draw: Any) -> bytes:
    lines = [f"{draw(FIELD_NAMES)}{draw(st.sampled_from(['', ' ', chr(9)]))}:{draw(FIELD_VALUES)}"
             for _ in range(draw(st.integers(0, 6)))]
    eol = draw(st.sampled_from(["\r\n", "\n"]))
    lead = draw(st.sampled_from(["", " stray continuation" + eol, "no colon" + eol]))
    block = lead + eol.join(lines) + draw(st.sampled_from([eol + eol + "body", eol, "", eol + "rest"]))
    return block.encode("utf-8", "surrogateescape")


@settings(max_examples=1000, deadline=None)
@given(header_block(), st.sampled_from([scanner._MESSAGE_FIELDS, scanner._CONTENT_FIELDS]))
def test_first_fields_equals_parse_header_block(block: bytes, wanted: frozenset[str]) -> None:
    fields, body_start = parse_header_block(block, 0, len(block))
    want: dict[str, str] = {}
    for name, value in fields:
        key = name.decode("ascii").lower()
        if key in wanted and key not in want:
            want[key] = raw_str(unfold(value))
    assert first_fields(block, 0, len(block), wanted) == (want, body_start)


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from([*"ab;=* \t\\'%", "charset", "name*0*", "us-ascii"]), max_size=30).map("".join))
def test_split_params_without_quotes(value: str) -> None:
    assert _split_params(value) == headers._split_quoted(value)


# --- whole messages: fast paths on against all of them off -----------------------------------------

SUBJECTS = st.sampled_from(["hi", "Re: [list] x (fwd)", "  a  b ", "=?utf-8?q?caf=C3=A9?=", "x y", "caf\udce9"])
DATES = st.sampled_from(["Fri, 27 Nov 2026 10:00:00 +0000", "1 Jan 1970 00:00 -0130", "junk",
                         "Tue, 15 Nov 94 08:12:31 EST"])
MSGIDS = st.sampled_from(["<a@b>", " <a @ b> ", "", "<x>\u00a0<y>", "<a@b> <c@d>"])
CTYPES = st.sampled_from(["text/plain; charset=utf-8", "text/plain", "TEXT/Plain; A=b; a=c", "bad",
                          "text/plain; name*=utf-8''x%C3%A9", 'application/x; q="a;b"', "text/html; charset=\"x\""])


@st.composite
def message(draw: Any) -> bytes:
    head = [
        "From: " + draw(ADDRESS_LISTS), "To: " + draw(ADDRESS_LISTS), "Cc: " + draw(ADDRESS_LISTS),
        "Reply-To: " + draw(ADDRESS_LISTS), "Subject: " + draw(SUBJECTS), "Date: " + draw(DATES),
        "Message-ID: " + draw(MSGIDS), "References: " + draw(MSGIDS), "Content-Type: " + draw(CTYPES),
        "Content-Disposition: " + draw(CTYPES), "Content-Language: en, de",
    ]
    head = draw(st.permutations(head))[: draw(st.integers(0, len(head)))]
    folded = [h.replace(", ", ",\r\n ", 1) if draw(st.booleans()) else h for h in head]
    return ("\r\n".join(folded) + "\r\n\r\nbody\r\n").encode("utf-8", "surrogateescape")


def _scan_without_fast_paths(data: bytes, monkeypatch: pytest.MonkeyPatch) -> MessageInfo:
    with monkeypatch.context() as m:
        m.setattr(addresses, "_simple_list", lambda value: None)
        m.setattr(dates, "_fast_date", lambda value: None)

        def slow_fields(buf: bytes, start: int, end: int, wanted: frozenset[str]) -> tuple[dict[str, str], int]:
            fields, body_start = parse_header_block(buf, start, end)
            out: dict[str, str] = {}
            for name, value in fields:
                key = name.decode("ascii").lower()
                if key in wanted and key not in out:
                    out[key] = raw_str(unfold(value))
            return out, body_start

        m.setattr(scanner, "first_fields", slow_fields)
        for cls, name in ((model.Address, "new_address"), (model.Envelope, "new_envelope"), (model.Part, "new_part")):
            m.setattr(model, name, cls)
        m.setattr(addresses, "new_address", model.Address)
        m.setattr(scanner, "new_envelope", model.Envelope)
        m.setattr(scanner, "new_part", model.Part)
        m.setattr(scanner, "new_info", model.MessageInfo)
        return _scan(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(message())
def test_scan_fast_equals_full(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    fast = _scan(data)
    assert fast == _scan_without_fast_paths(data, monkeypatch)
    assert MessageInfo.from_bytes(fast.to_bytes()) == fast
    assert MessageInfo.from_bytes(to_json_v1(fast)) == fast
    assert scan(data) == fast


# --- regressions and formats -----------------------------------------------------------------------

def test_long_phrase_after_a_quoted_word_is_linear() -> None:
    # The quoted-phrase pattern used to backtrack exponentially on a run of atext not followed by '<'
    # (30 letters took hours); possessive quantifiers make it one pass.
    for value in ('"x" ' + "a" * 5000 + " ,", '"x" ' + "a" * 5000 + " <b@c>", '"x"' + " " * 5000 + "y"):
        assert parse_address_list(value) == _full_list(value)


def test_non_ascii_space_in_a_name_is_atext_as_in_the_full_parser() -> None:
    # The fast path used to split words on U+00A0 (\s) where the full parser and Dovecot keep it.
    assert parse_address_list("Jane\xa0Doe <j@d>")[0].name == "Jane\xa0Doe" == _full_list("Jane\xa0Doe <j@d>")[0].name


def test_format_1_json_is_still_read() -> None:
    # Written by the format-1 encoder (git 1773427): stores hold such blobs.
    blob = (b'[1,38,[0,37,38,"text","plain",[["charset","us-ascii"]],null,null,null,null,null,[],[],null,0,[],null,'
            b'null,false],[null,"caf\\udce9",[["J\\udcfcrgen",null,"j","x"]],[["J\\udcfcrgen",null,"j","x"]],'
            b'[["J\\udcfcrgen",null,"j","x"]],[],[],[],null,null],"caf\\u00e9","caf\\u00e9",null,null,[],[],'
            b'"J\\udcfcrgen <j@x>",null,null,null,1,false]')
    info = scan(b"Subject: caf\xe9\r\nFrom: J\xfcrgen <j@x>\r\n\r\nb")
    assert MessageInfo.from_bytes(blob) == info
    assert to_json_v1(info) == blob
    assert info.to_bytes().startswith(b"M\x02\x04")


@pytest.mark.parametrize("blob", [b"M\x02\x04", b"M\x02\x04\xff\xff", b"M\x02\x04" + b"\xe9\x01\x00\x00\x00N", b"[2]",
                                  b"{}"])
def test_corrupt_or_unknown_serialisation_raises_value_error(blob: bytes) -> None:
    with pytest.raises(ValueError):
        MessageInfo.from_bytes(blob)


def test_fast_constructors_build_ordinary_frozen_instances() -> None:
    import dataclasses

    p = model.new_part(0, 1, 2, "text", "plain", (), None, None, None, None, None, (), (), None, 0, (), None, None,
                       False)
    assert type(p) is model.Part and p == model.Part(0, 1, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.lines = 3  # type: ignore[misc]
    assert hash(p) == hash(model.Part(0, 1, 2))
