"""Hypothesis: whatever arrives, the receiver returns only documented events, never raises, keeps
memory bounded, and gives the same events however the input is split."""

from __future__ import annotations

import dataclasses
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from improto_helpers import drive
from test_improto_commands import TABLE
from test_improto_receiver import TRANSCRIPT

from mailcove.proto.imap import utf7
from mailcove.proto.imap.commands import List, Lsub, parse_command
from mailcove.proto.imap.encode import encode_command
from mailcove.proto.imap.parser import ParseError
from mailcove.proto.imap.seqset import SeqSet, SeqSetError, compact

SAMPLES = [w + b"\r\n" for w, _ in TABLE] + [TRANSCRIPT]
ALPHABET = b' ()[]<>{}~+*%"\\\r\n\x00\x80\xc3\xa4.:,$0123456789aAbBUIDFETCHSTORE'

# IMPROTO_EXAMPLES=5000 for a longer local run (CI keeps the suite fast)
FUZZ = settings(max_examples=int(os.environ.get("IMPROTO_EXAMPLES", "300")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


def _splits(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, prev = [], 0
    for p in points:
        out.append(data[prev:p])
        prev = p
    out.append(data[prev:])
    return out


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.integers(0, 2))
        pos = draw(st.integers(0, len(data)))
        if op == 0:
            data[pos:pos] = bytes([draw(st.sampled_from(ALPHABET))])
        elif op == 1 and data:
            del data[pos:pos + draw(st.integers(1, 8))]
        else:
            data[pos:pos] = data[draw(st.integers(0, len(data))):][:draw(st.integers(0, 40))]
    return bytes(data)


inputs = st.one_of(mutated(), st.binary(max_size=300), st.lists(st.sampled_from(ALPHABET), max_size=200).map(bytes))


@FUZZ
@given(data=inputs, cuts=st.lists(st.integers(0, 10_000), max_size=6))
def test_any_input_gives_documented_events_and_split_does_not_matter(data: bytes, cuts: list[int]) -> None:
    kw = {"max_line": 200, "max_command": 2000, "max_literal": 500, "max_depth": 8}
    whole = drive([data], **kw)
    assert drive(_splits(data, cuts), check_memory=True, **kw) == whole


@FUZZ
@given(data=inputs)
def test_parse_command_raises_only_parse_error(data: bytes) -> None:
    for utf8 in (False, True):
        try:
            parse_command(data.split(b"\r\n", 1)[0], utf8=utf8)
        except ParseError:
            pass


@FUZZ
@given(data=mutated())
def test_parsed_commands_round_trip(data: bytes) -> None:
    for line in data.split(b"\r\n"):
        if b"{" in line:
            continue
        try:
            cmd = parse_command(line)
        except ParseError:
            continue
        if cmd.name == "AUTHENTICATE":
            continue
        if (isinstance(cmd, List) and not cmd.patterns) or (isinstance(cmd, Lsub) and cmd.pattern is None):
            # A reference or pattern that can name no mailbox is dropped by the parser (the
            # command matches nothing and answers OK); there is nothing left to encode again.
            continue
        again = parse_command(encode_command(cmd).removesuffix(b"\r\n"))
        assert again == cmd


@FUZZ
@given(st.text(max_size=30))
def test_utf7_round_trip(name: str) -> None:
    try:
        name.encode("utf-16-be")
    except UnicodeEncodeError:
        return  # lone surrogates cannot be names
    enc = utf7.encode(name)
    assert enc.isascii()
    assert utf7.decode(enc) == name


@FUZZ
@given(st.text(alphabet="&-+,/ABCabc019AOQ", max_size=20))
def test_utf7_decode_only_raises_its_error_and_is_canonical(text: str) -> None:
    try:
        name = utf7.decode(text)
    except utf7.Utf7Error:
        return
    assert utf7.encode(name) == text  # strict: only the canonical encoding is accepted


@FUZZ
@given(st.lists(st.integers(1, 200), max_size=40))
def test_seqset_compact_round_trip(nums: list[int]) -> None:
    s = compact(nums)
    if not nums:
        assert s == ""
        return
    parsed = SeqSet.parse(s)
    assert list(parsed.iter(1000)) == sorted(set(nums))
    assert str(SeqSet.from_ints(nums)) == s


@FUZZ
@given(st.text(alphabet="0123456789:*,$", max_size=20), st.integers(0, 50))
def test_seqset_parse_only_raises_its_error(text: str, largest: int) -> None:
    try:
        s = SeqSet.parse(text)
    except SeqSetError:
        return
    resolved = s.clip(largest)
    assert all(1 <= a <= b <= largest for a, b in resolved)
    for n in range(1, largest + 1):
        assert s.contains(n, largest) == any(a <= n <= b for a, b in resolved)


def _clear_caches() -> None:
    from mailcove.proto.imap import parser
    from mailcove.proto.imap.commands import _CACHE, fetch

    _CACHE.clear()
    fetch._LIST_CACHE.clear()
    parser._SEQSET_CACHE.clear()


@FUZZ
@given(data=mutated())
def test_caches_do_not_change_results(data: bytes) -> None:
    lines = [line for line in data.split(b"\r\n") if b"{" not in line]
    results = []
    for _ in range(2):
        _clear_caches()
        for _warm in (False, True):  # cold caches, then warm
            got = []
            for line in lines:
                try:
                    got.append(parse_command(line))
                except ParseError as exc:
                    got.append((exc.text, exc.code))
            results.append(got)
    assert results[0] == results[1] == results[2] == results[3]
    # and a different tag on a cached command changes nothing else
    for line, cmd in zip(lines, results[0], strict=True):
        if not isinstance(cmd, tuple) and line.count(b" ") and b"\x00" not in line:
            again = parse_command(b"zz " + line.split(b" ", 1)[1])
            assert again == dataclasses.replace(cmd, tag="zz")


@st.composite
def mutated_responses(draw: st.DrawFn) -> bytes:
    from test_improto_responses import RFC_SAMPLES

    lines = RFC_SAMPLES.split(b"\r\n")
    data = bytearray(b"\r\n".join(lines[draw(st.integers(0, len(lines) - 1)):][:3]) + b"\r\n")
    for _ in range(draw(st.integers(0, 5))):
        op = draw(st.integers(0, 2))
        pos = draw(st.integers(0, len(data)))
        if op == 0:
            data[pos:pos] = bytes([draw(st.sampled_from(ALPHABET))])
        elif op == 1 and data:
            del data[pos:pos + draw(st.integers(1, 8))]
        else:
            data[pos:pos] = data[draw(st.integers(0, len(data))):][:draw(st.integers(0, 40))]
    return bytes(data)


@FUZZ
@given(data=st.one_of(mutated_responses(), st.binary(max_size=200)))
def test_response_parser_raises_only_its_error(data: bytes) -> None:
    from mailcove.proto.imap.client import ResponseSyntaxError, parse_responses

    try:
        parse_responses(data)
    except ResponseSyntaxError:
        pass


def test_response_parser_bounds_nesting() -> None:
    from mailcove.proto.imap.client import ResponseSyntaxError, parse_responses

    for deep in (b"* 1 FETCH (X-FOO " + b"(" * 5000 + b")" * 5000 + b")\r\n",
                 b"* LIST () \"/\" x " + b"(" * 5000 + b")" * 5000 + b"\r\n",
                 b"* THREAD " + b"(" * 5000 + b"1" + b")" * 5000 + b"\r\n",
                 b"* 1 FETCH (BODY " + b"(" * 5000 + b")" * 5000 + b")\r\n"):
        try:
            parse_responses(deep)
        except ResponseSyntaxError:
            pass


# --- generated commands: encode, parse, compare ------------------------------------------------------
def _search_keys() -> st.SearchStrategy[object]:
    from datetime import date

    from mailcove.proto.imap.commands import search as s

    text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r\n"), max_size=12)
    seqs = st.lists(st.integers(1, 50), min_size=1, max_size=5).map(SeqSet.from_ints)
    keyword = st.from_regex(r"\$?[A-Za-z][A-Za-z0-9_]{0,8}", fullmatch=True)
    leaf = st.one_of(
        st.just(s.All()),
        st.sampled_from(["\\Answered", "\\Deleted", "\\Draft", "\\Flagged", "\\Seen", "\\Recent"]).flatmap(
            lambda f: st.builds(s.Flag, st.just(f), st.booleans())),
        st.builds(s.Flag, keyword, st.booleans()),
        st.builds(s.Text, st.sampled_from(["BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO"]), text),
        st.builds(s.Header, st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,10}", fullmatch=True), text),
        st.builds(s.DateKey, st.sampled_from(["BEFORE", "ON", "SINCE"]), st.dates(date(1900, 1, 1), date(2100, 1, 1)),
                  st.booleans()),
        st.builds(s.Size, st.booleans(), st.integers(0, 2**40)),
        st.builds(s.SeqKey, seqs), st.builds(s.UidKey, seqs),
        st.builds(s.ModSeq, st.integers(0, 2**62), st.none() | st.tuples(
            st.from_regex(r"/flags/[a-z]{1,5}", fullmatch=True), st.sampled_from(["priv", "shared", "all"]))),
        st.builds(s.Within, st.booleans(), st.integers(1, 10**6)),
    )
    return st.recursive(leaf, lambda inner: st.one_of(
        st.builds(s.Not, inner), st.builds(s.Or, inner, inner),
        st.lists(inner, min_size=2, max_size=3).map(lambda ks: s.And(tuple(ks)))), max_leaves=8)


@FUZZ
@given(key=_search_keys(), uid=st.booleans(), ret=st.none() | st.lists(
    st.sampled_from(["MIN", "MAX", "ALL", "COUNT", "SAVE"]), unique=True).map(tuple))
def test_generated_search_round_trips(key: object, uid: bool, ret: tuple[str, ...] | None) -> None:
    from mailcove.proto.imap.commands import Search

    cmd = Search(tag="g1", uid=uid, charset="UTF-8", criteria=key, return_opts=ret)  # type: ignore[arg-type]
    wire = encode_command(cmd)
    got = parse_command(wire.removesuffix(b"\r\n")) if b"{" not in wire else drive([wire])[-1]
    # a top-level And is written as a plain key list; reading it back gives the same And
    assert got == cmd, wire


@FUZZ
@given(items=st.lists(st.sampled_from([
    "FLAGS", "UID", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODYSTRUCTURE", "BODY", "MODSEQ", "RFC822",
    "RFC822.HEADER", "RFC822.TEXT", "BODY[]", "BODY.PEEK[HEADER]", "BODY[1.2.MIME]", "BODY[TEXT]<0.100>",
    "BODY.PEEK[HEADER.FIELDS (From To)]", "BODY[2.HEADER.FIELDS.NOT (X-A)]<5.5>", "BINARY[1]", "BINARY.PEEK[]<1.2>",
    "BINARY.SIZE[3]"]), min_size=1, max_size=6, unique=True),
    seq=st.lists(st.integers(1, 10**6), min_size=1, max_size=4), changed=st.none() | st.integers(1, 2**60))
def test_generated_fetch_round_trips(items: list[str], seq: list[int], changed: int | None) -> None:
    line = b"f1 UID FETCH " + compact(seq).encode() + b" (" + " ".join(items).encode() + b")"
    if changed is not None:
        line += b" (CHANGEDSINCE %d VANISHED)" % changed
    cmd = parse_command(line)
    assert [str(a) for a in cmd.items] == items  # type: ignore[attr-defined]
    assert parse_command(encode_command(cmd).removesuffix(b"\r\n")) == cmd
