"""Store contract, the full-text index (store/rules/textindex.py): every message whose SEARCH text
contains a needle is among the index's candidates (before indexing too: unindexed bodies are
candidates), the index does narrow, a deleted body leaves it, a user's entries can be rebuilt, and
the server's background indexer fills it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from mailcove.message.text import is_hangul_pair
from mailcove.store.api import MailStore
from mailcove.store.rules.textindex import searchable
from textsearch_corpus import CORPUS, NEEDLES, exact_text

A = "a@hamap.local"
B = "b@hamap.local"


async def _fill(store: MailStore, user: str = A) -> tuple[int, dict[int, bytes]]:
    by_uid = {}
    for data in CORPUS:
        r = await store.append(user, "INBOX", data)
        by_uid[r.uid] = data
    return (await store.get_mailbox(user, "INBOX")).id, by_uid


async def _index_all(store: MailStore) -> int:
    total, after = 0, 0
    while True:
        n, last = await store.index_pending(after, 4)
        if not n:
            return total
        total, after = total + n, last


def _matches(data: bytes, needle: str) -> bool:
    header, body = exact_text(data)
    n = needle.casefold()
    return n in header or n in body


async def test_unindexed_messages_are_candidates(store: MailStore) -> None:
    box, by_uid = await _fill(store)
    assert await store.index_progress() == (len(CORPUS), len(CORPUS))
    assert await store.text_candidates(box, "quick") == set(by_uid)


async def test_candidates_hold_every_match_and_narrow(store: MailStore) -> None:
    box, by_uid = await _fill(store)
    assert await _index_all(store) == len(CORPUS)
    assert await store.index_progress() == (0, len(CORPUS))
    narrowed = 0
    for needle in NEEDLES:
        want = {uid for uid, data in by_uid.items() if _matches(data, needle)}
        got = await store.text_candidates(box, needle)
        if got is None:
            # only the exact scan answers: the empty needle, a surrogate or NUL, or a needle
            # shorter than a trigram that is not two Hangul syllables
            assert searchable(needle) is None or len(needle.casefold()) < 3, needle
            continue
        # A needle the index narrows is at least a trigram, or two Hangul syllables (both backends:
        # on PostgreSQL a shorter one was a LIKE over every text, slower than the scan it preceded).
        assert len(needle.casefold()) >= 3 or is_hangul_pair(needle.casefold()), needle
        assert want <= got, (needle, want - got)
        narrowed += len(got) < len(by_uid)
    assert narrowed > len(NEEDLES) // 2
    # a word of one message only, and one in an HTML part's text (entity decoded) only
    assert await store.text_candidates(box, "unique-tail-marker") == {10}
    assert await store.text_candidates(box, "zzz-no-such-text") == set()
    assert await store.text_candidates(box, "한국") in ({2, 4}, None)


async def test_two_syllable_hangul_is_narrowed(store: MailStore) -> None:
    box, _ = await _fill(store)
    await _index_all(store)
    # "서울" is in messages 2 and 3 (base64 UTF-8, QP EUC-KR); "보고" in 5 (base64 part, file name)
    assert await store.text_candidates(box, "서울") == {2, 3}
    assert await store.text_candidates(box, "보고") == {5}


async def test_a_deleted_body_leaves_the_index(store: MailStore) -> None:
    box, _ = await _fill(store)
    await _index_all(store)
    last = len(CORPUS)
    await store.expunge(box, [last])
    # SQLite gives the highest deleted blob id to the next body: its text must not be the old one
    r = await store.append(A, "INBOX", b"Subject: new\r\n\r\nfresh words\r\n")
    assert await store.text_candidates(box, "unique-tail-marker") == {r.uid}  # unindexed: a candidate
    await _index_all(store)
    assert await store.text_candidates(box, "unique-tail-marker") == set()
    assert await store.text_candidates(box, "fresh words") == {r.uid}
    assert (await store.index_progress())[0] == 0


async def test_a_copy_shares_the_entry(store: MailStore) -> None:
    box, _ = await _fill(store)
    await _index_all(store)
    other = await store.create_mailbox(A, "Other")
    await store.copy(box, [1], other.id)
    assert await store.text_candidates(other.id, "quick brown") == {1}
    assert (await store.index_progress())[0] == 0  # the copy needed no indexing of its own


async def test_reset_index_of_one_user(store: MailStore) -> None:
    box, by_uid = await _fill(store)
    await store.append(B, "INBOX", b"Subject: b's\r\n\r\nquick reply\r\n")
    await _index_all(store)
    assert await store.reset_index(A) == len(CORPUS)
    assert await store.index_progress() == (len(CORPUS), len(CORPUS) + 1)
    assert await store.text_candidates(box, "quick") == set(by_uid)  # unindexed again: all candidates
    b_box = (await store.get_mailbox(B, "INBOX")).id
    assert await store.text_candidates(b_box, "quick") == {1}  # b's entry stayed
    await _index_all(store)
    assert await store.text_candidates(box, "quick") == {1}


async def test_large_bodies_are_indexed(make_store: Callable[..., MailStore]) -> None:
    store = make_store(inline_max=256)  # a file (SQLite) or chunk rows (PostgreSQL)
    await store.start()
    try:
        await store.create_account(A)
        box, _ = await _fill(store)
        await _index_all(store)
        assert await store.text_candidates(box, "unique-tail-marker") == {10}
    finally:
        await store.close()


async def test_the_background_indexer_fills_the_index(make_store: Callable[..., MailStore]) -> None:
    store = make_store(text_index=True)
    await store.start()
    try:
        await store.create_account(A)
        box, _ = await _fill(store)
        for _ in range(200):
            if (await store.index_progress())[0] == 0:
                break
            await asyncio.sleep(0.05)
        assert await store.index_progress() == (0, len(CORPUS))
        assert await store.text_candidates(box, "needle-text") == {9}
    finally:
        await store.close()


@pytest.mark.parametrize("needle", ["", "caf\udce9", "a\x00b"])
async def test_needles_only_the_scan_answers(store: MailStore, needle: str) -> None:
    box, _ = await _fill(store)
    await _index_all(store)
    assert await store.text_candidates(box, needle) is None


async def test_postgres_keeps_hangul_pairs_beside_the_text(pg_dsn: str, tmp_path: Path) -> None:
    """PostgreSQL migration 7: under LC_CTYPE C (the test cluster's) pg_trgm makes no trigram of
    Hangul, so a Korean needle is looked up by the syllable pairs stored with each text."""
    import asyncpg

    from mailcove.store.postgres import PostgresStore

    store = PostgresStore(pg_dsn, data_dir=tmp_path / "data", pool_size=2)
    await store.start()
    try:
        await store.create_account(A)
        box, _ = await _fill(store)
        await _index_all(store)
        conn = await asyncpg.connect(pg_dsn)
        try:
            assert await conn.fetchval("SELECT show_trgm('서울')") == []  # why the pairs are needed
            rows = await conn.fetch("SELECT grams FROM message_texts WHERE grams @> ARRAY['서울']")
        finally:
            await conn.close()
        assert len(rows) == 2
        assert await store.text_candidates(box, "서울에서") == {2}
        assert await store.text_candidates(box, "서울 날씨") == {3}
    finally:
        await store.close()


async def test_one_indexer_at_a_time(make_store: Callable[..., MailStore]) -> None:
    """Two serving processes (or nodes) on one store: one holds the lease and indexes, the other
    waits, asking for the lease again only every LEASE_TTL / 3 (not at every idle poll)."""
    from mailcove.core.clock import FakeClock
    from mailcove.store.textindexer import LEASE, LEASE_TTL, TextIndexer

    store = make_store()
    await store.start()
    try:
        await store.create_account(A)
        await _fill(store)
        assert await store.acquire_lease(LEASE, "other-node", LEASE_TTL)
        clock = FakeClock()
        asked: list[str] = []
        real = store.acquire_lease

        async def counted(name: str, owner: str, ttl: float) -> bool:
            asked.append(owner)
            return await real(name, owner, ttl)

        store.acquire_lease = counted  # type: ignore[method-assign]
        indexer = TextIndexer(store, clock=clock)  # type: ignore[arg-type]
        indexer.start()
        try:
            for _ in range(500):  # until it asked and then went to sleep on the clock (PostgreSQL's
                if asked and clock.pending():  # answer takes a while: advancing sooner loses the race)
                    break
                await asyncio.sleep(0.01)
            await clock.advance(LEASE_TTL / 3 - 1)  # many idle polls' worth: no new request
            assert len(asked) == 1
            assert (await store.index_progress())[0] == len(CORPUS)  # the other holds it: nothing indexed
            await store.release_lease(LEASE, "other-node")
            await clock.advance(1)
            for _ in range(200):
                if (await store.index_progress())[0] == 0:
                    break
                await asyncio.sleep(0.02)
            assert len(asked) == 2
            assert await store.index_progress() == (0, len(CORPUS))
        finally:
            await indexer.stop()
    finally:
        await store.close()
