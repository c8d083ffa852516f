"""Differential test: mailcove's IMAP answers against Dovecot's (Debian's dovecot-imapd), message by
message, on the corpus in corpus.py.

Both servers get the same bytes by IMAP APPEND (with the same INTERNALDATE and flags), then the same
commands. Every response is parsed by the strict parser in tests/interop/imapwire.py (so both
servers are also checked against the RFC 9051 grammar) and the parsed structures are compared
whole: ENVELOPE, BODYSTRUCTURE, BODY, BODY[section] (n, n.n, HEADER, TEXT, n.MIME, HEADER.FIELDS,
HEADER.FIELDS.NOT, partial), BINARY[n], BINARY.SIZE[n], RFC822.SIZE, INTERNALDATE, FLAGS, SEARCH
(flags, headers, body, text, dates, sizes, sets, OR/NOT), SORT and THREAD.

Differences that are allowed are in TOLERATED below, each with its reason; anything else fails.

Set MAILCOVE_DIFF_PEER=dovecot to run the same test with a second Dovecot in mailcove's place:
it must show no difference at all, which proves the harness (parser, loading, normalisation).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from interop.dovecot import PrivateDovecot, dovecot_binary
from interop.imap_servers import start_mailcove
from interop.imapwire import Atom, DataResponse, RawClient, Result, Str, iter_sections
from mailcove_testing import require_tool

from .corpus import corpus

USER = "diff@hamap.local"
PASSWORD = "Diff-Pass-1"
CORPUS = corpus()
NAMES = [name for name, *_ in CORPUS]

# Every difference the comparison forgives, and why. Keys name the normalisation applied.
TOLERATED: dict[str, str] = {
    "tagged-text": "The human-readable text after a tagged OK/NO/BAD is free-form (RFC 9051 7.1); Dovecot adds "
    "timings such as '(0.001 + 0.000 secs)'. The status and the response code are compared.",
    "string-form": "A string may be sent quoted or as a literal (RFC 9051 4.3); the grammar makes them "
    "equal, so only the bytes are compared.",
    "section-name-case": "The section spec echoed in a FETCH response (BODY[HEADER.FIELDS (From)]) is compared "
    "case-insensitively: header field names are case-insensitive (RFC 5322 1.2.2) and Dovecot upper-cases them.",
    "uidvalidity": "UIDVALIDITY and APPENDUID values are chosen by each server (RFC 9051 2.3.1.1).",
}


# --- the two servers ------------------------------------------------------------------------------


@dataclass
class Side:
    name: str
    host: str
    port: int

    def connect(self) -> RawClient:
        c = RawClient(self.host, self.port)
        c.command(f'LOGIN "{USER}" "{PASSWORD}"').ok()
        return c


def _load(side: Side) -> None:
    c = side.connect()
    try:
        for _name, raw, date, flags in CORPUS:
            c.command(f'APPEND INBOX {flags} "{date}" {{{len(raw)}}}', raw).ok()
    finally:
        c.close()


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Side]:
    if dovecot_binary() is None:
        require_tool("dovecot")
    with PrivateDovecot({USER: PASSWORD}) as dc:
        side = Side("dovecot", dc.host, dc.port)
        _load(side)
        yield side


@pytest.fixture(scope="module")
def mailcove(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Side]:
    if os.environ.get("MAILCOVE_DIFF_PEER") == "dovecot":
        with PrivateDovecot({USER: PASSWORD}) as dc:
            side = Side("dovecot-2", dc.host, dc.port)
            _load(side)
            yield side
        return
    srv = start_mailcove(tmp_path_factory.mktemp("diff-mailcove"), {USER: PASSWORD})
    try:
        host, port = srv.address("imap")
        side = Side("mailcove", host, port)
        _load(side)
        yield side
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def sessions(dovecot: Side, mailcove: Side) -> Iterator[tuple[RawClient, RawClient]]:
    a, b = dovecot.connect(), mailcove.connect()
    # EXAMINE: read-only, so no FETCH below sets \Seen and both sides stay identical.
    ra, rb = a.command("EXAMINE INBOX").ok(), b.command("EXAMINE INBOX").ok()
    assert [r.number for r in ra.data("EXISTS")] == [r.number for r in rb.data("EXISTS")] == [len(CORPUS)]
    yield a, b
    a.close()
    b.close()


# --- normalisation and comparison -----------------------------------------------------------------


def plain(v: Any) -> Any:
    """Str -> bytes (string-form), tuples kept, atoms kept as str."""
    if isinstance(v, Str):
        return bytes(v)
    if isinstance(v, tuple):
        return tuple(plain(x) for x in v)
    if isinstance(v, Atom):
        return Atom(str(v))
    return v


def fetch_key(key: str) -> str:
    return key.upper()  # section-name-case


def norm_result(r: Result) -> tuple[Any, ...]:
    untagged: list[Any] = []
    for u in r.untagged:
        if isinstance(u, DataResponse):
            untagged.append((u.number, u.name, plain(u.values)))
        else:
            untagged.append((u.status, plain(u.code)))  # untagged text is free-form too
    code = plain(r.tagged.code)
    if code and str(code[0]).upper() in ("APPENDUID", "COPYUID", "UIDVALIDITY"):
        code = (code[0],)  # uidvalidity
    return (r.tagged.status, code, tuple(untagged))  # tagged-text


def fetch_map(r: Result) -> dict[int, dict[str, Any]]:
    assert r.tagged.status == "OK", r.tagged
    out: dict[int, dict[str, Any]] = {}
    for seq, items in r.fetches().items():
        out[seq] = {fetch_key(k): plain(v) for k, v in items.items()}
    return out


def describe(seq: int) -> str:
    return f"message {seq} ({NAMES[seq - 1]})"


def compare_fetch(sessions: tuple[RawClient, RawClient], cmd: str) -> list[str]:
    a, b = sessions
    ra, rb = a.command(cmd), b.command(cmd)
    if ra.tagged.status != rb.tagged.status:
        return [f"{cmd}: dovecot {ra.tagged.status} {ra.tagged.text!r}, mailcove {rb.tagged.status} {rb.tagged.text!r}"]
    if ra.tagged.status != "OK":
        return [] if norm_result(ra) == norm_result(rb) else [f"{cmd}: {norm_result(ra)} != {norm_result(rb)}"]
    fa, fb = fetch_map(ra), fetch_map(rb)
    diffs = []
    for seq in sorted(set(fa) | set(fb)):
        da, db = fa.get(seq, {}), fb.get(seq, {})
        for key in sorted(set(da) | set(db)):
            if da.get(key, "<missing>") != db.get(key, "<missing>"):
                diffs.append(
                    f"{cmd} {describe(seq)} {key}:\n  dovecot:  {da.get(key, '<missing>')!r}\n"
                    f"  mailcove: {db.get(key, '<missing>')!r}"
                )
    return diffs


def compare_plain(sessions: tuple[RawClient, RawClient], cmd: str, *literals: bytes) -> list[str]:
    """`{}` in cmd is replaced by the next literal's {length}."""
    for lit in literals:
        cmd = cmd.replace("{}", f"{{{len(lit)}}}", 1)
    a, b = sessions
    ra, rb = a.command(cmd, *literals), b.command(cmd, *literals)
    # The harness only proves something if the reference answered: every probe here is valid.
    assert ra.tagged.status == "OK", f"dovecot refused {cmd!r}: {ra.tagged}"
    na, nb = norm_result(ra), norm_result(rb)
    if na != nb:
        return [f"{cmd} {literals!r}:\n  dovecot:  {na!r}\n  mailcove: {nb!r}"]
    return []


