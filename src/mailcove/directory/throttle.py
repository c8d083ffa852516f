"""The failed-login throttle shared by SMTP AUTH, IMAP and POP3.

Failures are counted per client within a sliding window. Each failure is answered after a delay
that doubles with the count (so a client guessing passwords gets slower at once), and at
`max_failures` the client is denied outright until its oldest failure leaves the window. A success
does not clear the count: otherwise an attacker holding one valid account could reset it at will.

IPv6 clients are counted per /64, because one host typically owns a whole /64 and could otherwise
rotate through 2**64 addresses. The table is bounded, so a spoofed-address flood cannot exhaust
memory: past `max_tracked` clients the least recently seen are forgotten.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from mailcove.config.settings import AuthSettings


@dataclass(frozen=True, slots=True)
class ThrottleVerdict:
    allowed: bool  # False: refuse the login without checking the password
    delay: float  # seconds to wait before answering a failed login
    failures: int  # failures in the window
    retry_after: float  # when denied: seconds until the next attempt may be allowed


def client_key(ip: str) -> str:
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0].strip("[]"))
    except ValueError:
        return ip  # not an IP (a unix socket peer, say): count it by its text
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.ip_network(f"{addr}/64", strict=False))
    return str(addr)


class LoginThrottle:
    def __init__(
        self,
        max_failures: int = 10,
        window: float = 300.0,
        *,
        base_delay: float = 0.5,
        max_delay: float = 5.0,
        max_tracked: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_tracked = max_tracked
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        # Sessions call this from the event loop, but a threaded caller (PAM, tests) must not
        # corrupt the table either; the critical sections are tiny.
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, auth: AuthSettings, **kwargs: object) -> LoginThrottle:
        return cls(auth.max_failures_per_ip, float(auth.failure_window_seconds), **kwargs)  # type: ignore[arg-type]

    def _recent(self, key: str, now: float) -> deque[float] | None:
        q = self._failures.get(key)
        if q is None:
            return None
        while q and q[0] <= now - self.window:
            q.popleft()
        if not q:
            del self._failures[key]
            return None
        return q

    def _verdict(self, q: deque[float] | None, now: float) -> ThrottleVerdict:
        n = len(q) if q else 0
        if self.max_failures and n >= self.max_failures:
            assert q is not None
            return ThrottleVerdict(False, self.max_delay, n, max(0.0, q[0] + self.window - now))
        delay = 0.0 if n == 0 else min(self.base_delay * 2 ** (n - 1), self.max_delay)
        return ThrottleVerdict(True, delay, n, 0.0)

    def check(self, ip: str) -> ThrottleVerdict:
        now = self._clock()
        with self._lock:
            return self._verdict(self._recent(client_key(ip), now), now)

    def record_failure(self, ip: str) -> ThrottleVerdict:
        """Count a failure; the verdict's delay is how long to wait before answering it."""
        now = self._clock()
        key = client_key(ip)
        with self._lock:
            q = self._recent(key, now)
            if q is None:
                q = self._failures[key] = deque()
            q.append(now)
            # The deque never needs more than max_failures entries to decide.
            while self.max_failures and len(q) > self.max_failures:
                q.popleft()
            self._failures.move_to_end(key)
            while len(self._failures) > self.max_tracked:
                self._failures.popitem(last=False)
            return self._verdict(q, now)

    def reset(self, ip: str) -> None:
        """Forget a client (an administrator's unblock)."""
        with self._lock:
            self._failures.pop(client_key(ip), None)

    def __len__(self) -> int:
        return len(self._failures)
