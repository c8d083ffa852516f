"""core/cooperative.py: long work on the event loop yields within a time slice, and the stepped
sort gives exactly what `sorted` gives."""

from __future__ import annotations

import asyncio
import random
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from mailcove.core import cooperative


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 20), max_size=3 * cooperative.SORT_RUN + 5), st.booleans())
def test_sort_steps_is_sorted_and_stable(keys: list[int], reverse: bool) -> None:
    items = list(enumerate(keys))  # equal keys keep their order: the index tells
    got = asyncio.run(cooperative.drive(cooperative.sort_steps(items, key=lambda it: it[1], reverse=reverse)))
    assert got == sorted(items, key=lambda it: it[1], reverse=reverse)


def test_a_long_sort_is_stable_in_both_directions() -> None:
    rnd = random.Random(5)
    items = [(rnd.randrange(100), i) for i in range(5 * cooperative.SORT_RUN + 17)]
    for reverse in (False, True):
        got = asyncio.run(cooperative.drive(cooperative.sort_steps(items, key=lambda it: it[0], reverse=reverse)))
        assert got == sorted(items, key=lambda it: it[0], reverse=reverse)


def test_a_driven_computation_lets_other_tasks_run() -> None:
    """While one task computes for ~0.3 s in steps, a ticker task gets turns every few ms."""

    def busy() -> object:
        total = 0
        end = time.perf_counter() + 0.3
        while time.perf_counter() < end:
            total += sum(range(200))
            yield
        return total

    async def go() -> tuple[float, int]:
        gaps: list[float] = []
        stop = False

        async def ticker() -> None:
            last = time.perf_counter()
            while not stop:
                await asyncio.sleep(0)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        t = asyncio.ensure_future(ticker())
        await asyncio.sleep(0)
        result = await cooperative.drive(busy())
        stop = True
        await t
        return max(gaps), int(result)  # type: ignore[call-overload]

    worst, result = asyncio.run(go())
    assert result > 0
    assert worst < 0.1  # the slice is 4 ms; a generous bound for a loaded machine


def test_pause_costs_nothing_while_the_slice_lasts() -> None:
    async def go() -> int:
        turns = 0

        async def other() -> None:
            nonlocal turns
            while True:
                await asyncio.sleep(0)
                turns += 1

        t = asyncio.ensure_future(other())
        await asyncio.sleep(0)
        turns = 0
        cooperative._due = time.perf_counter() + 10  # a fresh slice that cannot run out here
        for _ in range(1000):
            await cooperative.pause()
        t.cancel()
        return turns

    assert asyncio.run(go()) == 0
