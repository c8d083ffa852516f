"""core/clock.py: the FakeClock wakes what waits on it when it is advanced, in deadline order and
each at its own instant, and its wait_for behaves as asyncio.wait_for does; the SystemClock is
asyncio's own timing."""

from __future__ import annotations

import asyncio

import pytest

from mailcove.core.clock import SYSTEM_CLOCK, Clock, FakeClock


async def test_time_stands_still_until_advanced() -> None:
    clock = FakeClock(monotonic=50.0, wall=1_000_000.0)
    assert (clock.monotonic(), clock.time()) == (50.0, 1_000_000.0)
    await asyncio.sleep(0.01)
    assert clock.monotonic() == 50.0
    await clock.advance(2.5)
    assert (clock.monotonic(), clock.time()) == (52.5, 1_000_002.5)
    with pytest.raises(ValueError):
        await clock.advance(-1)


async def test_sleepers_wake_in_order_each_at_its_deadline() -> None:
    clock = FakeClock()
    t0 = clock.monotonic()
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.monotonic() - t0))

    tasks = [asyncio.create_task(sleeper(n, s)) for n, s in (("c", 3), ("a", 1), ("b", 2))]
    await clock.settle()
    assert clock.pending() == [1, 2, 3]
    await clock.advance(1.5)
    assert woke == [("a", 1)]
    await clock.advance(10)
    assert woke == [("a", 1), ("b", 2), ("c", 3)]
    assert clock.monotonic() - t0 == 11.5
    await asyncio.gather(*tasks)
    assert clock.pending() == []


async def test_a_periodic_task_runs_once_per_period_within_one_advance() -> None:
    clock = FakeClock()
    ticks: list[float] = []

    async def every_second() -> None:
        while True:
            await clock.sleep(1)
            ticks.append(clock.monotonic())

    task = asyncio.create_task(every_second())
    await clock.settle()
    start = clock.monotonic()
    await clock.advance(5)
    assert [t - start for t in ticks] == [1, 2, 3, 4, 5]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert clock.pending() == []  # a cancelled sleep leaves no timer


async def test_call_later_and_cancel() -> None:
    clock = FakeClock()
    fired: list[float] = []
    clock.call_later(2, lambda: fired.append(clock.monotonic()))
    gone = clock.call_later(1, lambda: fired.append(-1))
    gone.cancel()
    await clock.advance(1.999)
    assert fired == []
    await clock.advance(0.001)
    assert fired == [clock.monotonic()]


async def test_wait_for_times_out_on_the_clock() -> None:
    clock = FakeClock()
    never = asyncio.Event()
    waiter = asyncio.create_task(clock.wait_for(never.wait(), 30))
    await clock.settle()
    await clock.advance(29.9)
    assert not waiter.done()
    await clock.advance(0.1)
    with pytest.raises(TimeoutError):
        await waiter


async def test_wait_for_returns_in_time_and_leaves_no_timer() -> None:
    clock = FakeClock()
    ready = asyncio.Event()

    async def value() -> int:
        await ready.wait()
        return 7

    waiter = asyncio.create_task(clock.wait_for(value(), 30))
    await clock.settle()
    ready.set()
    assert await waiter == 7
    assert clock.pending() == []
    assert await clock.wait_for(value(), None) == 7
    with pytest.raises(TimeoutError):  # as asyncio.wait_for: a coroutine not yet run is not done
        await clock.wait_for(value(), 0)


async def test_cancelling_the_waiter_is_not_a_timeout() -> None:
    clock = FakeClock()
    inner_cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            inner_cancelled.set()

    waiter = asyncio.create_task(clock.wait_for(forever(), 30))
    await clock.settle()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert inner_cancelled.is_set()
    assert clock.pending() == []


async def test_waiting_sees_what_the_code_waits_for() -> None:
    clock = FakeClock()

    async def slow_then_sleep() -> None:
        await asyncio.sleep(0.02)  # busy elsewhere first, as a password check in a thread is
        await clock.sleep(0.5)

    task = asyncio.create_task(slow_then_sleep())
    await clock.waiting(0.5)
    assert not task.done()
    await clock.advance(0.5)
    await task
    with pytest.raises(TimeoutError, match="nothing waits"):
        await clock.waiting(7, within=0.05)


async def test_many_cancelled_timers_do_not_pile_up() -> None:
    clock = FakeClock()
    for _ in range(1000):
        clock.call_later(60, lambda: None).cancel()
    assert len(clock._timers) < 100
    assert clock.pending() == []


async def test_the_system_clock_is_asyncio_time() -> None:
    clock: Clock = SYSTEM_CLOCK
    loop = asyncio.get_running_loop()
    assert abs(clock.monotonic() - loop.time()) < 0.5
    fired = asyncio.Event()
    clock.call_later(0.001, fired.set)
    await clock.wait_for(fired.wait(), 5)
    await clock.sleep(0)
    with pytest.raises(TimeoutError):
        await clock.wait_for(asyncio.Event().wait(), 0.001)


def test_both_clocks_are_clocks() -> None:
    def takes(clock: Clock) -> float:
        return clock.monotonic()

    assert takes(FakeClock(monotonic=3.0)) == 3.0
    assert takes(SYSTEM_CLOCK) > 0


async def test_whole_seconds_give_exact_wall_times() -> None:
    """A test compares stamps the code made from time() with its own sums: they must be equal,
    not nearly so, whatever fraction the start has."""
    created = 1_767_225_600.123456
    clock = FakeClock(wall=created)
    for _ in range(7):
        await clock.advance(300)
    assert clock.time() == created + 2100


async def test_wait_first_is_asyncio_wait_timed_by_the_clock() -> None:
    from mailcove.core.clock import wait_first

    clock = FakeClock()
    a, b = asyncio.Event(), asyncio.Event()
    fa, fb = asyncio.ensure_future(a.wait()), asyncio.ensure_future(b.wait())
    waiter = asyncio.create_task(wait_first(clock, {fa, fb}, 10))
    await clock.settle()
    b.set()
    assert await waiter == {fb}
    waiter = asyncio.create_task(wait_first(clock, {fa}, 10))
    await clock.waiting(10)
    await clock.advance(10)
    assert await waiter == set() and not fa.done()  # the timeout came first; fa is left as it was
    a.set()
    assert await wait_first(clock, {fa}, None) == {fa}
    assert clock.pending() == []
    never = asyncio.ensure_future(asyncio.Event().wait())
    assert await wait_first(SYSTEM_CLOCK, {never}, 0.001) == set()
    never.cancel()


async def test_waiting_since_ignores_a_periodic_timer_of_the_same_length() -> None:
    clock = FakeClock()

    async def tick() -> None:
        while True:
            await clock.sleep(1)

    ticker = asyncio.create_task(tick())
    await clock.settle()
    made = clock.made
    with pytest.raises(TimeoutError):
        await clock.waiting(1, since=made, within=0.05)  # only the ticker's own sleep so far
    sleeper = asyncio.create_task(clock.sleep(1))
    await clock.waiting(1, since=made)
    await clock.advance(1)
    await sleeper
    ticker.cancel()
    await asyncio.gather(ticker, return_exceptions=True)
