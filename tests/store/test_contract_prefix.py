"""Store contract, MessagePrefix (store/api.py): a body is stored exactly as received and the
server's header lines are kept beside it. Every read serves prefix + body as one message, the
sizes, quota and MessageInfo are those of what is served, the queue entry gets its own prefix,
and a large body's spool file becomes the stored file as it is (never copied to prepend)."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from mailcove.message import scan
from mailcove.store.api import (
    DeliveryTarget,
    MailStore,
    MessagePrefix,
    OutboundEnvelope,
    OutboundRecipient,
)

A = "a@hamap.local"
B = "b@hamap.local"
TRACE = (b"Authentication-Results: mx.hamap.local; spf=pass smtp.mailfrom=x@example.org\r\n"
         b"Received: from client.example ([192.0.2.1])\r\n\tby mx.hamap.local (mailcove) with ESMTP id ab1;\r\n"
         b"\tThu, 1 Jan 2026 00:00:00 +0000\r\n")
PREFIX = MessagePrefix(local=b"Return-Path: <x@example.org>\r\n" + TRACE, queued=TRACE)
BODY = (b"From: x@example.org\r\nTo: a@hamap.local\r\nSubject: prefixed\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
        b"one\r\n--b--\r\n")
OUT = OutboundEnvelope("x@example.org", (OutboundRecipient("far@remote.example"),))


async def _large_store(make_store: Callable[..., MailStore]) -> MailStore:
    s = make_store(inline_max=1024)
    await s.start()
    await s.create_account(A)
    await s.create_account(B)
    return s


def _ranges(n: int) -> list[tuple[int, int | None]]:
    edges = [0, 1, 29, 30, 31, len(PREFIX.local) - 1, len(PREFIX.local), len(PREFIX.local) + 1, n - 1, n, n + 5]
    return [(s, ln) for s in edges for ln in (None, 0, 1, 7, 100, n)]


async def _check_served(store: MailStore, mailbox_id: int, uid: int, served: bytes) -> None:
    assert await store.read_message(mailbox_id, uid) == served
    for start, length in _ranges(len(served)):
        want = served[start:] if length is None else served[start : start + length]
        assert await store.read_message(mailbox_id, uid, start, length) == want, (start, length)
    assert await store.read_messages(mailbox_id, [uid]) == {uid: served}
    (meta,) = await store.fetch_meta(mailbox_id, [uid])
    assert meta.size == len(served)
    assert meta.info == scan(served)


@pytest.mark.parametrize("large", [False, True], ids=["inline", "file"])
async def test_local_copies_and_queue_entry_serve_their_prefix(
    make_store: Callable[..., MailStore], large: bool
) -> None:
    store = await _large_store(make_store)
    try:
        body = BODY + (os.urandom(5000) if large else b"")
        spool = store.new_spool()
        spool.write(body)
        res = await store.submit(spool, [DeliveryTarget(A), DeliveryTarget(B)], OUT, prefix=PREFIX)
        local = PREFIX.local + body
        for r in res.local:
            await _check_served(store, r.mailbox_id, r.uid, local)
        assert (await store.usage(A)).bytes == len(local)
        assert (await store.get_mailbox(A, "INBOX")).size == len(local)
        assert res.queue_id is not None
        assert await store.queue_read(res.queue_id) == PREFIX.queued + body  # no Return-Path to strip
        assert (await store.queue_get(res.queue_id)).size == len(PREFIX.queued + body)
        # a copy shares the body and its prefix
        archive = await store.get_mailbox(A, "Archive")
        copied = await store.copy(res.local[0].mailbox_id, [res.local[0].uid], archive.id)
        await _check_served(store, archive.id, copied.pairs[0][1], local)
        # export serves the whole message: a restored copy is byte-identical
        (exported,) = await store.export_messages(res.local[0].mailbox_id, 0, 10)
        assert exported.data == local
        (queued,) = await store.export_queue(0, 10)
        assert queued.data == PREFIX.queued + body
    finally:
        await store.close()


async def test_the_spool_file_is_stored_as_received(make_store: Callable[..., MailStore]) -> None:
    """The spool the session wrote becomes the stored file: same inode, same bytes, the prefix
    kept in the row. Before MessagePrefix the trace was part of the spool, and the inbound checks
    copied a large spool to insert Authentication-Results."""
    store = await _large_store(make_store)
    try:
        body = BODY + os.urandom(1_200_000)  # past what the scan would concatenate (scan_prefixed)
        spool = store.new_spool()
        spool.write(body)
        spool.finish()
        inode = os.stat(spool.path).st_ino
        (r,) = (await store.submit(spool, [DeliveryTarget(A)], None, prefix=PREFIX)).local
        path = await store.message_path(r.mailbox_id, r.uid)
        if path is None:
            pytest.skip("the backend keeps bodies in its database (no file to compare)")
        assert path.read_bytes() == body
        assert os.stat(path).st_ino == inode
        await _check_served(store, r.mailbox_id, r.uid, PREFIX.local + body)
    finally:
        await store.close()


@pytest.mark.parametrize("large", [False, True], ids=["inline", "file"])
async def test_a_rewritten_header_block_replaces_the_received_one(
    make_store: Callable[..., MailStore], large: bool
) -> None:
    """skip > 0: both prefixes end with a filter's header block, which stands for the header as
    received; the body's bytes stay as they came."""
    store = await _large_store(make_store)
    try:
        forged = b"Authentication-Results: mx.hamap.local; dmarc=pass\r\n"
        body = forged + BODY + (os.urandom(5000) if large else b"")
        end = body.index(b"\r\n\r\n") + 4
        header = body[len(forged) : end]
        prefix = MessagePrefix(PREFIX.local + header, PREFIX.queued + header, end)
        spool = store.new_spool()
        spool.write(body)
        res = await store.submit(spool, [DeliveryTarget(A)], OUT, prefix=prefix)
        served = PREFIX.local + body[len(forged) :]
        await _check_served(store, res.local[0].mailbox_id, res.local[0].uid, served)
        assert await store.queue_read(res.queue_id) == PREFIX.queued + body[len(forged) :]
        assert (await store.usage(A)).bytes == len(served)
    finally:
        await store.close()


async def test_quota_counts_the_prefix(store: MailStore) -> None:
    await store.set_quota(A, len(PREFIX.local) + len(BODY), 0)
    await store.submit(BODY, [DeliveryTarget(A)], None, prefix=PREFIX)
    await store.set_quota(A, 2 * (len(PREFIX.local) + len(BODY)) - 1, 0)
    from mailcove.core.errors import QuotaExceeded

    with pytest.raises(QuotaExceeded):
        await store.submit(BODY, [DeliveryTarget(A)], None, prefix=PREFIX)


async def test_skip_beyond_the_body_is_refused(store: MailStore) -> None:
    with pytest.raises(ValueError):
        await store.submit(BODY, [DeliveryTarget(A)], None, prefix=MessagePrefix(b"X: y\r\n", b"", len(BODY) + 1))
    assert (await store.get_mailbox(A, "INBOX")).messages == 0
