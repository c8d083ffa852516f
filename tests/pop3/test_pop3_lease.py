"""The POP3 maildrop lock is a store lease: it holds against another process (or node) on the
same store, a lease left by a killed holder frees itself by expiry, and a session whose lease was
lost ends without touching the maildrop.

"Another node" here is a second store object on the server's store, in this test process: the
same thing a second `mailcove serve` does (tests/e2e/test_multinode.py runs two real ones)."""

from __future__ import annotations

import poplib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from mailcove.pop3.maildrop import MaildropLocks
from mailcove.store.api import MailStore
from mailcove_testing import ServerProcess, run_async

from .helpers import LAB, fill, login, message, settings_of, start_pop3


def with_store(srv: ServerProcess, fn: Callable[[MailStore], Awaitable[Any]]) -> Any:
    from mailcove.store.factory import open_store

    async def go() -> Any:
        store = open_store(settings_of(srv), watch_changes=False)
        await store.start()
        try:
            return await fn(store)
        finally:
            await store.close()

    return run_async(go())


def test_lock_holds_against_another_process(lab: ServerProcess, user: str) -> None:
    name = MaildropLocks.lease_name(user)
    assert with_store(lab, lambda s: s.acquire_lease(name, "other-node:1", 60))
    with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
        login(lab, user)
    with_store(lab, lambda s: s.release_lease(name, "other-node:1"))
    p = login(lab, user)
    # while the session lives, the other node cannot take the maildrop
    assert not with_store(lab, lambda s: s.acquire_lease(name, "other-node:2", 60))
    p.quit()
    # QUIT released it before answering
    assert with_store(lab, lambda s: s.acquire_lease(name, "other-node:2", 60))
    with_store(lab, lambda s: s.release_lease(name, "other-node:2"))


def test_lock_of_a_dead_holder_expires(lab: ServerProcess, user: str) -> None:
    name = MaildropLocks.lease_name(user)
    assert with_store(lab, lambda s: s.acquire_lease(name, "killed-node:1", 1.0))
    with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
        login(lab, user)
    time.sleep(1.5)
    p = login(lab, user)
    p.quit()


def _steal(srv: ServerProcess, name: str) -> None:
    """What a node that wrongly believed the lease expired would have done: take it over."""
    settings = settings_of(srv)
    if settings.store.backend == "postgres":
        import asyncpg

        async def go() -> None:
            conn = await asyncpg.connect(settings.store.dsn)
            try:
                await conn.execute("UPDATE leases SET owner = 'thief' WHERE name = $1", name)
            finally:
                await conn.close()

        run_async(go())
    else:
        import sqlite3

        with sqlite3.connect(srv.data_dir / "mail.db") as conn:
            conn.execute("UPDATE leases SET owner = 'thief' WHERE name = ?", (name,))


def test_session_that_lost_its_lock_ends_without_update(serve_factory: Callable[..., ServerProcess]) -> None:
    user = "a@hamap.local"
    srv = start_pop3(serve_factory, LAB + "[pop3]\nlock_ttl = 1.5\n")
    fill(srv, user, [message(1), message(2)])
    p = login(srv, user)
    p.dele(1)
    _steal(srv, MaildropLocks.lease_name(user))
    # The session's next renewal (every lock_ttl / 3) finds the lease gone and ends the session.
    deadline = time.monotonic() + 10
    with pytest.raises(poplib.error_proto, match=r"\[SYS/TEMP\] Maildrop lock lost"):
        while time.monotonic() < deadline:
            p.noop()
            time.sleep(0.1)
    assert len(srv.read_mailbox(user)) == 2, "the lost session must not expunge"