def check(diffs: list[str]) -> None:
    if diffs:
        pytest.fail(f"{len(diffs)} difference(s) from Dovecot:\n" + "\n".join(diffs[:40]), pytrace=False)


# --- the comparisons ------------------------------------------------------------------------------


@pytest.mark.parametrize("item", ["ENVELOPE", "BODYSTRUCTURE", "BODY", "RFC822.SIZE", "INTERNALDATE", "FLAGS", "UID"])
def test_fetch_item(sessions: tuple[RawClient, RawClient], item: str) -> None:
    check(compare_fetch(sessions, f"FETCH 1:* ({item})"))


def _structures(sessions: tuple[RawClient, RawClient]) -> dict[int, Any]:
    a, _ = sessions
    return {seq: items["BODYSTRUCTURE"] for seq, items in a.command("FETCH 1:* (BODYSTRUCTURE)").fetches().items()}


TOP_SECTIONS = [
    "BODY.PEEK[]",
    "BODY.PEEK[HEADER]",
    "BODY.PEEK[TEXT]",
    "BODY.PEEK[1]",
    "BODY.PEEK[1.2]",
    "BODY.PEEK[HEADER.FIELDS (From Subject Date X-Missing)]",
    "BODY.PEEK[HEADER.FIELDS.NOT (Subject Received X-Long)]",
    "BODY.PEEK[]<0.40>",
    "BODY.PEEK[TEXT]<5.17>",
    "BODY.PEEK[1]<1000000.10>",
    "RFC822.HEADER",
]


