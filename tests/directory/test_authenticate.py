from __future__ import annotations

import asyncio
import time

import pytest

from mailcove.config.settings import AuthSettings
from mailcove.core.clock import FakeClock
from mailcove.directory import DirectoryBusy, Principal, SqliteDirectory, UserExists
from mailcove.directory.passwords import PasswordVerifier

from .conftest import FAST


async def test_full_address(seeded: SqliteDirectory) -> None:
    p = await seeded.authenticate("a@hamap.local", "It1")
    assert p == Principal("a@hamap.local", "a@hamap.local", "a@hamap.local")


async def test_case_insensitive_local_part(seeded: SqliteDirectory) -> None:
    p = await seeded.authenticate("A@HAMAP.LOCAL", "It1")
    assert p is not None and p.user == "a@hamap.local"


async def test_domain_alias(seeded: SqliteDirectory) -> None:
    for login in ("a@rocky9-3", "a@mx1.hamap.local"):
        p = await seeded.authenticate(login, "It1")
        assert p is not None and p.user == "a@hamap.local"


async def test_bare_name_when_unambiguous(seeded: SqliteDirectory) -> None:
    p = await seeded.authenticate("b", "It1")
    assert p is not None and p.user == "b@hamap.local" and p.login == "b"


async def test_bare_name_ambiguous_is_refused(seeded: SqliteDirectory) -> None:
    await seeded.add_domain("other.example")
    await seeded.add_user("a@other.example", "It1")
    assert await seeded.authenticate("a", "It1") is None
    assert (await seeded.authenticate("a@other.example", "It1")).user == "a@other.example"  # type: ignore[union-attr]
    assert (await seeded.authenticate("b", "It1")) is not None


async def test_wrong_password_unknown_user_unknown_domain(seeded: SqliteDirectory) -> None:
    assert await seeded.authenticate("a@hamap.local", "it1") is None
    assert await seeded.authenticate("nobody@hamap.local", "It1") is None
    assert await seeded.authenticate("a@elsewhere.example", "It1") is None
    assert await seeded.authenticate("a@hamap.local", "") is None
    assert await seeded.authenticate("a@hamap.local", "x" * 10_000) is None


async def test_disabled_user_cannot_log_in(seeded: SqliteDirectory) -> None:
    assert await seeded.authenticate("a", "It1") is not None  # and now it is cached
    await seeded.set_disabled("a@rocky9-3", True)
    assert await seeded.authenticate("a", "It1") is None
    await seeded.set_disabled("a@hamap.local", False)
    assert await seeded.authenticate("a", "It1") is not None


async def test_user_exists_and_plus_refused(seeded: SqliteDirectory) -> None:
    with pytest.raises(UserExists, match=r"a@hamap\.local"):
        await seeded.add_user("A@rocky9-3", "x")
    with pytest.raises(Exception, match="extension"):
        await seeded.add_user("c+x@hamap.local", "x")


async def test_hash_is_argon2id_never_the_password(seeded: SqliteDirectory, db_path) -> None:  # type: ignore[no-untyped-def]
    # What is stored, read back through a second instance on the same database (either backend).
    rows = [u.password for u in (await seeded.snapshot()).users.values()]
    assert rows and all(r.startswith("$argon2id$") and "It1" not in r for r in rows)
    if db_path.exists():  # the SQLite file: the password appears nowhere in it
        assert b"It1" not in db_path.read_bytes()


async def test_cache_hit_and_password_change_invalidates(seeded: SqliteDirectory) -> None:
    v = seeded.verifier
    assert await seeded.authenticate("a", "It1") is not None
    record = (await seeded.snapshot()).users["a@hamap.local"]
    key = v.cache_key("a@hamap.local", "It1", record.password)
    assert v._cache_hit(key)
    # The key is an HMAC under a per-process secret: neither the password nor a plain hash of it.
    import hashlib

    assert b"It1" not in key and key != hashlib.sha256(b"It1").digest()
    assert all(b"It1" not in k for k in v._cache)
    other = PasswordVerifier(time_cost=1, memory_kib=1024)
    assert other.cache_key("a@hamap.local", "It1", record.password) != key
    other.close()

    await seeded.set_password("a@hamap.local", "New2")
    assert await seeded.authenticate("a", "It1") is None  # the old password no longer works, cached or not
    assert (await seeded.authenticate("a", "New2")) is not None
    new_record = (await seeded.snapshot()).users["a@hamap.local"]
    assert v.cache_key("a@hamap.local", "It1", new_record.password) != key


