"""Store contract: behaviour every MailStore backend must have (see store/api.py)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import pytest

from mailcove.core.errors import (
    AccountNotFound,
    BadMailboxName,
    DiskFull,
    MailboxExists,
    MailboxNotFound,
    QuotaExceeded,
)
from mailcove.store.api import (
    DEFAULT_MAILBOXES,
    DeliveryTarget,
    ImportMessage,
    MailStore,
    OutboundEnvelope,
    OutboundRecipient,
    UidValidityConflict,
)

A = "a@hamap.local"
B = "b@hamap.local"


def msg(n: int = 0, body: bytes = b"hello\r\n", extra: bytes = b"") -> bytes:
    return (
        b"From: a@hamap.local\r\nTo: b@hamap.local\r\nSubject: test %d\r\nMessage-ID: <%d@hamap.local>\r\n" % (n, n)
        + extra
        + b"\r\n"
        + body
    )


async def inbox_id(store: MailStore, user: str = A) -> int:
    return (await store.get_mailbox(user, "INBOX")).id


async def test_new_account_has_default_mailboxes(store: MailStore) -> None:
    boxes = await store.list_mailboxes(A)
    assert {(m.name, m.special_use) for m in boxes} == set(DEFAULT_MAILBOXES)
    assert all(m.subscribed and not m.noselect for m in boxes)
    assert len({m.uidvalidity for m in boxes}) == len(boxes)


async def test_create_account_is_idempotent(store: MailStore) -> None:
    before = await store.list_mailboxes(A)
    await store.create_account(A)
    assert await store.list_mailboxes(A) == before
    assert await store.list_accounts() == [A, B]


async def test_deliver_assigns_increasing_uids_and_modseqs(store: MailStore) -> None:
    results = [await store.deliver(msg(i), [DeliveryTarget(A)]) for i in range(3)]
    uids = [r[0].uid for r in results]
    modseqs = [r[0].modseq for r in results]
    assert uids == [1, 2, 3]
    assert modseqs == sorted(modseqs) and len(set(modseqs)) == 3
    box = await store.get_mailbox(A, "inbox")
    assert (box.name, box.messages, box.unseen, box.uidnext) == ("INBOX", 3, 3, 4)
    assert box.highestmodseq == modseqs[-1]
    assert box.size == sum(len(msg(i)) for i in range(3))


@pytest.mark.parametrize(
    "data",
    [
        b"Subject: x\r\n\r\nbody without final newline",
        b"Subject: \xe9t\xe9 8-bit header\r\n\r\n\xff\xfe binary \x00 NUL bytes\r\n",
        b"no header at all, just text\r\n",
        b"Subject: bare lf kept\n\nSMTP bytes are stored as received\n",
        b"",
    ],
)
async def test_deliver_is_byte_exact(store: MailStore, data: bytes) -> None:
    (r,) = await store.deliver(data, [DeliveryTarget(A)])
    assert await store.read_message(r.mailbox_id, r.uid) == data
    (meta,) = await store.fetch_meta(r.mailbox_id, [r.uid])
    assert meta.size == len(data)


async def test_append_converts_bare_lf_once(store: MailStore) -> None:
    r = await store.append(A, "Drafts", b"Subject: x\n\nline1\nline2\r\nline3\n", flags=["\\Draft", "\\Seen"])
    data = await store.read_message(r.mailbox_id, r.uid)
    assert data == b"Subject: x\r\n\r\nline1\r\nline2\r\nline3\r\n"
    (meta,) = await store.fetch_meta(r.mailbox_id, [r.uid])
    assert meta.size == len(data)
    assert meta.flags == {"\\Draft", "\\Seen"}
    box = await store.get_mailbox(A, "Drafts")
    assert box.unseen == 0


async def test_append_to_missing_mailbox_fails_but_deliver_falls_back(store: MailStore) -> None:
    with pytest.raises(MailboxNotFound):
        await store.append(A, "Nope", b"x\r\n")
    (r,) = await store.deliver(b"x\r\n", [DeliveryTarget(A, "Nope")])
    assert r.mailbox == "INBOX"


# --- import_messages: mail import keeping the old server's UIDVALIDITY and UIDs ---------------


async def test_import_keeps_uidvalidity_uids_flags_and_dates(store: MailStore) -> None:
    items = [
        ImportMessage(b"Subject: one\n\nbare LF kept as given\n", uid=3, flags=frozenset({"\\Seen"}), internaldate=1e9),
        ImportMessage(msg(2), uid=7, flags=frozenset({"\\Answered", "$Label1"}), internaldate=1.5e9),
        ImportMessage(msg(3)),  # no UID: the next free one
    ]
    r = await store.import_messages(A, "INBOX", items, uidvalidity=1234567890, uidnext=20)
    assert (r.uidvalidity, r.added, r.skipped, r.uidnext) == (1234567890, [3, 7, 8], [], 20)
    box = await store.get_mailbox(A, "INBOX")
    assert (box.uidvalidity, box.uidnext, box.messages, box.unseen) == (1234567890, 20, 3, 2)
    assert box.size == sum(len(i.source) for i in items)  # type: ignore[arg-type]
    metas = await store.fetch_meta(box.id, [3, 7, 8])
    assert [(m.uid, m.flags, m.internaldate) for m in metas[:2]] == [
        (3, {"\\Seen"}, 1e9),
        (7, {"\\Answered", "$Label1"}, 1.5e9),
    ]
    assert await store.read_message(box.id, 3) == items[0].source  # verbatim: no newline conversion
    # the next delivery continues after the imported UIDNEXT
    (d,) = await store.deliver(msg(9), [DeliveryTarget(A)])
    assert d.uid == 20 and d.uidvalidity == 1234567890


async def test_import_twice_skips_what_is_there(store: MailStore) -> None:
    items = [ImportMessage(msg(i), uid=i) for i in (1, 2, 5)]
    first = await store.import_messages(A, "Archive", items[:2], uidvalidity=42)
    assert first.added == [1, 2]
    again = await store.import_messages(A, "Archive", items, uidvalidity=42, uidnext=9)
    assert (again.added, again.skipped, again.uidnext) == ([5], [1, 2], 9)
    box = await store.get_mailbox(A, "Archive")
    assert (box.messages, box.uidnext) == (3, 9)
    # an expunged UID is never reused, even by a later import
    await store.expunge(box.id, [5])
    third = await store.import_messages(A, "Archive", items, uidvalidity=42)
    assert (third.added, third.skipped) == ([], [1, 2, 5])
    assert (await store.get_mailbox(A, "Archive")).uidnext == 9


async def test_import_uidvalidity_conflict_and_empty_mailbox(store: MailStore) -> None:
    await store.deliver(msg(1), [DeliveryTarget(A)])
    with pytest.raises(UidValidityConflict):
        await store.import_messages(A, "INBOX", [ImportMessage(msg(2), uid=1)], uidvalidity=77)
    assert (await store.get_mailbox(A, "INBOX")).messages == 1
    # an empty mailbox takes the old UIDVALIDITY, even after it held (expunged) mail: UIDs restart
    (r,) = await store.deliver(msg(3), [DeliveryTarget(A, "Junk")])
    await store.expunge(r.mailbox_id, [r.uid])
    res = await store.import_messages(A, "Junk", [ImportMessage(msg(4), uid=1)], uidvalidity=77)
    assert (res.uidvalidity, res.added) == (77, [1])
    assert await store.expunged_since(r.mailbox_id, 0) == []
    # a mailbox created afterwards never gets an imported UIDVALIDITY
    await store.import_messages(A, "Trash", [], uidvalidity=4_000_000_000)
    new = await store.create_mailbox(A, "Later")
    assert new.uidvalidity not in (77, 4_000_000_000)
    assert len({m.uidvalidity for m in await store.list_mailboxes(A)}) == len(await store.list_mailboxes(A))


@pytest.mark.parametrize(
    ("uids", "uidvalidity"),
    [((2, 2), None), ((3, 1), None), ((0,), None), ((2**32,), None), ((1,), 0), ((1,), 2**32)],
)
async def test_import_rejects_bad_uids(store: MailStore, uids: tuple[int, ...], uidvalidity: int | None) -> None:
    with pytest.raises(ValueError):
        await store.import_messages(
            A, "INBOX", [ImportMessage(msg(u), uid=u) for u in uids], uidvalidity=uidvalidity
        )
    assert (await store.get_mailbox(A, "INBOX")).messages == 0


async def test_import_is_all_or_nothing_and_per_user(make_store) -> None:  # type: ignore[no-untyped-def]
    s = make_store(inline_max=64)
    await s.start()
    try:
        await s.create_account(A)
        await s.create_account(B)
        with pytest.raises(MailboxNotFound):
            await s.import_messages(A, "Nope", [ImportMessage(msg(1), uid=1)])
        await s.set_quota(A, 0, 2)
        with pytest.raises(QuotaExceeded):
            await s.import_messages(A, "INBOX", [ImportMessage(msg(i), uid=i) for i in (1, 2, 3)])
        assert (await s.get_mailbox(A, "INBOX")).messages == 0
        big = b"Subject: big\r\n\r\n" + b"x" * 1000  # beyond inline_max: a blob file
        res = await s.import_messages(A, "INBOX", [ImportMessage(msg(1), uid=10), ImportMessage(big, uid=11)])
        assert await s.read_messages(res.mailbox_id, [10, 11]) == {10: msg(1), 11: big}
        assert (await s.usage(A)).messages == 2
        assert (await s.get_mailbox(B, "INBOX")).messages == 0
        # B's mailbox ids are B's: importing into B never touches A
        rb = await s.import_messages(B, "INBOX", [ImportMessage(msg(5), uid=10)], uidvalidity=5)
        assert rb.mailbox_id != res.mailbox_id and (await s.get_mailbox(A, "INBOX")).messages == 2
    finally:
        await s.close()


async def test_deliver_to_unknown_account(store: MailStore) -> None:
    with pytest.raises(AccountNotFound):
        await store.deliver(b"x\r\n", [DeliveryTarget(A), DeliveryTarget("nobody@hamap.local")])
    assert (await store.get_mailbox(A, "INBOX")).messages == 0


async def test_read_ranges(store: MailStore) -> None:
    data = msg(1, body=b"0123456789" * 10)
    (r,) = await store.deliver(data, [DeliveryTarget(A)])
    assert await store.read_message(r.mailbox_id, r.uid, 5, 10) == data[5:15]
    assert await store.read_message(r.mailbox_id, r.uid, len(data) - 3) == data[-3:]
    assert await store.read_message(r.mailbox_id, r.uid, len(data) + 10, 5) == b""


async def test_multi_recipient_one_blob_all_or_nothing(store: MailStore) -> None:
    results = await store.deliver(msg(1), [DeliveryTarget(A), DeliveryTarget(B), DeliveryTarget(B, "Archive")])
    assert [(r.user, r.mailbox) for r in results] == [(A, "INBOX"), (B, "INBOX"), (B, "Archive")]
    await store.set_quota(B, 0, 2)
    with pytest.raises(QuotaExceeded) as exc:
        await store.deliver(msg(2), [DeliveryTarget(A), DeliveryTarget(B)])
    assert exc.value.resource == "messages" and exc.value.enhanced == "4.2.2"
    # A did not get the second message either: nothing is half-delivered.
    assert (await store.get_mailbox(A, "INBOX")).messages == 1


async def test_large_message_goes_to_blob_file_and_round_trips(make_store) -> None:  # type: ignore[no-untyped-def]
    store = make_store(inline_max=1024)
    await store.start()
    try:
        await store.create_account(A)
        await store.create_account(B)
        spool = store.new_spool()
        body = os.urandom(300_000)
        spool.write(b"Subject: big\r\n\r\n")
        for i in range(0, len(body), 7000):
            spool.write(body[i : i + 7000])
        results = await store.deliver(spool, [DeliveryTarget(A), DeliveryTarget(B)])
        expected = b"Subject: big\r\n\r\n" + body
        for r in results:
            assert await store.read_message(r.mailbox_id, r.uid) == expected
            assert await store.read_message(r.mailbox_id, r.uid, 100, 50) == expected[100:150]
        path = await store.message_path(results[0].mailbox_id, results[0].uid)
        if path is not None:  # file-backed backends keep one file for both recipients
            assert path == await store.message_path(results[1].mailbox_id, results[1].uid)
            await store.expunge(results[0].mailbox_id, [results[0].uid])
            assert path.exists()
            await store.expunge(results[1].mailbox_id, [results[1].uid])
            assert not path.exists()
    finally:
        await store.close()


async def test_quota_bytes(store: MailStore) -> None:
    await store.set_quota(A, 100, 0)
    with pytest.raises(QuotaExceeded) as exc:
        await store.deliver(b"x" * 101, [DeliveryTarget(A)])
    assert exc.value.resource == "bytes"
    await store.deliver(b"x" * 100, [DeliveryTarget(A)])
    u = await store.usage(A)
    assert (u.bytes, u.messages, u.max_bytes) == (100, 1, 100)
    with pytest.raises(QuotaExceeded):
        await store.append(A, "INBOX", b"y")


async def test_disk_floor(make_store) -> None:  # type: ignore[no-untyped-def]
    store = make_store(min_free_bytes=1 << 62)
    await store.start()
    try:
        await store.create_account(A)
        with pytest.raises(DiskFull) as exc:
            await store.deliver(b"x\r\n", [DeliveryTarget(A)])
        assert exc.value.enhanced == "4.3.1"
        assert (await store.get_mailbox(A, "INBOX")).messages == 0
    finally:
        await store.close()


async def test_flags_and_modseq(store: MailStore) -> None:
    mid = await inbox_id(store)
    for i in range(3):
        await store.deliver(msg(i), [DeliveryTarget(A)])
    up = await store.store_flags(mid, [1, 2], "+", ["\\Seen", "$Label1"])
    assert [e.uid for e in up.changed] == [1, 2]
    assert up.changed[0].flags == {"\\Seen", "$Label1"}
    m1 = up.changed[0].modseq
    box = await store.get_mailbox(A, "INBOX")
    assert box.unseen == 1 and box.highestmodseq == m1
    # no-op changes do not bump modseq
    up2 = await store.store_flags(mid, [1], "+", ["\\Seen"])
    assert up2.changed == []
    up3 = await store.store_flags(mid, [1], "-", ["$Label1"])
    assert up3.changed[0].flags == {"\\Seen"} and up3.changed[0].modseq > m1
    up4 = await store.store_flags(mid, [2, 3], "=", ["\\Flagged"])
    assert {e.uid: e.flags for e in up4.changed} == {2: {"\\Flagged"}, 3: {"\\Flagged"}}
    assert (await store.get_mailbox(A, "INBOX")).unseen == 2
    index = await store.index(mid)
    assert [(e.uid, e.flags) for e in index] == [(1, {"\\Seen"}), (2, {"\\Flagged"}), (3, {"\\Flagged"})]


async def test_unchanged_since(store: MailStore) -> None:
    mid = await inbox_id(store)
    r1 = (await store.deliver(msg(1), [DeliveryTarget(A)]))[0]
    await store.deliver(msg(2), [DeliveryTarget(A)])
    await store.store_flags(mid, [2], "+", ["\\Seen"])
    up = await store.store_flags(mid, [1, 2], "+", ["\\Flagged"], unchanged_since=r1.modseq)
    assert [e.uid for e in up.changed] == [1]
    assert up.modified == [2]


async def test_expunge_records_vanished(store: MailStore) -> None:
    mid = await inbox_id(store)
    for i in range(4):
        await store.deliver(msg(i), [DeliveryTarget(A)])
    before = (await store.get_mailbox(A, "INBOX")).highestmodseq
    await store.store_flags(mid, [2, 4], "+", ["\\Deleted"])
    assert await store.expunge(mid) == [2, 4]
    assert [e.uid for e in await store.index(mid)] == [1, 3]
    assert await store.expunged_since(mid, before) == [2, 4]
    assert await store.expunge(mid, [3, 99]) == [3]
    box = await store.get_mailbox(A, "INBOX")
    assert (box.messages, box.uidnext) == (1, 5)
    assert (await store.usage(A)).messages == 1
    # UIDs are never reused
    (r,) = await store.deliver(msg(9), [DeliveryTarget(A)])
    assert r.uid == 5


async def test_copy_and_move(store: MailStore) -> None:
    src = await inbox_id(store)
    dst = (await store.get_mailbox(A, "Archive")).id
    for i in range(3):
        await store.deliver(msg(i), [DeliveryTarget(A)])
    await store.store_flags(src, [1], "+", ["\\Seen"])
    c = await store.copy(src, [1, 2], dst)
    assert c.pairs == [(1, 1), (2, 2)]
    assert c.uidvalidity == (await store.get_mailbox(A, "Archive")).uidvalidity
    assert await store.read_message(dst, 1) == msg(0)
    m = await store.move(src, [3], dst)
    assert m.pairs == [(3, 3)]
    assert [e.uid for e in await store.index(src)] == [1, 2]
    arch = await store.get_mailbox(A, "Archive")
    assert (arch.messages, arch.unseen) == (3, 2)
    assert (await store.usage(A)).messages == 5


async def test_copy_never_crosses_accounts(store: MailStore) -> None:
    await store.deliver(msg(1), [DeliveryTarget(A)])
    with pytest.raises(MailboxNotFound):
        await store.copy(await inbox_id(store, A), [1], await inbox_id(store, B))
    with pytest.raises(MailboxNotFound):
        await store.move(await inbox_id(store, A), [1], await inbox_id(store, B))
    assert (await store.get_mailbox(B, "INBOX")).messages == 0


async def test_mailbox_hierarchy(store: MailStore) -> None:
    await store.create_mailbox(A, "Projects/2026/Q4")
    names = {m.name for m in await store.list_mailboxes(A)}
    assert {"Projects", "Projects/2026", "Projects/2026/Q4"} <= names
    with pytest.raises(MailboxExists):
        await store.create_mailbox(A, "Projects")
    q4 = await store.get_mailbox(A, "Projects/2026/Q4")
    await store.rename_mailbox(A, "Projects", "Work")
    names = {m.name for m in await store.list_mailboxes(A)}
    assert "Work/2026/Q4" in names and "Projects" not in names
    renamed = await store.get_mailbox(A, "Work/2026/Q4")
    assert renamed.id == q4.id and renamed.uidvalidity != q4.uidvalidity
    # deleting a parent with children leaves it \Noselect
    await store.delete_mailbox(A, "Work")
    work = await store.get_mailbox(A, "Work")
    assert work.noselect
    await store.delete_mailbox(A, "Work/2026/Q4")
    await store.delete_mailbox(A, "Work/2026")
    with pytest.raises(MailboxNotFound):
        await store.get_mailbox(A, "Work/2026")
    # recreating the \Noselect name makes it selectable with a fresh UIDVALIDITY
    again = await store.create_mailbox(A, "Work")
    assert not again.noselect and again.uidvalidity != work.uidvalidity


async def test_delete_then_create_gets_new_uidvalidity(store: MailStore) -> None:
    first = await store.create_mailbox(A, "Tmp")
    await store.delete_mailbox(A, "Tmp")
    second = await store.create_mailbox(A, "Tmp")
    assert second.uidvalidity > first.uidvalidity


async def test_rename_inbox_moves_messages(store: MailStore) -> None:
    for i in range(2):
        await store.deliver(msg(i), [DeliveryTarget(A)])
    await store.rename_mailbox(A, "INBOX", "Old")
    assert (await store.get_mailbox(A, "INBOX")).messages == 0
    old = await store.get_mailbox(A, "Old")
    assert old.messages == 2
    assert await store.read_message(old.id, 1) == msg(0)


@pytest.mark.parametrize("name", ["", "/x", "x/", "a//b", "a/../b", "..", "a\x00b", "a\x01", "a/ b "])
async def test_bad_mailbox_names(store: MailStore, name: str) -> None:
    with pytest.raises(BadMailboxName):
        await store.create_mailbox(A, name)


async def test_inbox_cannot_be_deleted(store: MailStore) -> None:
    with pytest.raises(BadMailboxName):
        await store.delete_mailbox(A, "inbox")


async def test_subscriptions(store: MailStore) -> None:
    await store.set_subscribed(A, "Sent", False)
    assert not (await store.get_mailbox(A, "Sent")).subscribed
    await store.set_subscribed(A, "Later", True)
    later = await store.get_mailbox(A, "Later")
    assert later.subscribed and later.noselect


async def test_delete_account_removes_everything(store: MailStore) -> None:
    await store.deliver(msg(1), [DeliveryTarget(A), DeliveryTarget(B)])
    await store.delete_account(A)
    assert not await store.account_exists(A)
    assert await store.list_mailboxes(A) == []
    # B's copy of the shared blob is untouched
    assert await store.read_message(await inbox_id(store, B), 1) == msg(1)


async def test_users_are_isolated(store: MailStore) -> None:
    await store.create_mailbox(A, "Secret")
    await store.deliver(msg(1), [DeliveryTarget(A)])
    assert "Secret" not in {m.name for m in await store.list_mailboxes(B)}
    with pytest.raises(MailboxNotFound):
        await store.get_mailbox(B, "Secret")
    assert (await store.get_mailbox(B, "INBOX")).messages == 0


async def test_fetch_meta_has_parsed_info(store: MailStore) -> None:
    await store.deliver(msg(7), [DeliveryTarget(A)], internaldate=1_700_000_000.0)
    (meta,) = await store.fetch_meta(await inbox_id(store), [1])
    assert meta.internaldate == 1_700_000_000.0
    assert meta.info is not None


async def test_concurrent_deliveries_are_all_stored(store: MailStore) -> None:
    results = await asyncio.gather(*(store.deliver(msg(i), [DeliveryTarget(A)]) for i in range(300)))
    uids = sorted(r[0].uid for r in results)
    assert uids == list(range(1, 301))
    mid = await inbox_id(store)
    assert len(await store.index(mid)) == 300
    for r in results[:20]:
        data = await store.read_message(mid, r[0].uid)
        assert data.startswith(b"From: a@hamap.local")


async def test_change_bus_in_process(store: MailStore) -> None:
    sub = store.changes.subscribe(A)
    other = store.changes.subscribe(B)
    try:
        (r,) = await store.deliver(msg(1), [DeliveryTarget(A)])
        assert await sub.wait(1.0)
        changes = sub.drain()
        assert [(c.kind, c.mailbox_id, c.uids) for c in changes] == [("append", r.mailbox_id, (r.uid,))]
        await store.store_flags(r.mailbox_id, [r.uid], "+", ["\\Seen"])
        await store.expunge(r.mailbox_id, [r.uid])
        await asyncio.sleep(0.2)  # let the poller run too: it must not repeat what was published
        kinds = [c.kind for c in sub.drain()]
        assert kinds == ["flags", "expunge"]
        assert other.drain() == []
    finally:
        sub.close()
        other.close()


async def test_change_bus_sees_other_process(make_store) -> None:  # type: ignore[no-untyped-def]
    """A second store instance on the same data stands in for another process (CLI, sendmail)."""
    server = make_store()
    await server.start()
    cli = make_store(watch_changes=False)
    await cli.start()
    try:
        await server.create_account(A)
        sub = server.changes.subscribe(A)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        (r,) = await cli.deliver(msg(1), [DeliveryTarget(A)])
        assert await sub.wait(1.0)
        assert loop.time() - t0 < 1.0
        assert [(c.kind, c.uids) for c in sub.drain()] == [("append", (r.uid,))]
        sub.close()
    finally:
        await cli.close()
        await server.close()


async def test_data_survives_reopen(make_store) -> None:  # type: ignore[no-untyped-def]
    s = make_store()
    await s.start()
    await s.create_account(A)
    await s.deliver(msg(1), [DeliveryTarget(A)])
    await s.close()
    s2 = make_store()
    await s2.start()
    try:
        mid = (await s2.get_mailbox(A, "INBOX")).id
        assert await s2.read_message(mid, 1) == msg(1)
    finally:
        await s2.close()


# --- the outbound queue --------------------------------------------------------------------------


def _envelope(*rcpts: str, sender: str = A) -> OutboundEnvelope:
    return OutboundEnvelope(
        sender=sender,
        recipients=tuple(OutboundRecipient(r, orcpt=f"rfc822;{r}", notify=("FAILURE", "DELAY")) for r in rcpts),
        envid="ENV-1",
        ret="HDRS",
        body="8BITMIME",
        auth_user=A,
    )


async def test_submit_local_and_remote_in_one_commit(store: MailStore) -> None:
    data = msg(1, body=b"caf\xc3\xa9\r\n")
    res = await store.submit(data, [DeliveryTarget(B)], _envelope("x@remote.example", "y@remote.example"))
    assert [r.user for r in res.local] == [B]
    assert res.queue_id is not None
    item = await store.queue_get(res.queue_id)
    assert item.size == len(data)
    assert item.envelope.sender == A and item.envelope.envid == "ENV-1" and item.envelope.ret == "HDRS"
    assert item.envelope.body == "8BITMIME" and item.envelope.auth_user == A
    assert [(r.address, r.orcpt, r.notify, r.status, r.attempts) for r in item.recipients] == [
        ("x@remote.example", "rfc822;x@remote.example", ("FAILURE", "DELAY"), "queued", 0),
        ("y@remote.example", "rfc822;y@remote.example", ("FAILURE", "DELAY"), "queued", 0),
    ]
    assert await store.queue_read(res.queue_id) == data
    assert [i.id for i in await store.queue_list()] == [res.queue_id]
    assert await store.queue_size() == 1
    # the queue holds its own reference: expunging the local copy keeps the queued bytes
    await store.expunge(res.local[0].mailbox_id, [res.local[0].uid])
    assert await store.queue_read(res.queue_id) == data
    await store.queue_delete(res.queue_id)
    assert await store.queue_list() == []
    assert await store.queue_size() == 0


async def test_submit_remote_only_and_null_sender(store: MailStore) -> None:
    res = await store.submit(b"x\r\n", [], _envelope("x@remote.example", sender=""))
    assert res.local == [] and res.queue_id is not None
    assert (await store.queue_get(res.queue_id)).envelope.sender == ""


async def test_submit_is_all_or_nothing(store: MailStore) -> None:
    await store.set_quota(B, 0, 1)
    await store.deliver(msg(1), [DeliveryTarget(B)])
    with pytest.raises(QuotaExceeded):
        await store.submit(msg(2), [DeliveryTarget(B)], _envelope("x@remote.example"))
    assert await store.queue_list() == []


async def test_queue_survives_reopen_with_large_message(make_store) -> None:  # type: ignore[no-untyped-def]
    s = make_store(inline_max=1024)
    await s.start()
    await s.create_account(A)
    spool = s.new_spool()
    data = b"Subject: big\r\n\r\n" + b"z" * 5000
    spool.write(data)
    res = await s.submit(spool, [], _envelope("x@remote.example"))
    await s.close()
    s2 = make_store(inline_max=1024)
    await s2.start()
    try:
        assert await s2.queue_read(res.queue_id) == data
    finally:
        await s2.close()


async def test_collect_orphans_spares_young_files_and_referenced_blobs(make_store) -> None:  # type: ignore[no-untyped-def]
    s = make_store(inline_max=16)
    await s.start()
    try:
        await s.create_account(A)
        (r,) = await s.deliver(b"Subject: kept\r\n\r\n" + b"k" * 100, [DeliveryTarget(A)])
        kept = await s.message_path(r.mailbox_id, r.uid)
        spool = s.new_spool()
        spool.write(b"y" * 100)
        spool.finish()  # a delivery in progress in another process looks like this
        assert await s.collect_orphans() == 0
        assert spool.path.exists()
        assert await s.collect_orphans(min_age=0) == 1
        assert not spool.path.exists()
        if kept is not None:
            assert kept.exists()
        assert await s.read_message(r.mailbox_id, r.uid) == b"Subject: kept\r\n\r\n" + b"k" * 100
    finally:
        await s.close()


# --- the queue runner's verbs: claim with a lease, record outcomes, retry --------------------------


async def test_queue_claim_leases_due_recipients_once(store: MailStore) -> None:
    from mailcove.store.api import QueueOutcome

    res = await store.submit(msg(1), [], _envelope("x@remote.example", "y@remote.example"))
    created = (await store.queue_get(res.queue_id)).created
    claims = await store.queue_claim(created + 1, 60.0, 10)
    assert [(c.queue_id, c.idx, c.address, c.attempts, c.warned) for c in claims] == [
        (res.queue_id, 0, "x@remote.example", 0, False),
        (res.queue_id, 1, "y@remote.example", 0, False),
    ]
    assert claims[0].envelope.envid == "ENV-1" and claims[0].notify == ("FAILURE", "DELAY")
    assert claims[0].lease == claims[1].lease
    # leased: a second runner gets nothing until the lease ends
    assert await store.queue_claim(created + 2, 60.0, 10) == []
    # a runner killed mid-delivery: the lease ends, the recipients are due again (at-least-once)
    again = await store.queue_claim(created + 62, 60.0, 10)
    assert len(again) == 2 and again[0].lease != claims[0].lease
    # the first runner's late result no longer counts
    assert await store.queue_record([QueueOutcome(res.queue_id, 0, claims[0].lease, "sent")]) == []
    assert (await store.queue_get(res.queue_id)).recipients[0].status == "queued"
    lease = again[0].lease
    done = await store.queue_record([
        QueueOutcome(res.queue_id, 0, lease, "sent"),
        QueueOutcome(res.queue_id, 1, lease, "queued", created + 500, "451 4.3.0 try later", warned=True),
    ])
    assert done == []
    item = await store.queue_get(res.queue_id)
    assert [(r.status, r.attempts, r.last_error) for r in item.recipients] == [
        ("sent", 1, None), ("queued", 1, "451 4.3.0 try later")]
    assert item.recipients[1].next_attempt == created + 500
    assert await store.queue_claim(created + 499, 60.0, 10) == []
    last = await store.queue_claim(created + 500, 60.0, 10)
    assert [(c.idx, c.attempts, c.warned) for c in last] == [(1, 1, True)]
    done = await store.queue_record([QueueOutcome(res.queue_id, 1, last[0].lease, "failed", 0, "550 5.1.1 no")])
    assert done == [res.queue_id]
    assert await store.queue_list() == [] and await store.queue_size() == 0


async def test_queue_claim_limit_and_retry(store: MailStore) -> None:
    ids = [(await store.submit(msg(i), [], _envelope(f"r{i}@remote.example"))).queue_id for i in range(3)]
    now = max(i.created for i in await store.queue_list()) + 1
    first = await store.queue_claim(now, 300.0, 2)
    assert [c.queue_id for c in first] == ids[:2]
    assert [c.queue_id for c in await store.queue_claim(now, 300.0, 10)] == ids[2:]
    assert await store.queue_claim(now + 10, 300.0, 10) == []
    assert await store.queue_retry(ids[0], now + 10) == 1
    assert [c.queue_id for c in await store.queue_claim(now + 10, 300.0, 10)] == ids[:1]
    assert await store.queue_retry(None, now + 20) == 3
    assert len(await store.queue_claim(now + 20, 300.0, 10)) == 3
    from mailcove.core.errors import StoreError

    with pytest.raises(StoreError):
        await store.queue_retry(99999, now)


async def test_read_messages_in_one_call(make_store) -> None:  # type: ignore[no-untyped-def]
    s = make_store(inline_max=64)
    await s.start()
    try:
        await s.create_account(A)
        small = msg(1)
        big = b"Subject: big\r\n\r\n" + b"b" * 500  # beyond inline_max: a blob file
        spool = s.new_spool()
        spool.write(big)
        await s.deliver(small, [DeliveryTarget(A)])
        await s.deliver(spool, [DeliveryTarget(A)])
        mid = (await s.get_mailbox(A, "INBOX")).id
        assert await s.read_messages(mid, [2, 1, 99, 1]) == {1: small, 2: big}
        assert await s.read_messages(mid, []) == {}
    finally:
        await s.close()


# --- leases ----------------------------------------------------------------------------------


async def test_lease_is_exclusive_until_released(store: MailStore) -> None:
    assert await store.acquire_lease("pop3:a@hamap.local", "node1:s1", 30)
    assert not await store.acquire_lease("pop3:a@hamap.local", "node2:s9", 30)
    # another name is independent
    assert await store.acquire_lease("pop3:b@hamap.local", "node2:s9", 30)
    # re-acquiring by the holder succeeds (it renews)
    assert await store.acquire_lease("pop3:a@hamap.local", "node1:s1", 30)
    # releasing by someone else does nothing
    await store.release_lease("pop3:a@hamap.local", "node2:s9")
    assert not await store.acquire_lease("pop3:a@hamap.local", "node2:s9", 30)
    await store.release_lease("pop3:a@hamap.local", "node1:s1")
    assert await store.acquire_lease("pop3:a@hamap.local", "node2:s9", 30)
    assert not await store.renew_lease("pop3:a@hamap.local", "node1:s1", 30)
    await store.release_lease("never-taken", "x")  # harmless


async def test_lease_expires_and_renewal_keeps_it(store: MailStore) -> None:
    # Margins are wide so a loaded machine cannot turn this into a flake: only "held well
    # before expiry" and "free well after it" are asserted.
    assert await store.acquire_lease("k", "old", 0.3)
    await asyncio.sleep(0.4)
    # renewing an expired lease nobody took keeps it; the renewal pushes expiry out
    assert await store.renew_lease("k", "old", 1.5)
    assert not await store.acquire_lease("k", "new", 30)
    # unrenewed, it expires (a killed holder frees it) and the old owner has lost it
    await asyncio.sleep(1.7)
    assert await store.acquire_lease("k", "new", 30)
    assert not await store.renew_lease("k", "old", 30)
    await store.release_lease("k", "old")
    assert not await store.acquire_lease("k", "old", 30)


async def test_lease_contention_has_one_winner(store: MailStore) -> None:
    results = await asyncio.gather(*(store.acquire_lease("contended", f"owner{i}", 30) for i in range(20)))
    assert sum(results) == 1


async def test_lease_is_shared_by_two_store_instances(make_store: Callable[..., MailStore]) -> None:
    # Two processes (nodes) on one database are two store objects on one backend.
    s1, s2 = make_store(), make_store()
    await s1.start()
    await s2.start()
    try:
        assert await s1.acquire_lease("pop3:x", "n1", 30)
        assert not await s2.acquire_lease("pop3:x", "n2", 30)
        await s1.release_lease("pop3:x", "n1")
        assert await s2.acquire_lease("pop3:x", "n2", 30)
    finally:
        await s1.close()
        await s2.close()


@pytest.mark.parametrize(("name", "owner", "ttl"), [("", "o", 1), ("n", "", 1), ("n", "o", 0), ("n", "o", -1),
                                                    ("n" * 513, "o", 1), ("n", "o", 86401)])
async def test_lease_arguments_are_limited(store: MailStore, name: str, owner: str, ttl: float) -> None:
    with pytest.raises(ValueError):
        await store.acquire_lease(name, owner, ttl)


# --- export / restore (mailcove db copy) ------------------------------------------------------


async def _export_all(store: MailStore, user: str) -> tuple[object, dict[str, list[object]]]:
    state = await store.export_account(user)
    messages: dict[str, list[object]] = {}
    for box in state.mailboxes:
        if box.noselect:
            continue
        mid = (await store.get_mailbox(user, box.name)).id
        got: list[object] = []
        after = 0
        while page := await store.export_messages(mid, after, 2):  # tiny pages: paging is exercised
            got.extend(page)
            after = page[-1].uid
        messages[box.name] = got
    return state, messages


async def test_export_restore_keeps_what_clients_cache(make_store: Callable[..., MailStore]) -> None:
    import dataclasses

    store = make_store(inline_max=64)  # the big message below goes to a blob file where there are any
    await store.start()
    try:
        await store.create_account(A)
        await store.set_quota(A, 10_000_000, 1000)
        inbox = await inbox_id(store)
        for i in range(5):
            await store.deliver(msg(i), [DeliveryTarget(A)])
        big = msg(99, body=b"x" * 5000)
        await store.append(A, "INBOX", big, flags=["$Label1", "\\Answered"], internaldate=1_600_000_000.5)
        await store.store_flags(inbox, [1, 2], "+", ["\\Seen", "$Work"])
        await store.store_flags(inbox, [3], "+", ["\\Deleted"])
        assert await store.expunge(inbox) == [3]
        await store.create_mailbox(A, "Projects/2026")
        await store.set_subscribed(A, "Ghost", True)  # a \Noselect placeholder
        state, messages = await _export_all(store, A)
        src_inbox = await store.get_mailbox(A, "INBOX")
        assert [m.uid for m in messages["INBOX"]] == [1, 2, 4, 5, 6]
        assert dict(next(b for b in state.mailboxes if b.name == "INBOX").expunged).keys() == {3}

        # Restore as another account of the same store: same states, same messages.
        C = "c@hamap.local"
        await store.restore_account(dataclasses.replace(state, user=C))
        for name, msgs in messages.items():
            await store.restore_messages(C, name, msgs)  # type: ignore[arg-type]
        state2, messages2 = await _export_all(store, C)
        assert dataclasses.replace(state2, user=A) == state
        assert messages2 == messages
        c_inbox = await store.get_mailbox(C, "INBOX")
        for field_ in ("uidvalidity", "uidnext", "highestmodseq", "messages", "unseen", "size"):
            assert getattr(c_inbox, field_) == getattr(src_inbox, field_), field_
        assert await store.usage(C) == await store.usage(A)
        assert await store.expunged_since(c_inbox.id, 0) == [3]
        index = await store.index(c_inbox.id)
        assert [e.flags for e in index] == [e.flags for e in await store.index(src_inbox.id)]
        assert await store.read_message(c_inbox.id, 6) == big

        # The restored mailbox carries on where the source was: no UID or MODSEQ reused.
        (r,) = await store.deliver(msg(7), [DeliveryTarget(C)])
        assert r.uid == src_inbox.uidnext and r.modseq > src_inbox.highestmodseq
        new_box = await store.create_mailbox(C, "Later")
        assert new_box.uidvalidity > max(b.uidvalidity for b in state.mailboxes)

        # Only into an empty target, and only below UIDNEXT / HIGHESTMODSEQ.
        from mailcove.core.errors import StoreError

        with pytest.raises(StoreError):
            await store.restore_account(dataclasses.replace(state, user=C))
        bad = dataclasses.replace(messages["INBOX"][0], uid=10_000)  # type: ignore[type-var]
        with pytest.raises(ValueError):
            await store.restore_messages(C, "INBOX", [bad])  # type: ignore[list-item]
        present = messages["INBOX"][0]
        with pytest.raises(ValueError):
            await store.restore_messages(C, "INBOX", [present])  # type: ignore[list-item]
    finally:
        await store.close()


async def test_export_restore_queue(store: MailStore) -> None:
    from mailcove.store.api import QueueOutcome

    data = msg(1, body=b"q" * 300)
    res = await store.submit(data, [], _envelope("r1@remote.example", "r2@remote.example"))
    assert res.queue_id is not None
    item = await store.queue_get(res.queue_id)
    claims = await store.queue_claim(item.created + 1, 60.0, 10)
    await store.queue_record([
        QueueOutcome(res.queue_id, 0, claims[0].lease, "queued", item.created + 900, "451 4.3.0 later", warned=True),
        QueueOutcome(res.queue_id, 1, claims[1].lease, "sent"),
    ])
    (exported,) = await store.export_queue(0, 10)
    assert exported.data == data and exported.warned == frozenset({0})
    assert await store.export_queue(res.queue_id, 10) == []
    new_id = await store.restore_queue(exported)
    assert new_id != res.queue_id
    copy = await store.queue_get(new_id)
    assert copy.recipients == exported.item.recipients and copy.envelope == exported.item.envelope
    assert (copy.created, copy.size) == (exported.item.created, exported.item.size)
    assert await store.queue_read(new_id) == data
    # the restored recipient is due as the original was, with its warning state
    (claim,) = [c for c in await store.queue_claim(item.created + 1000, 60.0, 10) if c.queue_id == new_id]
    assert (claim.idx, claim.attempts, claim.warned) == (0, 1, True)


async def test_export_restore_large_message(store: MailStore) -> None:
    """A body past every backend's inline/chunk size (SQLite blob file, PostgreSQL chunk rows)."""
    import dataclasses

    big = b"Subject: large\r\n\r\n" + bytes(range(256)) * (3 * 4096 + 7)  # ~3 MB, every byte value
    await store.deliver(big, [DeliveryTarget(A, flags=frozenset({"\\Seen"}))])  # byte-exact, unlike append
    state = await store.export_account(A)
    mid = await inbox_id(store)
    (exported,) = await store.export_messages(mid, 0, 10)
    assert exported.data == big
    await store.restore_account(dataclasses.replace(state, user="c@hamap.local"))
    await store.restore_messages("c@hamap.local", "INBOX", [exported])
    box = await store.get_mailbox("c@hamap.local", "INBOX")
    assert await store.read_message(box.id, exported.uid) == big
    assert await store.read_message(box.id, exported.uid, 1_000_000, 100) == big[1_000_000:1_000_100]
    assert (await store.usage("c@hamap.local")).bytes == len(big)