def test_fetch_top_sections(sessions: tuple[RawClient, RawClient]) -> None:
    diffs: list[str] = []
    for item in TOP_SECTIONS:
        diffs += compare_fetch(sessions, f"FETCH 1:* ({item})")
    check(diffs)


def test_fetch_part_sections(sessions: tuple[RawClient, RawClient]) -> None:
    """Every part of every message: BODY[n], BODY[n.MIME]; message/rfc822 parts also n.HEADER,
    n.TEXT and n.HEADER.FIELDS."""
    diffs: list[str] = []
    for seq, structure in _structures(sessions).items():
        items = []
        for num, body in iter_sections(structure):
            items += [f"BODY.PEEK[{num}]", f"BODY.PEEK[{num}.MIME]"]
            if not isinstance(body[0], tuple) and bytes(body[0]).lower() == b"message":
                items += [f"BODY.PEEK[{num}.{s}]" for s in ("HEADER", "TEXT", "HEADER.FIELDS (Subject)")]
        if items:
            diffs += compare_fetch(sessions, f"FETCH {seq} ({' '.join(items)})")
    check(diffs)


def test_binary(sessions: tuple[RawClient, RawClient]) -> None:
    """BINARY[n] and BINARY.SIZE[n] for every leaf part (one part per command: an unknown
    Content-Transfer-Encoding makes the whole command NO [UNKNOWN-CTE])."""
    diffs: list[str] = []
    for seq, structure in _structures(sessions).items():
        leaves = [num for num, body in iter_sections(structure) if not isinstance(body[0], tuple)]
        if not isinstance(structure[0], tuple):
            leaves = ["1", *leaves]
        for num in leaves:
            diffs += compare_fetch(sessions, f"FETCH {seq} (BINARY.PEEK[{num}])")
            diffs += compare_fetch(sessions, f"FETCH {seq} (BINARY.SIZE[{num}])")
        diffs += compare_fetch(sessions, f"FETCH {seq} (BINARY.PEEK[1]<2.30>)")
    check(diffs)


