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
memory: past `max_tracked` clients the least recently seen are forgotten (in one process; the
shared table has a fixed number of slots and evicts the least recently seen of a full probe).

Where the entries live is the table's business (`ThrottleTable`): this process's memory
(`MemoryTable`), or, with several worker processes, a memory-mapped file in the data dir that all
of them share under a flock (directory/shared_throttle.py), so a guesser gets `max_failures` per
server, not per worker. The rules are this class's alone. A reservation is an entry marked
`reserved`; it counts as in flight only while it is in the window, so the reservations of a
worker that died mid-check stop counting when the window has passed.
"""

from __future__ import annotations

import bisect
import contextlib
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from mailcove.config.settings import AuthSettings
from mailcove.core.clients import client_key
from mailcove.core.clock import SYSTEM_CLOCK, Clock

__all__ = ["ACCOUNT", "ACCOUNT_KEEP_EXTRA", "CLIENT", "Attempt", "Entry", "LoginThrottle", "MemoryTable",
           "ThrottleTable", "ThrottleVerdict", "client_key"]

# What a table keeps per key, oldest first: (when, reserved). `reserved`: a login of this client
# still being checked (begin, not yet released or failed); it counts as a failure meanwhile.
Entry = tuple[float, bool]
CLIENT = 0  # keyed by client_key(ip)
ACCOUNT = 1  # keyed by the login name, lower-cased
# Entries kept per account past `account_free_failures`: more than max_delay's doubling needs.
ACCOUNT_KEEP_EXTRA = 32


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


class ThrottleTable(Protocol):
    """Where a LoginThrottle keeps its entries: this process's memory (MemoryTable), or a file
    the server's worker processes share (directory/shared_throttle.py). The throttle calls
    `get` and `put` only inside `locked()` (and under its own thread lock); a table bounds itself,
    forgetting keys rather than growing."""

    def locked(self) -> contextlib.AbstractContextManager[None]: ...

    def get(self, kind: int, key: str) -> list[Entry]:
        """The key's entries, oldest first ([] if none); the caller may change the list."""
        ...

    def put(self, kind: int, key: str, entries: list[Entry], horizon: float) -> None:
        """Keep `entries` (oldest first) for the key; [] forgets it. Entries at or before
        `horizon` have left the window: a table may reuse the room of keys that hold only those."""
        ...

    def __len__(self) -> int:
        """Clients tracked."""
        ...


