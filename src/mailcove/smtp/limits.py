"""Counters shared by every SMTP session of the process: sending rates, quota look-ups (the
connection caps are net.limits', shared with the other protocols). All in memory and bounded;
every method runs on the event loop."""

from __future__ import annotations

from collections import OrderedDict, deque

from mailcove.core.clock import SYSTEM_CLOCK, Clock


class HourlyRate:
    """Events per key in a sliding hour (sending limits). Counts are kept in one-minute buckets,
    so a key costs at most 60 entries however much it sends; at most `max_keys` keys are kept
    (least recently used forgotten), so a flood of client addresses cannot grow memory."""

    WINDOW = 3600.0
    BUCKET = 60.0

    def __init__(self, limit: int, *, max_keys: int = 100_000, clock: Clock = SYSTEM_CLOCK) -> None:
        self.limit = limit
        self.max_keys = max_keys
        self._clock = clock
        self._keys: OrderedDict[str, deque[list[float]]] = OrderedDict()

    def _count(self, key: str, now: float) -> int:
        q = self._keys.get(key)
        if q is None:
            return 0
        while q and q[0][0] <= now - self.WINDOW:
            q.popleft()
        return int(sum(b[1] for b in q))

    def allows(self, key: str, n: int = 1) -> bool:
        """Would `n` more stay within the limit? 0 = unlimited."""
        if not self.limit:
            return True
        return self._count(key, self._clock.monotonic()) + n <= self.limit

    def add(self, key: str, n: int = 1) -> None:
        if not self.limit or n <= 0:
            return
        now = self._clock.monotonic()
        q = self._keys.get(key)
        if q is None:
            q = self._keys[key] = deque()
            while len(self._keys) > self.max_keys:
                self._keys.popitem(last=False)
        else:
            self._keys.move_to_end(key)
        if q and now - q[-1][0] < self.BUCKET:
            q[-1][1] += n
        else:
            q.append([now, float(n)])
