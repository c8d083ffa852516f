"""Time, injected: every policy that depends on time reads the `Clock` it was given.

Timeouts, limits, throttles, retries and leases take a clock (docs/architecture.md, "The
clock"). The server passes `SYSTEM_CLOCK`; a test passes a `FakeClock` and moves it with
`advance`, so "idle for ten minutes" or "a failed login is answered after 0.5 s" is checked in
microseconds, and exactly, instead of by sleeping.

A clock has two readings and three ways to wait:

    monotonic()   seconds for durations, deadlines and windows (never steps back)
    time()        wall-clock seconds since the epoch, for stamps others read (queue times,
                  Received dates)
    sleep(s)      wait s seconds
    call_later(s, callback) -> Timer       run callback in s seconds unless cancelled
    wait_for(awaitable, timeout)           like asyncio.wait_for, timed by this clock

and `wait_first(clock, futures, timeout)` is asyncio.wait(..., FIRST_COMPLETED) timed by one.

Code that waits for time must wait through these, never through asyncio.sleep or a
loop.call_later of its own: only then does advancing a FakeClock wake it. Waiting for I/O stays
asyncio's business (a FakeClock never makes bytes arrive); only the timeout around it is the
clock's.
"""

from __future__ import annotations

import asyncio
import heapq
import time as _time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

__all__ = ["SYSTEM_CLOCK", "Clock", "FakeClock", "SystemClock", "Timer", "wait_first"]

T = TypeVar("T")


class Timer(Protocol):
    """What call_later returns (asyncio.TimerHandle is one)."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def time(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...

    def call_later(self, delay: float, callback: Callable[[], object]) -> Timer: ...

    async def wait_for(self, aw: Awaitable[T], timeout: float | None) -> T: ...


class SystemClock:
    """The real clock: time.monotonic and time.time, and asyncio's own timers."""

    __slots__ = ()

    def monotonic(self) -> float:
        return _time.monotonic()

    def time(self) -> float:
        return _time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def call_later(self, delay: float, callback: Callable[[], object]) -> Timer:
        return asyncio.get_running_loop().call_later(delay, callback)

    async def wait_for(self, aw: Awaitable[T], timeout: float | None) -> T:
        return await asyncio.wait_for(aw, timeout)

    def __repr__(self) -> str:
        return "SYSTEM_CLOCK"


SYSTEM_CLOCK = SystemClock()


