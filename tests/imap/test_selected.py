"""The shared mailbox cache and per-session views (imap/selected.py) without a server: what each
view has to announce after changes, \\Recent claims, and idempotent application of changes."""

from __future__ import annotations

import asyncio
import tempfile
from array import array
from pathlib import Path

from mailcove.imap.recent import RecentFloors
from mailcove.imap.selected import CacheRegistry, MailboxCache, SelectedView
from mailcove.proto.imap.seqset import SeqSet
from mailcove.store.api import IndexEntry, Mailbox, MailboxIndex

S = frozenset({"\\Seen"})
NONE: frozenset[str] = frozenset()


def _mailbox(mailbox_id: int = 7, uidvalidity: int = 1, name: str = "INBOX") -> Mailbox:
    return Mailbox(mailbox_id, "a@x", name, uidvalidity, 1, 1, None, True, False, 0, 0, 0)


def _cache(n: int) -> MailboxCache:
    # Hypothesis calls this many times per test: a fresh \Recent table each time.
    reg = CacheRegistry(store=None, recent=RecentFloors(Path(tempfile.mkdtemp())))  # type: ignore[arg-type]
    idx = MailboxIndex(array("Q", range(1, n + 1)), [NONE] * n, array("Q", [1] * n))
    cache = MailboxCache(reg, _mailbox(), idx)
    cache.refs = 10
    reg.caches[7] = cache
    return cache


def test_expunge_is_held_until_announced():
    cache = _cache(5)
    a = SelectedView(cache, readonly=False, rev1=False, uidvalidity=1)
    b = SelectedView(cache, readonly=False, rev1=False, uidvalidity=1)
    cache.apply_expunge([2, 4], modseq=5)
    assert len(a) == 5 and a.flags_of(2) == NONE and not a.in_step
    seqs, uids = a.take_expunges()
    assert seqs == [4, 2] and uids == [2, 4]  # descending: each number valid when sent
    assert list(a.uids) == [1, 3, 5] and a.in_step
    assert len(b) == 5 and b.seq_of(5) == 5  # b keeps its numbers until it is told


def test_new_messages_and_flag_changes():
    cache = _cache(2)
    a = SelectedView(cache, readonly=False, rev1=False, uidvalidity=1)
    b = SelectedView(cache, readonly=False, rev1=False, uidvalidity=1)
    cache.apply_append([IndexEntry(3, NONE, 2)])
    cache.apply_append([IndexEntry(3, NONE, 2)])  # the bus's copy of the same append
    assert list(cache.uids) == [1, 2, 3]
    assert a.take_new() == 1 and len(a) == 3
    asyncio.run(cache.apply_flags([IndexEntry(1, S, 3)], origin=a))
    asyncio.run(cache.apply_flags([IndexEntry(1, NONE, 2)]))  # older modseq: ignored
    assert a.take_flag_changes() == []  # a made the change itself
    assert b.take_flag_changes() == [1] and b.flags_of(1) == S


def test_a_big_flag_change_is_applied_in_steps():
    # STORE 1:* on a big mailbox: applied in steps with turns of the loop between them; every
    # message gets its flags, the other views are told once, stale entries are ignored.
    n = 5000
    cache = _cache(n)
    a = SelectedView(cache, readonly=False, rev1=False, uidvalidity=1)
    b = SelectedView(cache, readonly=False, rev1=False, uidvalidity=1)
    kw = frozenset({"\\Seen", "todo"})
    entries = [IndexEntry(u, kw if u % 2 else S, 3) for u in range(1, n + 1)] + [IndexEntry(3, NONE, 2)]
    asyncio.run(cache.apply_flags(entries, origin=a))
    assert cache.flags_of(1) == kw and cache.flags_of(2) == S and cache.flags_of(3) == kw
    assert cache.keywords == {"todo"} and cache.highestmodseq == 3
    assert a.take_flag_changes() == [] and b.take_flag_changes() == list(range(1, n + 1))


def test_resolve_sets():
    cache = _cache(5)
    v = SelectedView(cache, readonly=False, rev1=False, uidvalidity=1)
    assert v.resolve(SeqSet.parse("2:3,5"), uid=False) == [2, 3, 5]
    assert v.resolve(SeqSet.parse("4:*"), uid=True) == [4, 5]
    assert v.resolve(SeqSet.parse("9:*"), uid=True) == [5]  # "*" is the largest UID
    assert v.bad_seqs(SeqSet.parse("6")) and not v.bad_seqs(SeqSet.parse("1:*"))


