"""SEARCH BODY/TEXT with the full-text index answers exactly what the exact scan answers
(imap/search.py over store/rules/textindex.py), on both store backends: a differential over the
corpus of tests/textsearch_corpus.py (Korean in base64 and EUC-KR QP, HTML, QP, base64, file
names, case pairs, short needles), with the fixed needles and with Hypothesis cutting needles out
of the corpus's own text and changing their case. The same runs with part of the mailbox not
indexed yet: those messages are still found. The evaluator and the store are the server's; the
session around them is left out here (tests/imap/test_search_index_serve.py goes over IMAP)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailcove.imap.search import Evaluator, Msg
from mailcove.proto.imap.commands.search import And, Not, Or, SearchKey, Text
from mailcove.store.api import MailStore
from mailcove.store.sqlite import SqliteStore
from textsearch_corpus import CORPUS, NEEDLES, corpus_substrings

A = "a@hamap.local"


class Unindexed:
    """The store as SEARCH saw it before the index: no needle is narrowed, every message scanned."""

    def __init__(self, store: MailStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def text_candidates(self, mailbox_id: int, needle: str) -> None:
        return None


class Lab:
    """A store on a loop of its own (Hypothesis runs examples synchronously), the corpus in INBOX."""

    def __init__(self, store: MailStore) -> None:
        self.loop = asyncio.new_event_loop()
        self.store = store
        self.box = 0
        self.asked: list[set[int] | None] = []

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    async def setup(self, copies: int = 1) -> None:
        await self.store.start()
        await self.store.create_account(A)
        for _ in range(copies):
            for data in CORPUS:
                await self.store.append(A, "INBOX", data)
        self.box = (await self.store.get_mailbox(A, "INBOX")).id

    async def index(self, limit: int | None = None) -> None:
        after = 0
        while True:
            n, last = await self.store.index_pending(after, 4 if limit is None else limit)
            if not n or limit is not None:
                return
            after = last

    async def search(self, store: Any, key: SearchKey) -> list[int]:
        """As imap/ops/search.py evaluates it: narrowed first, then the evaluator's own check."""
        idx = await self.store.index(self.box)
        msgs = [Msg(i + 1, uid, idx.flags[i], idx.modseqs[i]) for i, uid in enumerate(idx.uids)]
        ev = Evaluator(store, self.box, count=len(msgs), max_uid=idx.uids[-1], saved=None, recent=set())
        bound = await ev.narrow(key)
        self.asked.append(bound)
        if bound is not None:
            msgs = [m for m in msgs if m.uid in bound]
        return [m.uid for m in await ev.run(key, msgs)]

    def compare(self, key: SearchKey) -> list[int]:
        indexed = self.run(self.search(self.store, key))
        scanned = self.run(self.search(Unindexed(self.store), key))
        assert indexed == scanned, key
        return indexed

    def close(self) -> None:
        self.run(self.store.close())
        self.loop.close()


@pytest.fixture(params=["sqlite", "postgres"])
def make_lab(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Lab]]:
    labs: list[Lab] = []

    def make() -> Lab:
        if request.param == "sqlite":
            store: MailStore = SqliteStore(tmp_path / f"data{len(labs)}")
        else:
            from mailcove.store.postgres import PostgresStore

            store = PostgresStore(request.getfixturevalue("pg_dsn"), data_dir=tmp_path / f"data{len(labs)}",
                                  pool_size=4)
        lab = Lab(store)
        labs.append(lab)
        return lab

    yield make
    for lab in labs:
        lab.close()


def _keys(needle: str, other: str) -> list[SearchKey]:
    body, text = Text("BODY", needle), Text("TEXT", needle)
    return [body, text, Not(body), Or(text, Text("BODY", other)), And((text, Not(Text("BODY", other)))),
            And((body, Text("SUBJECT", "e")))]


def test_fixed_needles_answer_as_the_scan(make_lab: Callable[[], Lab]) -> None:
    lab = make_lab()
    lab.run(lab.setup())
    lab.run(lab.index())
    hits = 0
    for i, needle in enumerate(NEEDLES):
        for key in _keys(needle, NEEDLES[(i * 7) % len(NEEDLES)]):
            hits += bool(lab.compare(key))
    assert hits > len(NEEDLES)  # the corpus does match: the comparison is not of empty answers
    # ... and the index was used: most BODY/TEXT searches looked at a few messages only
    narrowed = [b for b in lab.asked if b is not None and len(b) < len(CORPUS)]
    assert len(narrowed) > len(lab.asked) // 3


def test_unindexed_messages_are_found(make_lab: Callable[[], Lab]) -> None:
    """Half the mailbox indexed, the rest not yet (as after a delivery, or an upgrade)."""
    lab = make_lab()
    lab.run(lab.setup(copies=2))
    lab.run(lab.index(limit=len(CORPUS)))  # the first copy only
    assert lab.run(lab.store.index_progress())[0] == len(CORPUS)
    for needle in ("unique-tail-marker", "서울", "quick", "café", "보고서", "needle-text"):
        found = lab.compare(Text("TEXT", needle))
        first = [u for u in found if u <= len(CORPUS)]
        assert first and found == first + [u + len(CORPUS) for u in first], (needle, found)  # both copies


_needle_text = corpus_substrings()


@st.composite
def needles(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["cut", "cut", "fixed", "free"]))
    if kind == "fixed":
        return draw(st.sampled_from(NEEDLES))
    if kind == "free":
        return draw(st.text(alphabet="abeé ßς한국서울보고<&;.-", min_size=1, max_size=4))
    text = draw(st.sampled_from(_needle_text))
    start = draw(st.integers(0, max(0, len(text) - 1)))
    cut = text[start : start + draw(st.integers(1, 8))]
    flips = draw(st.lists(st.booleans(), min_size=len(cut), max_size=len(cut)))
    return "".join(c.upper() if f else c for c, f in zip(cut, flips, strict=True)) or "a"


def test_hypothesis_needles_answer_as_the_scan(make_lab: Callable[[], Lab]) -> None:
    lab = make_lab()
    lab.run(lab.setup())
    lab.run(lab.index())

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(needles(), needles())
    def check(needle: str, other: str) -> None:
        for key in _keys(needle, other):
            lab.compare(key)

    check()


def test_many_needles_ask_the_index_a_few_times(make_lab: Callable[[], Lab]) -> None:
    """A SEARCH of hundreds of BODY keys (the parser allows 1,000) looks up NARROW_MAX needles,
    not one query per key, and still answers as the scan."""
    from mailcove.imap import search as search_module

    lab = make_lab()
    lab.run(lab.setup())
    lab.run(lab.index())
    calls: list[str] = []
    real = lab.store.text_candidates

    async def counted(mailbox_id: int, needle: str) -> set[int] | None:
        calls.append(needle)
        return await real(mailbox_id, needle)

    lab.store.text_candidates = counted  # type: ignore[method-assign]
    keys = tuple(Text("BODY", f"{w}") for w in ("the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog"))
    keys += tuple(Not(Text("BODY", f"absent-{i}")) for i in range(300))
    assert lab.compare(And(keys)) == [1]
    assert len(calls) == search_module.NARROW_MAX
