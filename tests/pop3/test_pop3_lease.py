"""The POP3 maildrop lock is a store lease: it holds against another process (or node) on the
same store, a lease left by a killed holder frees itself by expiry, and a session whose lease was
lost ends without touching the maildrop.

"Another node" here is a second store object on the server's store, in this test process: the
same thing a second `mailcove serve` does (tests/e2e/test_multinode.py runs two real ones)."""

from __future__ import annotations

import poplib
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from inprocess import serve_in_process
from mailcove.pop3.maildrop import MaildropLocks
from mailcove.store.api import MailStore
from mailcove_testing import ServerProcess, run_async

from .helpers import LAB, login, message, settings_of


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


async def test_session_that_lost_its_lock_ends_without_update(tmp_path) -> None:
    """In process, on a FakeClock: the session renews its lease every lock_ttl / 3 while it lives,
    and the first renewal that finds the lease taken ends the session without UPDATE."""
    user = "a@hamap.local"
    async with serve_in_process(tmp_path, LAB + "[pop3]\nlock_ttl = 60\n") as lab:
        for n in (1, 2):
            await lab.deliver(user, message(n))
        p = await lab.pop3()
        assert (await p.login(user)).startswith(b"+OK")
        assert (await p.cmd(b"DELE 1")).startswith(b"+OK")
        await lab.clock.waiting(20)  # the renewer sleeps for lock_ttl / 3
        made = lab.clock.made
        await lab.clock.advance(20)  # a renewal: the lease is still the session's
        await lab.clock.waiting(20, since=made)  # renewed (in the store's thread): the next in 20 s
        assert (await p.cmd(b"NOOP")).startswith(b"+OK")
        with sqlite3.connect(lab.settings.data_dir / "mail.db") as conn:
            conn.execute("UPDATE leases SET owner = 'thief' WHERE name = ?", (MaildropLocks.lease_name(user),))
        await lab.clock.advance(19.9)
        assert (await p.cmd(b"NOOP")).startswith(b"+OK")  # not renewed since: not yet noticed
        await lab.clock.advance(0.1)
        assert (await p.line()).startswith(b"-ERR [SYS/TEMP] Maildrop lock lost")
        await p.task
        assert len(await lab.inbox(user)) == 2, "the lost session must not expunge"
