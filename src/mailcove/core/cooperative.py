"""Sharing the one event loop: long work on it yields within a time slice.

Every protocol of a `mailcove serve` process runs on one asyncio event loop (docs/architecture.md,
"Fairness"), so a command that computes for 300 ms without awaiting delays every other client of
the process by 300 ms: the SMTP banner, a NOOP, a POP3 STAT. The rule (issue 13, measured by
bench/fairness.py) is at most 250 ms of added latency at the 99th percentile.

Long loops therefore call `await pause()` between steps (a message, a mailbox name, a thread
node). It costs one clock read while the slice lasts; once the task has held the loop for
`SLICE` seconds it yields one turn, so every other ready task and every socket with data gets
served before it goes on. A short command never yields at all.

The slice is measured from the moment the running task last resumed after a pause, and that
moment is kept once for the process, not per task: a task that starts after another one paused
yields at the latest `SLICE` after its own start (never later), and nothing needs to be carried
per session or per command.

Pure algorithms (THREAD, SORT) are written as generators that `yield` at their safe points and
are driven by `drive`, which pauses between steps.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable, Generator
from time import perf_counter
from typing import Any, TypeVar

T = TypeVar("T")

# Items sorted in one step by sort_steps (a few ms of list.sort with a Python key), and items
# merged between two chances to yield.
SORT_RUN = 8192
MERGE_STEP = 1024

# Seconds a task may hold the event loop before a pause() yields. A few ms: a turn of the loop to
# serve the other ready tasks costs tens of microseconds, so the long command loses little.
SLICE = 0.004

_due = 0.0


async def pause() -> None:
    """Yield one turn of the event loop if the running task has held it for SLICE seconds."""
    global _due
    if perf_counter() >= _due:
        await asyncio.sleep(0)
        _due = perf_counter() + SLICE


async def drive(steps: Generator[None, None, T]) -> T:
    """Run a generator that yields at its safe points, pausing between steps; its return value."""
    global _due
    try:
        while True:
            next(steps)
            if perf_counter() >= _due:
                await asyncio.sleep(0)
                _due = perf_counter() + SLICE
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


def sort_steps(items: list[T], key: Callable[[T], Any], reverse: bool = False) -> Generator[None, None, list[T]]:
    """`sorted(items, key=key, reverse=reverse)` in steps, for a generator to `yield from`: runs of
    SORT_RUN items are sorted one at a time, then merged (heapq.merge), yielding every MERGE_STEP
    items. Stable, as `sorted` is: heapq.merge takes equal items from the earlier run first, in
    either direction. Measured: about twice the time of one `sorted` call (the merge is a
    Python-level loop), in steps of a few milliseconds however long the list; pasting two sorted
    runs together for Timsort to merge in C costs as much, with a last step linear in the list."""
    if len(items) <= SORT_RUN:
        return sorted(items, key=key, reverse=reverse)
    runs = []
    for i in range(0, len(items), SORT_RUN):
        runs.append(sorted(items[i : i + SORT_RUN], key=key, reverse=reverse))
        yield
    out: list[T] = []
    for n, item in enumerate(heapq.merge(*runs, key=key, reverse=reverse)):
        out.append(item)
        if not n % MERGE_STEP:
            yield
    return out
