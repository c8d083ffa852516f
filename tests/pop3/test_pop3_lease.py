"""The POP3 maildrop lock is a store lease: it holds against another process (or node) on the
same store, and a lease left by a killed holder frees itself by expiry.

"Another node" here is a second store object on the server's data dir, in this test process:
the same thing a second `mailcove serve` does (tests/e2e/test_multinode.py runs two real ones)."""

from __future__ import annotations

import poplib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from mailcove.pop3.maildrop import MaildropLocks
from mailcove.store.sqlite import SqliteStore
from mailcove_testing import ServerProcess, run_async

from .helpers import login


def with_store(srv: ServerProcess, fn: Callable[[SqliteStore], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        store = SqliteStore(srv.data_dir, watch_changes=False)
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