async def test_cache_expires(make_directory) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    verifier = PasswordVerifier(time_cost=1, memory_kib=1024, cache_seconds=10, clock=clock)
    async with make_directory(auth=FAST, verifier=verifier) as d:
        await d.add_domain("x.example")
        await d.add_user("a@x.example", "pw")
        stored = (await d.snapshot()).users["a@x.example"].password
        r1 = await verifier.verify("a@x.example", "pw", stored)
        r2 = await verifier.verify("a@x.example", "pw", stored)
        assert r1.ok and not r1.cached and r2.ok and r2.cached
        await clock.advance(11)
        r3 = await verifier.verify("a@x.example", "pw", stored)
        assert r3.ok and not r3.cached


async def test_rehash_when_parameters_change(make_directory) -> None:  # type: ignore[no-untyped-def]
    async with make_directory(auth=FAST) as d:
        await d.add_domain("x.example")
        await d.add_user("a@x.example", "pw")
        old = (await d.snapshot()).users["a@x.example"].password
    assert "m=1024,t=1" in old
    stronger = AuthSettings(argon2_time_cost=2, argon2_memory_kib=2048, argon2_parallelism=1)
    async with make_directory(auth=stronger) as d:
        assert await d.authenticate("a@x.example", "pw") is not None
        new = (await d.snapshot()).users["a@x.example"].password
        assert new != old and "m=2048,t=2" in new
        assert await d.authenticate("a@x.example", "pw") is not None


async def test_verify_runs_off_the_loop_and_is_bounded(make_directory) -> None:  # type: ignore[no-untyped-def]
    verifier = PasswordVerifier(time_cost=2, memory_kib=8192, workers=1, max_pending=2, cache_seconds=0)
    async with make_directory(auth=FAST, verifier=verifier) as d:
        await d.add_domain("x.example")
        await d.add_user("a@x.example", "pw")
        # The loop stays responsive while verifies run: a ticker keeps ticking.
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.001)
                ticks += 1

        t = asyncio.create_task(ticker())
        results = await asyncio.gather(
            *(d.authenticate("a@x.example", "pw") for _ in range(6)), return_exceptions=True
        )
        t.cancel()
        busy = [r for r in results if isinstance(r, DirectoryBusy)]
        ok = [r for r in results if isinstance(r, Principal)]
        assert len(ok) == 2 and len(busy) == 4  # fail fast past max_pending
        assert busy[0].temporary and busy[0].code == 454
        assert ticks > 3
        assert verifier.pending == 0


async def test_unknown_user_costs_a_verify(seeded: SqliteDirectory) -> None:
    """Response time must not reveal which names exist: an unknown user still runs argon2."""
    calls = 0
    orig = seeded.verifier._verify_sync

    def counting(*a):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        return orig(*a)

    seeded.verifier._verify_sync = counting  # type: ignore[method-assign]
    assert await seeded.authenticate("ghost@hamap.local", "It1") is None
    assert calls == 1


async def test_throttle_through_authenticate(make_directory) -> None:  # type: ignore[no-untyped-def]
    from mailcove.directory.throttle import LoginThrottle

    clock = FakeClock()
    throttle = LoginThrottle(3, 60, base_delay=0.5, max_delay=2.0, clock=clock)
    async with make_directory(auth=FAST, throttle=throttle, clock=clock) as d:
        await d.add_domain("x.example")
        await d.add_user("a@x.example", "pw")
        # Each failure is answered after its delay, on the directory's clock: 0.5 s, doubling.
        for delay in (0.5, 1.0, 2.0):
            login = asyncio.create_task(d.authenticate("a@x.example", "bad", client_ip="127.0.0.5"))
            await clock.waiting(delay)
            assert not login.done()
            await clock.advance(delay)
            assert await login is None
        # Denied now, even with the right password, and without running argon2 or waiting.
        t0 = time.perf_counter()
        assert await d.authenticate("a@x.example", "pw", client_ip="127.0.0.5") is None
        assert time.perf_counter() - t0 < 0.05
        # Other clients are unaffected.
        assert await d.authenticate("a@x.example", "pw", client_ip="127.0.0.6") is not None