def test_recent_goes_to_the_first_rev1_session():
    cache = _cache(3)
    first = SelectedView(cache, readonly=False, rev1=True, uidvalidity=1)
    second = SelectedView(cache, readonly=False, rev1=True, uidvalidity=1)
    examine = SelectedView(cache, readonly=True, rev1=True, uidvalidity=1)
    assert first.recent.count(first.uids) == 3 and second.recent.count(second.uids) == 0
    cache.apply_append([IndexEntry(4, NONE, 2)])
    examine.take_new()
    second.take_new()
    first.take_new()
    # EXAMINE shows what nobody had claimed when it was told, and claims nothing (as Dovecot)
    assert 4 in second.recent and 4 not in first.recent and 4 in examine.recent
    assert examine.recent.count(examine.uids) == 1


def test_sessions_share_the_uid_map_until_it_changes():
    cache = _cache(4)
    a = SelectedView(cache, readonly=False, rev1=False, uidvalidity=1)
    b = SelectedView(cache, readonly=False, rev1=False, uidvalidity=1)
    assert a.uids is cache.uids and b.uids is cache.uids  # no copy per session
    cache.apply_expunge([2])
    assert list(a.uids) == [1, 2, 3, 4] and a.uids is not cache.uids  # copy-on-write
    cache.apply_append([IndexEntry(5, NONE, 2)])
    a.take_expunges()
    assert list(a.uids) == [1, 3, 4] and not a.in_step
    a.take_new()
    assert a.uids is cache.uids and a.in_step and list(a.uids) == [1, 3, 4, 5]
    assert list(b.uids) == [1, 2, 3, 4]  # b has been told nothing yet
    b.take_expunges()
    b.take_new()
    assert b.uids is cache.uids


def test_an_own_append_never_overtakes_a_lower_uid_still_on_the_bus(tmp_path):
    """Another process's (or node's) append got UID 3 and committed first; its change has not
    reached this process yet when our own APPEND returns UID 4. The cache must take UID 3 in
    with ours, from the store: added later, below 4, a session that has announced 4 could never
    show it (a client that saw UID 4 must not later see UID 3 appear)."""
    import asyncio

    from mailcove.store.changes import Change
    from mailcove.store.sqlite import SqliteStore

    async def go() -> None:
        store = SqliteStore(tmp_path / "data", change_poll_ms=20)
        await store.start()
        try:
            await store.create_account("a@x")
            for i in (1, 2):
                await store.append("a@x", "INBOX", b"Subject: %d\r\n\r\nx\r\n" % i)
            box = await store.get_mailbox("a@x", "INBOX")
            # no change pump: the other writer's change is "in flight"
            reg = CacheRegistry(store, RecentFloors(tmp_path))
            cache = MailboxCache(reg, box, await store.index(box.id))
            cache.refs = 1
            reg.caches[box.id] = cache
            view = SelectedView(cache, readonly=False, rev1=False, uidvalidity=box.uidvalidity)
            other = await store.append("a@x", "INBOX", b"Subject: other\r\n\r\nx\r\n")
            own = await store.append("a@x", "INBOX", b"Subject: own\r\n\r\nx\r\n")
            assert (other.uid, own.uid) == (3, 4)
            await reg.add_appended(cache, [own.uid], [IndexEntry(own.uid, NONE, own.modseq)])
            assert list(cache.uids) == [1, 2, 3, 4]
            assert view.take_new() == 2 and list(view.uids) == [1, 2, 3, 4]
            # the late change for UID 3, and then a higher one from the bus: nothing below 4 again
            await reg._apply(cache, Change(0, "a@x", box.id, "append", (3,), other.modseq))
            late = await store.append("a@x", "INBOX", b"Subject: late\r\n\r\nx\r\n")
            await reg._apply(cache, Change(0, "a@x", box.id, "append", (late.uid,), late.modseq))
            assert list(cache.uids) == [1, 2, 3, 4, 5] and view.take_new() == 1
        finally:
            await store.close()

    asyncio.run(go())


def test_bulk_append_and_expunge_keep_every_view_right():
    # A COPY of many messages is appended in bulk (duplicates and lower UIDs take the careful
    # path); an expunge is taken in bulk by views that share the cache's map, one by one by others.
    cache = _cache(3)
    a = SelectedView(cache, readonly=False, rev1=False, uidvalidity=1)
    cache.apply_append([IndexEntry(5, S, 2), IndexEntry(4, NONE, 2), IndexEntry(5, S, 2)])
    assert list(cache.uids) == [1, 2, 3, 4, 5]
    cache.apply_append([IndexEntry(u, S, 3) for u in range(6, 1006)])
    assert len(cache.uids) == 1005 and cache.top_uid == 1005 and cache.highestmodseq == 3
    b = SelectedView(cache, readonly=False, rev1=False, uidvalidity=1)  # in step with the cache
    assert a.take_new() == 1002 and len(a) == 1005
    cache.apply_expunge([9999, *range(1, 1006, 2)], modseq=4)
    for view in (a, b):
        seqs, uids = view.take_expunges()
        assert uids == list(range(1, 1006, 2)) and seqs == sorted(seqs, reverse=True) and len(seqs) == 503
        assert list(view.uids) == list(range(2, 1006, 2))
