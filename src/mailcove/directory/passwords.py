"""argon2id hashing and verification off the event loop, bounded, with a short success cache.

Cost (docs/design/directory.md has the measurements): one verify with the [auth] defaults takes tens
of milliseconds of CPU and `argon2_memory_kib` of RAM. So:
- verifies run in a ThreadPoolExecutor of `verify_workers` threads (argon2-cffi releases the GIL),
  which also caps the memory argon2 can hold at workers x memory_kib;
- at most `max_pending` verifies may wait for a thread; more raise DirectoryBusy at once, so a
  login storm costs a bounded queue, not unbounded memory or latency for everyone. The count is
  this process's (`LocalChecks`), or, with several worker processes, the server's
  (directory/shared_checks.py): a burst the kernel spreads over N workers still gets one queue;
- a successful verify is remembered for `verify_cache_seconds`, keyed by HMAC-SHA256 under a
  per-process random key of (user, password, stored hash). The key is useless without the
  process's secret, never contains the password, and a password change (a new stored hash)
  cannot match an old entry. Clients that log in every minute (IMAP clients polling, POP3
  fetchers) then cost one HMAC instead of one argon2 run.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from mailcove.config.settings import AuthSettings
from mailcove.core.clock import SYSTEM_CLOCK, Clock
from mailcove.directory.errors import BadPassword, DirectoryBusy

MAX_PASSWORD_BYTES = 4096  # longer input is refused before hashing: no CPU spent on junk


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    needs_rehash: bool = False
    cached: bool = False


def _encode(password: str) -> bytes:
    # surrogatepass: a client may send bytes that are not UTF-8; they must still hash consistently.
    return password.encode("utf-8", "surrogatepass")


def never_matches(password: str) -> bool:
    """True for a password no account can have (empty, or longer than MAX_PASSWORD_BYTES).
    Directories refuse it before looking the user up, so known and unknown names take the same
    (short) time: checking the length after the lookup told them apart (issue 13, finding 8)."""
    return not password or len(_encode(password)) > MAX_PASSWORD_BYTES


def check_password_acceptable(password: str) -> None:
    if not password:
        raise BadPassword("the password must not be empty")
    if len(_encode(password)) > MAX_PASSWORD_BYTES:
        raise BadPassword(f"the password is longer than {MAX_PASSWORD_BYTES} bytes")


class PendingChecks(Protocol):
    """Counts the checks waiting for or running in a verify thread, against a bound."""

    def try_add(self, limit: int) -> bool:
        """Count one more check, unless `limit` are counted already (then False)."""
        ...

    def remove(self) -> None: ...


class LocalChecks:
    """The checks of this process."""

    def __init__(self) -> None:
        self.count = 0

    def try_add(self, limit: int) -> bool:
        if self.count >= limit:
            return False
        self.count += 1
        return True

    def remove(self) -> None:
        self.count -= 1


class PasswordVerifier:
    def __init__(
        self,
        *,
        time_cost: int = 2,
        memory_kib: int = 16384,
        parallelism: int = 1,
        workers: int = 2,
        max_pending: int | None = None,
        cache_seconds: float = 300.0,
        cache_entries: int = 10_000,
        clock: Clock = SYSTEM_CLOCK,
        checks: PendingChecks | None = None,
    ) -> None:
        self.hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        self.workers = max(1, workers)
        self.max_pending = max_pending if max_pending is not None else self.workers * 16
        self.cache_seconds = cache_seconds
        self.cache_entries = cache_entries
        self._clock = clock
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="mailcove-argon2")
        self._pending = 0  # this process's checks (also counted in _checks)
        self._checks: PendingChecks = checks if checks is not None else LocalChecks()
        self._secret = secrets.token_bytes(32)
        self._cache: OrderedDict[bytes, float] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._dummy: str | None = None

    @classmethod
    def from_settings(cls, auth: AuthSettings, **kwargs: object) -> PasswordVerifier:
        return cls(
            time_cost=auth.argon2_time_cost,
            memory_kib=auth.argon2_memory_kib,
            parallelism=auth.argon2_parallelism,
            workers=auth.verify_workers,
            cache_seconds=float(auth.verify_cache_seconds),
            **kwargs,  # type: ignore[arg-type]
        )

    # --- the cache ---------------------------------------------------------------------------------

    def cache_key(self, user: str, password: str, stored_hash: str) -> bytes:
        msg = b"\0".join((user.encode("utf-8"), _encode(password), stored_hash.encode("ascii", "replace")))
        return hmac.new(self._secret, msg, hashlib.sha256).digest()

    def _cache_hit(self, key: bytes) -> bool:
        with self._cache_lock:
            expiry = self._cache.get(key)
            if expiry is None:
                return False
            if expiry <= self._clock.monotonic():
                del self._cache[key]
                return False
            return True

    def _cache_put(self, key: bytes) -> None:
        if self.cache_seconds <= 0:
            return
        with self._cache_lock:
            self._cache[key] = self._clock.monotonic() + self.cache_seconds
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_entries:
                self._cache.popitem(last=False)

    # --- work in the pool --------------------------------------------------------------------------

    async def _submit(self, fn: Callable[..., object], *args: object) -> object:
        if not self._checks.try_add(self.max_pending):
            raise DirectoryBusy(f"{self.max_pending} password checks already waiting; try again later")
        self._pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        finally:
            self._pending -= 1
            self._checks.remove()

    @property
    def pending(self) -> int:
        return self._pending

    def _verify_sync(self, stored_hash: str, password: str) -> VerifyResult:
        try:
            self.hasher.verify(stored_hash, _encode(password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return VerifyResult(False)
        return VerifyResult(True, self.hasher.check_needs_rehash(stored_hash))

    async def verify(self, user: str, password: str, stored_hash: str) -> VerifyResult:
        if not password or len(_encode(password)) > MAX_PASSWORD_BYTES:
            return VerifyResult(False)
        key = self.cache_key(user, password, stored_hash)
        if self._cache_hit(key):
            return VerifyResult(True, self.hasher.check_needs_rehash(stored_hash), cached=True)
        result = await self._submit(self._verify_sync, stored_hash, password)
        assert isinstance(result, VerifyResult)
        if result.ok:
            self._cache_put(key)
        return result

    async def verify_dummy(self, password: str) -> None:
        """Spend the time a real verify would, for unknown or disabled users, so response time
        does not tell an attacker which names exist."""
        if self._dummy is None:
            self._dummy = str(await self._submit(self.hasher.hash, os.urandom(16)))
        await self._submit(self._verify_sync, self._dummy, password or "x")

    async def hash(self, password: str) -> str:
        check_password_acceptable(password)
        return str(await self._submit(self.hasher.hash, _encode(password)))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
