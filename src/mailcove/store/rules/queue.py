"""The outbound queue: claims and leases of recipients, recording attempts, retries, listings."""

from __future__ import annotations

import json
from collections.abc import Sequence

from mailcove.core.errors import StoreError
from mailcove.store.api import (
    OutboundEnvelope,
    OutboundRecipient,
    QueueClaim,
    QueuedRecipient,
    QueueItem,
    QueueState,
)
from mailcove.store.rules.statements import (
    AddBody,
    Body,
    ClaimRecipients,
    DeleteQueueEntry,
    InsertQueueEntry,
    QueueEntries,
    QueueExists,
    QueueIdsAfter,
    QueueMessage,
    QueuePending,
    QueueRecipients,
    QueueSize,
    RecordAttempts,
    ReleaseBlobs,
    RetryRecipients,
)
from mailcove.store.sansio import Rule


def no_entry(queue_id: int) -> StoreError:
    return StoreError(f"no queue entry {queue_id}", code=550, enhanced="5.1.0")


def _notify(text: str) -> tuple[str, ...]:
    return tuple(text.split(",")) if text else ()


def queue_delete(queue_id: int) -> Rule[None]:
    blob_id = yield DeleteQueueEntry(queue_id)
    if blob_id is None:
        raise no_entry(queue_id)
    yield ReleaseBlobs({blob_id: 1})


def queue_claim(now: float, lease_seconds: float, limit: int, lease: str) -> Rule[list[QueueClaim]]:
    """See MailStore.queue_claim; `lease` is this claim's token."""
    envelopes: dict[str, OutboundEnvelope] = {}
    out = []
    for qid, idx, address, orcpt, notify, attempts, warned, created, env_json in (
        yield ClaimRecipients(now, now + lease_seconds, limit, lease)
    ):
        env = envelopes.get(env_json)
        if env is None:
            env = envelopes[env_json] = OutboundEnvelope(recipients=(), **json.loads(env_json))
        out.append(QueueClaim(qid, idx, address, orcpt, _notify(notify), attempts, bool(warned), lease, created, env))
    return out


def queue_record(outcomes: Sequence[tuple[int, int, str, str, float, str | None, bool]]) -> Rule[list[int]]:
    """outcomes: (queue id, idx, lease, status, next attempt, error, warned). Entries left with no
    recipient queued or held are removed; their ids are returned."""
    done: list[int] = []
    for queue_id in sorted((yield RecordAttempts(outcomes))):
        if not (yield QueuePending(queue_id)):
            yield from queue_delete(queue_id)
            done.append(queue_id)
    return done


def queue_retry(queue_id: int | None, now: float) -> Rule[int]:
    if queue_id is not None and not (yield QueueExists(queue_id)):
        raise no_entry(queue_id)
    return (yield RetryRecipients(queue_id, now))


def restore_queue(entry: QueueState, envelope_json: str, body: Body) -> Rule[int]:
    """One entry with its recipients' state (leases are not kept: a claimed recipient is due)."""
    blob_id = yield AddBody(len(entry.data), body, 1)
    return (yield InsertQueueEntry(blob_id, entry, envelope_json))


# --- reading ---------------------------------------------------------------------------------------


def _entries(queue_id: int | None) -> Rule[list[tuple[QueueItem, frozenset[int]]]]:
    """Entries with their recipients, and the indexes whose delay warning went out."""
    entries = yield QueueEntries(queue_id)
    if not entries:
        return []
    rcpts: dict[int, list[QueuedRecipient]] = {}
    warned: dict[int, set[int]] = {}
    for qid, idx, address, orcpt, notify, status, attempts, next_attempt, error, was_warned in (
        yield QueueRecipients(queue_id)
    ):
        rcpts.setdefault(qid, []).append(
            QueuedRecipient(address, orcpt, _notify(notify), status, attempts, next_attempt, error)
        )
        if was_warned:
            warned.setdefault(qid, set()).add(idx)
    out = []
    for qid, created, size, env_json in entries:
        rs = tuple(rcpts.get(qid, ()))
        env = OutboundEnvelope(
            recipients=tuple(OutboundRecipient(r.address, r.orcpt, r.notify) for r in rs), **json.loads(env_json)
        )
        out.append((QueueItem(qid, created, size, env, rs), frozenset(warned.get(qid, ()))))
    return out


def queue_list() -> Rule[list[QueueItem]]:
    return [item for item, _warned in (yield from _entries(None))]


def queue_get(queue_id: int) -> Rule[QueueItem]:
    found = yield from _entries(queue_id)
    if not found:
        raise no_entry(queue_id)
    return found[0][0]


def queue_read(queue_id: int) -> Rule[bytes]:
    data = yield QueueMessage(queue_id)
    if data is None:
        raise no_entry(queue_id)
    return data


def queue_size() -> Rule[int]:
    return (yield QueueSize())


def export_queue(after_id: int, limit: int) -> Rule[list[QueueState]]:
    out = []
    for queue_id in (yield QueueIdsAfter(after_id, limit)):
        for item, warned in (yield from _entries(queue_id)):
            data = yield QueueMessage(queue_id)
            if data is not None:
                out.append(QueueState(item, warned, data))
    return out