async def wait_first(clock: Clock, futures: set[asyncio.Future[object]], timeout: float | None,
                     ) -> set[asyncio.Future[object]]:
    """asyncio.wait(futures, timeout=timeout, return_when=FIRST_COMPLETED) with the timeout on
    `clock`: the futures that are done, none when the timeout came first. Nothing is cancelled."""
    if timeout is None:
        done, _ = await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
        return done
    expired: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def expire() -> None:
        if not expired.done():
            expired.set_result(None)

    timer = clock.call_later(timeout, expire)
    try:
        done, _ = await asyncio.wait({*futures, expired}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        timer.cancel()
        expired.cancel()
    done.discard(expired)
    return done


class _FakeTimer:
    __slots__ = ("_clock", "callback", "cancelled", "deadline", "delay", "seq")

    def __init__(self, clock: FakeClock, deadline: float, seq: int, delay: float,
                 callback: Callable[[], object]) -> None:
        self._clock = clock
        self.deadline = deadline
        self.seq = seq
        self.delay = delay  # as asked for: what FakeClock.waiting matches
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            self._clock._live -= 1

    def __lt__(self, other: _FakeTimer) -> bool:
        return (self.deadline, self.seq) < (other.deadline, other.seq)

    def __repr__(self) -> str:
        return f"<timer in {self.deadline - self._clock.monotonic():.3f}s of {self.delay:.3f}s>"


class FakeClock:
    """A clock that moves only when told to, for tests.

    Time stands still until `await clock.advance(seconds)`. Advancing fires the timers that fall
    due, in deadline order, each at its own instant (monotonic() reads its deadline while it
    fires), and lets the event loop run between them, so a task woken at t+1 that sleeps again
    for 1 s is woken again at t+2 within the same advance. Sleepers and wait_for timeouts are
    timers, so a session blocked on a read with a 60 s deadline is cut when the clock passes it.

    `waiting(delay)` waits, in real time, until some code is waiting on this clock for `delay`
    seconds: a test can then check that the server really waits, and how long, before it lets
    the time pass ("the failed login is answered after 0.5 s", not "at most 0.5 s").

    Everything runs on the one event loop; the clock is not thread-safe (timers are asyncio's
    business, and so is this)."""

    # Loop turns run after each timer fires: enough for a woken task to react (write a reply,
    # close a transport, wake the task that reads from it) before the next timer fires.
    SETTLE_TURNS = 20

    def __init__(self, monotonic: float = 1000.0, wall: float = 1_767_225_600.0) -> None:
        # The wall clock starts at 2026-01-01 00:00:00 UTC: a fixed date makes stamps repeatable.
        # time() is the start plus the time passed, so whole seconds passed give a wall time
        # exactly `wall + n` (what a test computes), whatever fraction `wall` has.
        self._start = self._now = float(monotonic)
        self._wall_start = float(wall)
        self._timers: list[_FakeTimer] = []
        self._live = 0
        self.made = 0  # timers made so far; `waiting(since=clock.made)` looks only at later ones

    # --- the readings ------------------------------------------------------------------------------

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return self._wall_start + (self._now - self._start)

    # --- waiting -------------------------------------------------------------------------------------

    def call_later(self, delay: float, callback: Callable[[], object]) -> _FakeTimer:
        delay = max(0.0, float(delay))
        timer = _FakeTimer(self, self._now + delay, self.made, delay, callback)
        self.made += 1
        if len(self._timers) > 64 and self._live < len(self._timers) // 2:
            # Cancelled timers (a read that came in time) would pile up: keep the live ones.
            self._timers = [t for t in self._timers if not t.cancelled]
            heapq.heapify(self._timers)
        heapq.heappush(self._timers, timer)
        self._live += 1
        return timer

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not fut.done():
                fut.set_result(None)

        timer = self.call_later(seconds, wake)
        try:
            await fut
        finally:
            timer.cancel()

    async def wait_for(self, aw: Awaitable[T], timeout: float | None) -> T:
        if timeout is None:
            return await aw
        task = asyncio.ensure_future(aw)
        if timeout <= 0 and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                raise TimeoutError from None
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            task.cancel()

        timer = self.call_later(timeout, expire)
        try:
            return await task
        except asyncio.CancelledError:
            if expired and task.cancelled():
                current = asyncio.current_task()
                if current is None or not current.cancelling():
                    raise TimeoutError from None
            raise
        finally:
            timer.cancel()

    # --- moving time -------------------------------------------------------------------------------

    async def advance(self, seconds: float) -> None:
        """Let `seconds` pass: fire every timer due by then, in order, each at its deadline."""
        if seconds < 0:
            raise ValueError("a clock does not go back")
        target = self._now + seconds
        await self.settle()  # what is ready now (bytes just sent, say) runs before time moves
        while True:
            timer = self._next_live()
            if timer is None or timer.deadline > target:
                break
            heapq.heappop(self._timers)
            timer.cancel()  # fired: no longer live
            self._now = max(self._now, timer.deadline)
            timer.callback()
            await self.settle()
        self._now = target
        await self.settle()

    async def settle(self) -> None:
        """Let the event loop run what is ready (woken sleepers, callbacks they scheduled), up to
        SETTLE_TURNS turns; fewer once nothing else is ready (asyncio's own loops show that, and
        an advance over an hour of one-second ticks then costs milliseconds, not a second)."""
        ready = getattr(asyncio.get_running_loop(), "_ready", None)  # None: not asyncio's loop
        for turn in range(self.SETTLE_TURNS):
            await asyncio.sleep(0)
            if turn >= 1 and ready is not None and not ready:
                return

    def pending(self) -> list[float]:
        """The delays (from now) of the live timers, soonest first."""
        return sorted(t.deadline - self._now for t in self._timers if not t.cancelled)

    async def waiting(self, delay: float | None, *, since: int = 0, within: float = 10.0) -> None:
        """Return once something waits on this clock for `delay` seconds (a sleep, a timer, a
        wait_for timeout asked for exactly that, still pending; None: for any time), among the
        timers made since `since` (a `made` read before the request that should wait: a periodic
        task's own timer of the same length does not count); wait at most `within` real seconds
        for it (the server may first be busy in a thread: a password check, the store).

        This is also how a test keeps pace with a server that works in threads: advancing the
        clock while the server has not yet started to wait would let time pass it by."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + within
        while not any(not t.cancelled and t.seq >= since and (delay is None or abs(t.delay - delay) < 1e-9)
                      for t in self._timers):
            if loop.time() > give_up:
                raise TimeoutError(f"nothing waits {delay}s on the clock after {within}s; pending: {self.pending()}")
            await asyncio.sleep(0.002)

    def _next_live(self) -> _FakeTimer | None:
        while self._timers and self._timers[0].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0] if self._timers else None

    def __repr__(self) -> str:
        return f"FakeClock(monotonic={self._now}, {self._live} timers)"
