"""The full-text index's progress (store/rules/textindex.py): how many message bodies are
indexed. Bodies not indexed yet are still found by SEARCH, by its slower exact scan; after an
upgrade the running server indexes the old ones in the background, and this shows how far."""

from __future__ import annotations

from mailcove.check.model import Finding, ServerState
from mailcove.config import Settings
from mailcove.store.factory import open_store

SUBJECT = "full-text index"


def describe(waiting: int, total: int) -> str:
    done = total - waiting
    share = 100.0 if total == 0 else 100.0 * done / total
    return f"{done:,} of {total:,} message bodies indexed ({share:.1f}%), {waiting:,} waiting"


async def check(settings: Settings, state: ServerState | None) -> list[Finding]:
    try:
        store = open_store(settings, watch_changes=False)
        await store.start()
    except Exception as exc:
        return [Finding("index", SUBJECT, "warn", f"cannot open the store: {exc}", "see `mailcove serve`'s log")]
    try:
        waiting, total = await store.index_progress()
    finally:
        await store.close()
    detail = describe(waiting, total)
    if not waiting:
        return [Finding("index", SUBJECT, "ok", detail)]
    if state is None or not state.alive:
        return [Finding("index", SUBJECT, "warn", detail + "; the server is not running, nothing indexes them",
                        "start `mailcove serve` (SEARCH BODY/TEXT scans what is not indexed)")]
    return [Finding("index", SUBJECT, "ok", detail + "; the server is indexing them in the background")]
