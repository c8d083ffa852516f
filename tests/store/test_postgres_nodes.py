"""PostgreSQL store, several nodes on one database: what the contract suite cannot show with one.

Each PostgresStore instance stands in for one `mailcove serve` node (its own pool, its own
LISTEN connection, its own change bus)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailcove.store.api import DeliveryTarget, OutboundEnvelope, OutboundRecipient

asyncpg = pytest.importorskip("asyncpg")

A = "a@hamap.local"


def msg(n: int) -> bytes:
    return b"From: x@remote.example\r\nSubject: %d\r\n\r\nbody %d\r\n" % (n, n)


@pytest.fixture
async def nodes(pg_dsn: str, tmp_path: Path) -> AsyncIterator[list]:  # type: ignore[type-arg]
    from mailcove.store.postgres import PostgresStore

    stores = [PostgresStore(pg_dsn, data_dir=tmp_path / f"node{i}", pool_size=6) for i in range(3)]
    for s in stores:
        await s.start()
    await stores[0].create_account(A)
    try:
        yield stores
    finally:
        for s in stores:
            await s.close()


async def test_concurrent_appends_from_two_nodes_are_visible_in_allocation_order(nodes: list) -> None:  # type: ignore[type-arg]
    """UIDs and MODSEQs are unique, and no reader ever sees UID n+1 before UID n (no gaps here,
    since no delivery fails, so every snapshot must be exactly 1..k)."""
    a, b, watcher = nodes
    mid = (await a.get_mailbox(A, "INBOX")).id
    sub = watcher.changes.subscribe(A)
    seen_on_bus: list[int] = []
    snapshots: list[list[int]] = []
    done = asyncio.Event()

    async def read_while_writing() -> None:
        while not done.is_set():
            index = await watcher.index(mid)
            snapshots.append(list(index.uids))
            ms = sorted(index.modseqs)
            # modseqs of appends start at 2 (a new mailbox's HIGHESTMODSEQ is 1): contiguous too
            assert ms == list(range(2, 2 + len(ms))), ms
            await asyncio.sleep(0)

    async def deliver_many(node, base: int) -> list[int]:  # type: ignore[no-untyped-def]
        results = await asyncio.gather(*(node.deliver(msg(base + i), [DeliveryTarget(A)]) for i in range(60)))
        return [r[0].uid for r in results]

    reader = asyncio.create_task(read_while_writing())
    uids_a, uids_b = await asyncio.gather(deliver_many(a, 0), deliver_many(b, 1000))
    done.set()
    await reader
    all_uids = sorted(uids_a + uids_b)
    assert all_uids == list(range(1, 121))
    assert len(snapshots) > 3
    for snap in snapshots:
        assert snap == list(range(1, len(snap) + 1)), snap
    # the third node's bus heard every append, in UID order (commit order = allocation order)
    deadline = asyncio.get_running_loop().time() + 5
    while len(seen_on_bus) < 120 and asyncio.get_running_loop().time() < deadline:
        await sub.wait(1.0)
        for change in sub.drain():
            assert change.kind == "append" and change.mailbox_id == mid
            seen_on_bus.extend(change.uids)
    assert seen_on_bus == list(range(1, 121))
    box = await watcher.get_mailbox(A, "INBOX")
    assert (box.messages, box.uidnext, box.highestmodseq) == (120, 121, 121)
    sub.close()


async def test_a_node_hears_its_own_and_other_nodes_changes_once(nodes: list) -> None:  # type: ignore[type-arg]
    a, b, _ = nodes
    sub_a = a.changes.subscribe(A)
    (r,) = await b.deliver(msg(1), [DeliveryTarget(A)])
    await a.store_flags(r.mailbox_id, [r.uid], "+", ["\\Seen"])
    await b.expunge(r.mailbox_id, [r.uid])
    got: list[tuple[str, tuple[int, ...]]] = []
    deadline = asyncio.get_running_loop().time() + 3
    while len(got) < 3 and asyncio.get_running_loop().time() < deadline:
        await sub_a.wait(0.5)
        got.extend((c.kind, c.uids) for c in sub_a.drain())
    await asyncio.sleep(0.2)
    got.extend((c.kind, c.uids) for c in sub_a.drain())
    assert got == [("append", (r.uid,)), ("flags", (r.uid,)), ("expunge", (r.uid,))]
    sub_a.close()


async def test_queue_claims_from_two_nodes_never_overlap(nodes: list) -> None:  # type: ignore[type-arg]
    a, b, _ = nodes
    env = OutboundEnvelope(sender=A, recipients=tuple(OutboundRecipient(f"r{i}@remote.example") for i in range(5)))
    ids = [(await a.submit(msg(i), [], env)).queue_id for i in range(20)]
    now = max(i.created for i in await a.queue_list()) + 1
    claimed: list[tuple[int, int]] = []
    for _round in range(10):
        ca, cb = await asyncio.gather(a.queue_claim(now, 300.0, 7), b.queue_claim(now, 300.0, 7))
        claimed.extend((c.queue_id, c.idx) for c in ca + cb)
    assert len(claimed) == len(set(claimed)) == 100
    assert {q for q, _ in claimed} == set(ids)


async def test_big_change_sets_travel_through_change_log(nodes: list) -> None:  # type: ignore[type-arg]
    """A NOTIFY payload holds 8000 bytes; an expunge of thousands of scattered UIDs is larger."""
    a, b, _ = nodes
    mid = (await a.get_mailbox(A, "INBOX")).id
    for i in range(0, 3000, 500):
        await a.deliver(msg(i), [DeliveryTarget(A)] * 500)
    sub = b.changes.subscribe(A)
    odd = list(range(1, 3001, 2))  # 1,500 single-UID ranges: far beyond one payload
    assert await a.expunge(mid, odd) == odd
    expunges = []
    deadline = asyncio.get_running_loop().time() + 5
    while not expunges and asyncio.get_running_loop().time() < deadline:
        await sub.wait(1.0)
        expunges = [c for c in sub.drain() if c.kind == "expunge"]  # appends may still be arriving
    (change,) = expunges
    assert list(change.uids) == odd
    sub.close()


async def test_listener_reconnects_and_tells_subscribers_to_resync(nodes: list, pg_dsn: str) -> None:  # type: ignore[type-arg]
    a, b, _ = nodes
    sub = b.changes.subscribe(A)
    conn = await asyncpg.connect(pg_dsn)
    try:
        # End every backend that is LISTENing (the listeners of all three nodes).
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE (query LIKE 'LISTEN%' OR query = 'SELECT 1') AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    deadline = asyncio.get_running_loop().time() + 10
    while not sub.overflowed and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    assert sub.overflowed  # changes may have been missed while disconnected: resync
    sub.overflowed = False
    sub.drain()
    (r,) = await a.deliver(msg(1), [DeliveryTarget(A)])
    assert await sub.wait(3.0)
    assert [(c.kind, c.uids) for c in sub.drain()] == [("append", (r.uid,))]
    sub.close()


async def test_store_refuses_an_old_schema(pg_dsn: str, tmp_path: Path) -> None:
    from mailcove.store.postgres import PostgresStore
    from mailcove.store.postgres.schema import SchemaError

    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute("UPDATE schema_version SET version = 1 WHERE component = 'store'")
    finally:
        await conn.close()
    store = PostgresStore(pg_dsn, data_dir=tmp_path / "d")
    with pytest.raises(SchemaError, match=r"version 1, this mailcove needs \d+: run `mailcove db migrate`"):
        await store.start()


async def test_a_batch_of_concurrent_deliveries_fails_only_the_ones_over_quota(nodes: list) -> None:  # type: ignore[type-arg]
    """Concurrent deliveries share one statement and commit (DeliveryBatcher); each runs in its
    own subtransaction, so one over quota fails alone and leaves no UID gap behind it."""
    from mailcove.core.errors import QuotaExceeded

    a, _b, _ = nodes
    other = "b@hamap.local"
    await a.create_account(other)
    await a.set_quota(A, 0, 5)
    outcomes = await asyncio.gather(
        *(a.deliver(msg(i), [DeliveryTarget(A if i % 2 else other)]) for i in range(20)), return_exceptions=True
    )
    to_a = [o for i, o in enumerate(outcomes) if i % 2]
    to_other = [o for i, o in enumerate(outcomes) if not i % 2]
    assert sum(isinstance(o, QuotaExceeded) for o in to_a) == 5
    assert sorted(o[0].uid for o in to_a if not isinstance(o, BaseException)) == [1, 2, 3, 4, 5]
    assert sorted(o[0].uid for o in to_other) == list(range(1, 11))
    assert (await a.usage(A)).messages == 5 and (await a.usage(other)).messages == 10
    assert a._batcher.batches < 20  # they were grouped


async def test_multi_recipient_deliveries_from_two_nodes_in_opposite_orders(
    nodes: list, pg_dsn: str  # type: ignore[type-arg]
) -> None:
    """Each batch locks its accounts and mailboxes in one global order, so two nodes delivering
    to the same users in opposite target orders neither deadlock nor lose or repeat a UID."""
    a, b, _ = nodes
    other = "b@hamap.local"
    await a.create_account(other)
    results = await asyncio.gather(
        *(a.deliver(msg(i), [DeliveryTarget(A), DeliveryTarget(other)]) for i in range(40)),
        *(b.deliver(msg(i), [DeliveryTarget(other), DeliveryTarget(A)]) for i in range(40)),
    )
    for user in (A, other):
        uids = sorted(r.uid for rs in results for r in rs if r.user == user)
        assert uids == list(range(1, 81)), user
    # and PostgreSQL detected no deadlock (a retried victim would also end with every UID)
    await asyncio.sleep(1.5)  # backends flush their statistics within a second
    conn = await asyncpg.connect(pg_dsn)
    try:
        assert await conn.fetchval("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()") == 0
    finally:
        await conn.close()