SEARCHES: list[tuple[str, tuple[bytes, ...]]] = [
    ("ALL", ()),
    ("SEEN", ()),
    ("UNSEEN", ()),
    ("FLAGGED UNDELETED", ()),
    ("DELETED", ()),
    ("ANSWERED", ()),
    ("DRAFT", ()),
    ("KEYWORD $Junk", ()),
    ("UNKEYWORD $Junk", ()),
    ("FROM alice", ()),
    ("FROM hamap.local", ()),
    ("TO bob", ()),
    ("CC frank", ()),
    ("BCC nobody", ()),
    ("SUBJECT planning", ()),
    ("SUBJECT \"Re: Planning\"", ()),
    ("HEADER Message-ID lunch-1", ()),
    ("HEADER X-Empty \"\"", ()),
    ("HEADER In-Reply-To \"\"", ()),
    ("HEADER X-Folded \"second part\"", ()),
    ("BODY needle-in-a-haystack", ()),
    ("BODY revenue", ()),
    ("TEXT alice", ()),
    ("TEXT \"thread message\"", ()),
    ("BEFORE 05-Nov-2026", ()),
    ("ON 05-Nov-2026", ()),
    ("SINCE 10-Nov-2026", ()),
    ("SENTBEFORE 05-Nov-2026", ()),
    ("SENTON 02-Nov-2026", ()),
    ("SENTSINCE 12-Nov-2026", ()),
    ("LARGER 4000", ()),
    ("SMALLER 300", ()),
    ("NOT SMALLER 300 NOT LARGER 4000", ()),
    ("OR SEEN FLAGGED", ()),
    ("OR (FROM alice SEEN) (SUBJECT planning NOT FROM t1)", ()),
    ("2,4:6,19:*", ()),
    ("UID 3:5,12", ()),
    ("CHARSET UTF-8 SUBJECT {}", ("Grüß".encode(),)),
    ("CHARSET UTF-8 SUBJECT {}", ("Été".encode(),)),
    ("CHARSET UTF-8 FROM {}", ("André".encode(),)),
    ("CHARSET UTF-8 BODY {}", ("naïve".encode(),)),
    ("CHARSET UTF-8 TEXT {}", ("Ça v".encode(),)),
]


def test_search(sessions: tuple[RawClient, RawClient]) -> None:
    diffs: list[str] = []
    for criteria, literals in SEARCHES:
        diffs += compare_plain(sessions, f"SEARCH {criteria}", *literals)
        diffs += compare_plain(sessions, f"UID SEARCH {criteria}", *literals)
    check(diffs)


SORTS = [
    "(ARRIVAL)",
    "(DATE)",
    "(REVERSE DATE)",
    "(SUBJECT)",
    "(REVERSE SUBJECT)",
    "(SUBJECT DATE)",
    "(FROM)",
    "(TO)",
    "(CC)",
    "(SIZE)",
    "(REVERSE SIZE)",
    "(DISPLAYFROM)",
    "(DISPLAYTO)",
]


def test_sort(sessions: tuple[RawClient, RawClient]) -> None:
    diffs: list[str] = []
    for keys in SORTS:
        diffs += compare_plain(sessions, f"SORT {keys} UTF-8 ALL")
    diffs += compare_plain(sessions, "UID SORT (DATE) UTF-8 SUBJECT planning")
    diffs += compare_plain(sessions, "SORT (SUBJECT) US-ASCII SINCE 05-Nov-2026")
    check(diffs)


def test_thread(sessions: tuple[RawClient, RawClient]) -> None:
    diffs: list[str] = []
    for algorithm in ("REFERENCES", "ORDEREDSUBJECT"):
        diffs += compare_plain(sessions, f"THREAD {algorithm} UTF-8 ALL")
        diffs += compare_plain(sessions, f"UID THREAD {algorithm} UTF-8 ALL")
        diffs += compare_plain(sessions, f"THREAD {algorithm} UTF-8 SUBJECT planning")
    check(diffs)


def test_stored_bytes_identical(sessions: tuple[RawClient, RawClient]) -> None:
    """Both hold exactly the bytes sent (bare LF converted to CRLF once, the one change allowed)."""
    a, _ = sessions
    got = {seq: items["BODY[]"] for seq, items in a.command("FETCH 1:* (BODY.PEEK[])").fetches().items()}
    for seq, (_name, raw, _d, _f) in enumerate(CORPUS, start=1):
        expected = re.sub(rb"(?<!\r)\n", b"\r\n", raw)
        assert bytes(got[seq]) == expected, describe(seq)
