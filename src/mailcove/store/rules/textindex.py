"""The full-text index for SEARCH BODY and TEXT, once for both backends.

What is indexed: each stored body's `message.text.index_text` (its decoded header, the decoded
text of its text parts, HTML reduced to text, file names; case-folded), one entry per body
however many mailboxes hold it. SQLite keeps it in FTS5 tables (trigrams, and Hangul bigrams),
PostgreSQL in a table with a pg_trgm GIN index: each backend's statements.

When: never on the delivery path. A body is inserted unindexed; `store.textindexer` (a task of
the serving process) picks up unindexed bodies in batches after the delivery was acknowledged:
`unindexed` reads them, the text is computed outside the store's writer, `index_texts` stores it.
Bodies stored before this index existed are unindexed too, so an upgraded store is indexed the
same way, in the background.

The exact check: the index only narrows. `candidates` answers with the messages whose text may
contain the needle plus every message not indexed yet; IMAP SEARCH then runs its own substring
check (imap/search.py) on those alone, so its results never depend on the index. A needle the
index cannot narrow (None) is searched by the exact scan over every message.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from mailcove.message import MessageInfo
from mailcove.message.text import SEARCH_BYTES, index_text, is_hangul_pair
from mailcove.store.rules.accounts import locked_account
from mailcove.store.rules.statements import (
    IndexProgress,
    IndexTexts,
    ResetIndex,
    TextCandidates,
    UnindexedBodies,
)
from mailcove.store.sansio import Rule

log = logging.getLogger("mailcove.store")

TRIGRAM = 3  # characters in the shortest needle a trigram index narrows
BATCH = 500  # bodies per indexing step at most (one read, one write); the indexer sizes it down by time


def unindexed(after: int, limit: int) -> Rule[list[tuple[int, Any, bytes, bytes]]]:
    """Up to `limit` bodies to index, ids above `after`: (blob id, token, their first
    SEARCH_BYTES, MessageInfo bytes)."""
    return list((yield UnindexedBodies(after, limit, SEARCH_BYTES)))


def texts(bodies: Sequence[tuple[int, Any, bytes, bytes]]) -> list[tuple[int, Any, str, str]]:
    """What `index_texts` stores for bodies `unindexed` read (pure: run off the event loop and
    off the store's writer). A body without MessageInfo (queue-only, or unreadable) gets no text.
    A body whose text cannot be computed is left out: it stays unindexed, so SEARCH keeps
    finding it by the exact scan."""
    out: list[tuple[int, Any, str, str]] = []
    for blob_id, token, data, info in bodies:
        if not info:
            out.append((blob_id, token, "", ""))
            continue
        try:
            text, grams = index_text(data, MessageInfo.from_bytes(info))
        except Exception:  # one bad body must not stop the indexer
            log.exception("full-text index: body %d left to the exact scan", blob_id)
            continue
        out.append((blob_id, token, text, grams))
    return out


def index_texts(rows: Sequence[tuple[int, Any, str, str]]) -> Rule[int]:
    if not rows:
        return 0
    return (yield IndexTexts(rows))


def searchable(needle: str) -> str | None:
    """The needle as the index is asked for it (case-folded as SEARCH folds it), or None when
    only the exact scan can answer: the empty needle (every message matches), and a needle with
    a lone surrogate or a NUL (the index text has neither)."""
    folded = needle.casefold()
    if not folded or "\x00" in folded or any("\ud800" <= c <= "\udfff" for c in folded):
        return None
    return folded


def candidates(mailbox_id: int, needle: str) -> Rule[set[int] | None]:
    """The UIDs a message containing `needle` must be among, or None: no narrowing."""
    folded = searchable(needle)
    if folded is None:
        return None
    pair = is_hangul_pair(folded)
    if len(folded) < TRIGRAM and not pair:
        # Both backends index trigrams (and Hangul syllable pairs): nothing narrows a shorter
        # needle, and PostgreSQL's LIKE on it read every text before the scan ran anyway (10-12 s
        # against 9.7 s for the scan alone on 100,000 messages, docs/benchmarks.md).
        return None
    found = yield TextCandidates(mailbox_id, folded, pair)
    return None if found is None else set(found)


def progress() -> Rule[tuple[int, int]]:
    """(bodies waiting to be indexed, bodies)."""
    return (yield IndexProgress())


def reset(user: str) -> Rule[int]:
    """Drop the user's bodies from the index, to be indexed again; returns how many."""
    account = yield from locked_account(user)
    return (yield ResetIndex(account.id))
