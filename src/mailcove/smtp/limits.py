"""Counters shared by every SMTP session of the process: connections, sending rates, quota
look-ups. All in memory and bounded; every method runs on the event loop."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable


class ConnectionCounter:
    """Connections in total and per client IP (421 4.7.0 above either limit)."""

    def __init__(self, total: int, per_ip: int) -> None:
        self.total_limit = total
        self.per_ip_limit = per_ip
        self.total = 0
        self.per_ip: dict[str, int] = {}

    def try_add(self, ip: str) -> bool:
        n = self.per_ip.get(ip, 0)
        if (self.total_limit and self.total >= self.total_limit) or (self.per_ip_limit and n >= self.per_ip_limit):
            return False
        self.total += 1
        self.per_ip[ip] = n + 1
        return True

    def remove(self, ip: str) -> None:
        self.total -= 1
        n = self.per_ip.get(ip, 0) - 1
        if n > 0:
            self.per_ip[ip] = n
        else:
            self.per_ip.pop(ip, None)


class HourlyRate:
    """Events per key in a sliding hour (sending limits). Counts are kept in one-minute buckets,
    so a key costs at most 60 entries however much it sends; at most `max_keys` keys are kept
    (least recently used forgotten), so a flood of client addresses cannot grow memory."""

    WINDOW = 3600.0
    BUCKET = 60.0

    def __init__(self, limit: int, *, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
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
        return self._count(key, self._clock()) + n <= self.limit

    def add(self, key: str, n: int = 1) -> None:
        if not self.limit or n <= 0:
            return
        now = self._clock()
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