class MemoryTable:
    """The entries in this process: per kind, at most `max_tracked` keys, the least recently
    written forgotten first."""

    def __init__(self, max_tracked: int = 100_000) -> None:
        self.max_tracked = max_tracked
        self._tables: tuple[OrderedDict[str, list[Entry]], ...] = (OrderedDict(), OrderedDict())

    def locked(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()  # the throttle's thread lock is all one process needs

    def get(self, kind: int, key: str) -> list[Entry]:
        return list(self._tables[kind].get(key, ()))

    def put(self, kind: int, key: str, entries: list[Entry], horizon: float) -> None:
        table = self._tables[kind]
        if not entries:
            table.pop(key, None)
            return
        table[key] = entries
        table.move_to_end(key)
        while len(table) > self.max_tracked:
            table.popitem(last=False)

    def __len__(self) -> int:
        return len(self._tables[CLIENT])


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
        table: ThrottleTable | None = None,
    ) -> None:
        self.max_failures = max_failures
        self.account_free_failures = account_free_failures
        self.window = window
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_tracked = max_tracked
        self._clock = clock
        self._table: ThrottleTable = table if table is not None else MemoryTable(max_tracked)
        # Sessions call this from the event loop, but a threaded caller (PAM, tests) must not
        # corrupt the table either (a flock does not exclude threads sharing the descriptor);
        # the critical sections are tiny.
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, auth: AuthSettings, **kwargs: object) -> LoginThrottle:
        kwargs.setdefault("account_free_failures", auth.failures_per_account_before_delay)
        return cls(auth.max_failures_per_ip, float(auth.failure_window_seconds), **kwargs)  # type: ignore[arg-type]

    @property
    def account_keep(self) -> int:
        return self.account_free_failures + ACCOUNT_KEEP_EXTRA

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock, self._table.locked():
            yield

    def _recent(self, kind: int, key: str, now: float) -> list[Entry]:
        """The key's entries still in the window; a key left with none is forgotten."""
        entries = self._table.get(kind, key)
        horizon = now - self.window
        live = [e for e in entries if e[0] > horizon]
        if entries and not live:
            self._table.put(kind, key, [], horizon)
        return live

    def _add(self, kind: int, key: str, q: list[Entry], entry: Entry, now: float, keep: int) -> None:
        # In time order: another worker may have written a later entry since `now` was read.
        bisect.insort(q, entry, key=lambda e: e[0])
        if keep and len(q) > keep:
            del q[: len(q) - keep]
        self._table.put(kind, key, q, now - self.window)

    def _account_wait(self, n: int) -> float:
        over = n - self.account_free_failures
        return 0.0 if over < 0 else min(self.base_delay * 2**over, self.max_delay)

    def begin(self, ip: str | None, account: str | None) -> Attempt:
        """Reserve a login attempt, atomically with the check: until `release` it counts as a
        failure of the client and of the account. Not allowed: nothing is reserved."""
        now = self._clock.monotonic()
        ip_key = client_key(ip) if ip is not None else None
        account_key = account.strip().lower()[:320] if account is not None else None
        with self._locked():
            n = 0
            if ip_key is not None:
                q = self._recent(CLIENT, ip_key, now)
                verdict = self._verdict(q, now)
                if not verdict.allowed:
                    in_flight = sum(1 for _, reserved in q if reserved)
                    failures = max(0, verdict.failures - in_flight)
                    if in_flight and not (self.max_failures and failures >= self.max_failures):
                        return Attempt(False, 0.0, failures, 0.0, busy=True)
                    return Attempt(False, 0.0, verdict.failures, verdict.retry_after)
                n = verdict.failures
                self._add(CLIENT, ip_key, q, (now, True), now, self.max_failures)
            wait = 0.0
            if account_key is not None:
                q = self._recent(ACCOUNT, account_key, now)
                # Only the account's failures slow it down, not its logins still in flight: a
                # client opening five connections at once (Thunderbird does) would otherwise
                # wait on itself, and under load the waiting logins, each counted, made the
                # next ones wait longer (imaptest's stress runs stalled with logins at 5 s).
                wait = self._account_wait(sum(1 for _, in_flight in q if not in_flight))
                self._add(ACCOUNT, account_key, q, (now, True), now, self.account_keep)
            return Attempt(True, wait, n, 0.0, ip_key, account_key, now)

    def release(self, attempt: Attempt) -> None:
        """The password was right, or was never checked (the directory was busy, the client
        left): drop the reservation, as a success is not a failure."""
        now = self._clock.monotonic()
        with self._locked():
            for kind, key in ((CLIENT, attempt.ip_key), (ACCOUNT, attempt.account_key)):
                if key is None:
                    continue
                q = self._recent(kind, key, now)
                i = _find(q, attempt.stamp, kind == CLIENT)
                if i is not None:  # else already aged out or trimmed
                    del q[i]
                    self._table.put(kind, key, q, now - self.window)

    def failed(self, attempt: Attempt) -> ThrottleVerdict:
        """The reservation stays as a failure; the verdict's delay is how long to wait before
        answering it."""
        now = self._clock.monotonic()
        with self._locked():
            if attempt.account_key is not None:
                q = self._recent(ACCOUNT, attempt.account_key, now)
                i = _find(q, attempt.stamp, True)
                if i is not None:  # the account's reservation becomes one of its failures
                    q[i] = (attempt.stamp, False)
                    self._table.put(ACCOUNT, attempt.account_key, q, now - self.window)
            if attempt.ip_key is None:
                return self._verdict([], now)
            q = self._recent(CLIENT, attempt.ip_key, now)
            i = _find(q, attempt.stamp, True)
            if i is not None:
                q[i] = (attempt.stamp, False)
                self._table.put(CLIENT, attempt.ip_key, q, now - self.window)
            return self._verdict(q, now)

    def _verdict(self, q: list[Entry], now: float) -> ThrottleVerdict:
        n = len(q)
        if self.max_failures and n >= self.max_failures:
            return ThrottleVerdict(False, self.max_delay, n, max(0.0, q[0][0] + self.window - now))
        delay = 0.0 if n == 0 else min(self.base_delay * 2 ** (n - 1), self.max_delay)
        return ThrottleVerdict(True, delay, n, 0.0)

    def check(self, ip: str) -> ThrottleVerdict:
        now = self._clock.monotonic()
        with self._locked():
            return self._verdict(self._recent(CLIENT, client_key(ip), now), now)

    def record_failure(self, ip: str) -> ThrottleVerdict:
        """Count a failure; the verdict's delay is how long to wait before answering it."""
        now = self._clock.monotonic()
        key = client_key(ip)
        with self._locked():
            q = self._recent(CLIENT, key, now)
            # The list never needs more than max_failures entries to decide.
            self._add(CLIENT, key, q, (now, False), now, self.max_failures)
            return self._verdict(q, now)

    def __len__(self) -> int:
        with self._locked():
            return len(self._table)


def _find(q: list[Entry], stamp: float, reserved: bool) -> int | None:
    """Where the attempt stamped `stamp` is: a client's entry still reserved, or an account's."""
    for i, (when, held) in enumerate(q):
        if when == stamp and (held or not reserved):
            return i
    return None
