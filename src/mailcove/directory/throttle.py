"""The failed-login throttle shared by SMTP AUTH, IMAP and POP3.

Failures are counted per client within a sliding window. Each failure is answered after a delay
that doubles with the count (so a client guessing passwords gets slower at once), and at
`max_failures` the client is denied outright until its oldest failure leaves the window. A success
does not clear the count: otherwise an attacker holding one valid account could reset it at will.

A login *reserves* its attempt (`begin`) before the password is checked: the reservation counts
as a failure until `release` drops it, so parallel logins from one client cannot all pass
the check before any failure is recorded (issue 13, finding 9: 40 of 100 parallel LOGINs were
verified). A login that finds the client's allowance taken by reservations still in flight
(not by failures) is told to wait (`Attempt.busy`) and try again, not refused: fifty users behind
one NAT, or imaptest's fifty clients, logging in at the same moment are checked `max_failures`
at a time, while a guesser's burst still gets no more than `max_failures` checks before its
failures refuse the rest. Failures are also counted per account name, across every client. Past
`account_free_failures` the account's logins wait before the check, the wait doubling up to
`max_delay`; they are never refused, so an attacker can slow a user down but not lock them out.

IPv6 clients are counted per /64, because one host typically owns a whole /64 and could otherwise
rotate through 2**64 addresses. The table is bounded, so a spoofed-address flood cannot exhaust
memory: past `max_tracked` clients the least recently seen are forgotten.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass

from mailcove.config.settings import AuthSettings
from mailcove.core.clients import client_key
from mailcove.core.clock import SYSTEM_CLOCK, Clock

__all__ = ["Attempt", "LoginThrottle", "ThrottleVerdict", "client_key"]


@dataclass(frozen=True, slots=True)
class ThrottleVerdict:
    allowed: bool  # False: refuse the login without checking the password
    delay: float  # seconds to wait before answering a failed login
    failures: int  # failures in the window
    retry_after: float  # when denied: seconds until the next attempt may be allowed


@dataclass(frozen=True, slots=True)
class Attempt:
    """A login in progress (LoginThrottle.begin); end it with `release` or `failed`."""

    allowed: bool  # False: refuse without checking the password (the client is over its limit)
    wait: float  # seconds to wait before checking the password (the account's recent failures)
    failures: int  # the client's failures in the window, this attempt not included
    retry_after: float  # when refused: seconds until the next attempt may be allowed
    ip_key: str | None = None
    account_key: str | None = None
    stamp: float = 0.0
    # Not allowed yet: the client's allowance is held by its own logins still being checked;
    # begin again once one of them has finished.
    busy: bool = False


class LoginThrottle:
    def __init__(
        self,
        max_failures: int = 10,
        window: float = 300.0,
        *,
        base_delay: float = 0.5,
        max_delay: float = 5.0,
        max_tracked: int = 100_000,
        account_free_failures: int = 5,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.max_failures = max_failures
        self.account_free_failures = account_free_failures
        self.window = window
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_tracked = max_tracked
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._in_flight: dict[str, int] = {}  # per client: reservations not yet released or failed
        self._accounts: OrderedDict[str, deque[float]] = OrderedDict()  # per login name
        # Sessions call this from the event loop, but a threaded caller (PAM, tests) must not
        # corrupt the table either; the critical sections are tiny.
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, auth: AuthSettings, **kwargs: object) -> LoginThrottle:
        kwargs.setdefault("account_free_failures", auth.failures_per_account_before_delay)
        return cls(auth.max_failures_per_ip, float(auth.failure_window_seconds), **kwargs)  # type: ignore[arg-type]

    def _recent(self, key: str, now: float, table: OrderedDict[str, deque[float]] | None = None) -> deque[float] | None:
        table = self._failures if table is None else table
        q = table.get(key)
        if q is None:
            return None
        while q and q[0] <= now - self.window:
            q.popleft()
        if not q:
            del table[key]
            return None
        return q

    def _add(self, table: OrderedDict[str, deque[float]], key: str, now: float, keep: int) -> None:
        q = self._recent(key, now, table)
        if q is None:
            q = table[key] = deque()
        q.append(now)
        while keep and len(q) > keep:
            q.popleft()
        table.move_to_end(key)
        while len(table) > self.max_tracked:
            table.popitem(last=False)

    def _account_wait(self, n: int) -> float:
        over = n - self.account_free_failures
        return 0.0 if over < 0 else min(self.base_delay * 2**over, self.max_delay)

    def begin(self, ip: str | None, account: str | None) -> Attempt:
        """Reserve a login attempt, atomically with the check: until `release` it counts as a
        failure of the client and of the account. Not allowed: nothing is reserved."""
        now = self._clock.monotonic()
        ip_key = client_key(ip) if ip is not None else None
        account_key = account.strip().lower()[:320] if account is not None else None
        with self._lock:
            n = 0
            if ip_key is not None:
                q = self._recent(ip_key, now)
                verdict = self._verdict(q, now)
                if not verdict.allowed:
                    in_flight = self._in_flight.get(ip_key, 0)
                    failures = max(0, verdict.failures - in_flight)
                    if in_flight and not (self.max_failures and failures >= self.max_failures):
                        return Attempt(False, 0.0, failures, 0.0, busy=True)
                    return Attempt(False, 0.0, verdict.failures, verdict.retry_after)
                n = verdict.failures
                self._add(self._failures, ip_key, now, self.max_failures)
                self._in_flight[ip_key] = self._in_flight.get(ip_key, 0) + 1
            wait = 0.0
            if account_key is not None:
                q = self._recent(account_key, now, self._accounts)
                wait = self._account_wait(len(q) if q else 0)
                self._add(self._accounts, account_key, now, self.account_free_failures + 32)
            return Attempt(True, wait, n, 0.0, ip_key, account_key, now)

    def release(self, attempt: Attempt) -> None:
        """The password was right, or was never checked (the directory was busy, the client
        left): drop the reservation, as a success is not a failure."""
        with self._lock:
            self._landed(attempt)
            for table, key in ((self._failures, attempt.ip_key), (self._accounts, attempt.account_key)):
                q = table.get(key) if key is not None else None
                if q is not None:
                    with contextlib.suppress(ValueError):  # already aged out or trimmed
                        q.remove(attempt.stamp)
                    if not q:
                        del table[key]  # type: ignore[arg-type]

    def failed(self, attempt: Attempt) -> ThrottleVerdict:
        """The reservation stays as a failure; the verdict's delay is how long to wait before
        answering it."""
        now = self._clock.monotonic()
        with self._lock:
            self._landed(attempt)
            q = self._recent(attempt.ip_key, now) if attempt.ip_key is not None else None
            return self._verdict(q, now)

    def _landed(self, attempt: Attempt) -> None:
        key = attempt.ip_key
        if key is None:
            return
        n = self._in_flight.get(key, 0) - 1
        if n > 0:
            self._in_flight[key] = n
        else:
            self._in_flight.pop(key, None)

    def _verdict(self, q: deque[float] | None, now: float) -> ThrottleVerdict:
        n = len(q) if q else 0
        if self.max_failures and n >= self.max_failures:
            assert q is not None
            return ThrottleVerdict(False, self.max_delay, n, max(0.0, q[0] + self.window - now))
        delay = 0.0 if n == 0 else min(self.base_delay * 2 ** (n - 1), self.max_delay)
        return ThrottleVerdict(True, delay, n, 0.0)

    def check(self, ip: str) -> ThrottleVerdict:
        now = self._clock.monotonic()
        with self._lock:
            return self._verdict(self._recent(client_key(ip), now), now)

    def record_failure(self, ip: str) -> ThrottleVerdict:
        """Count a failure; the verdict's delay is how long to wait before answering it."""
        now = self._clock.monotonic()
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

    def __len__(self) -> int:
        return len(self._failures)
