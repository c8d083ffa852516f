"""directory/shared_throttle.py and directory/shared_checks.py: the login throttle's entries and
the bound on password checks waiting, shared by a server's worker processes through files in the
data dir. Two workers are two views of one file, in one process, on one FakeClock."""

from __future__ import annotations

import pytest

from mailcove.config.settings import AuthSettings
from mailcove.core.clock import FakeClock
from mailcove.directory import shared_throttle as st
from mailcove.directory.shared_checks import SharedChecks
from mailcove.directory.shared_throttle import SharedTable, shared_throttle
from mailcove.directory.throttle import CLIENT, LoginThrottle


def _two(tmp_path, clock, max_failures=3, **kw):  # type: ignore[no-untyped-def]
    auth = AuthSettings(max_failures_per_ip=max_failures, failure_window_seconds=100, **kw)
    return shared_throttle(auth, tmp_path, clock=clock), shared_throttle(auth, tmp_path, clock=clock)


def test_failures_in_one_worker_refuse_logins_in_the_other(tmp_path):
    clock = FakeClock(monotonic=0.0)
    w0, w1 = _two(tmp_path, clock)
    w0.record_failure("192.0.2.1")
    assert w1.failed(w1.begin("192.0.2.1", "a@x")).failures == 2
    # IPv6 per /64, whichever worker sees which address.
    w0.record_failure("2001:db8::1")
    assert w1.check("2001:db8::2").failures == 1
    a = w0.begin("192.0.2.1", "a@x")
    assert a.allowed and a.failures == 2
    w0.failed(a)
    refused = w1.begin("192.0.2.1", "b@x")
    assert not refused.allowed and not refused.busy and refused.retry_after == 100
    assert w1.check("192.0.2.9").allowed  # per client


async def test_reservations_span_the_workers(tmp_path):
    clock = FakeClock(monotonic=0.0)
    w0, w1 = _two(tmp_path, clock)
    held = [w0.begin("192.0.2.5", "a@x"), w1.begin("192.0.2.5", "a@x"), w0.begin("192.0.2.5", "a@x")]
    assert all(a.allowed for a in held)
    # The allowance is held by checks in flight in both workers: wait, do not refuse.
    assert w1.begin("192.0.2.5", "a@x").busy
    w0.release(held[0])  # a success in worker 0 frees a turn for worker 1
    again = w1.begin("192.0.2.5", "a@x")
    assert again.allowed
    for a in (held[1], held[2], again):
        (w0 if a is held[2] else w1).failed(a)
    late = w0.begin("192.0.2.5", "a@x")
    assert not late.allowed and not late.busy  # three failures now: refused
    # The account's failures are the server's too.
    await clock.advance(101)
    assert w0.begin("192.0.2.6", "a@x").wait == 0


async def test_a_dead_workers_reservations_expire_with_the_window(tmp_path):
    clock = FakeClock(monotonic=0.0)
    w0, w1 = _two(tmp_path, clock)
    for _ in range(3):
        assert w1.begin("192.0.2.7", None).allowed
    w1._table.close()  # type: ignore[attr-defined]  # worker 1 died mid-check, never landing them
    assert w0.begin("192.0.2.7", None).busy  # still in flight as far as anyone knows
    await clock.advance(99)
    assert w0.begin("192.0.2.7", None).busy
    await clock.advance(2)
    fresh = w0.begin("192.0.2.7", None)
    assert fresh.allowed and fresh.failures == 0


async def test_full_table_evicts_the_least_recently_seen_and_reuses_expired_slots(tmp_path):
    clock = FakeClock(monotonic=0.0)
    table = SharedTable(tmp_path, 16, slots=st.PROBES)  # one probe sequence: the whole table
    t = LoginThrottle(3, 100, clock=clock, table=table)
    for i in range(st.PROBES):
        t.record_failure(f"10.0.0.{i}")
        await clock.advance(1)
    assert len(t) == st.PROBES
    t.record_failure("10.0.1.0")  # full: the oldest (10.0.0.0, at t=0) makes room
    assert t.check("10.0.0.0").failures == 0
    assert t.check("10.0.0.1").failures == 1 and t.check("10.0.1.0").failures == 1
    assert len(t) == st.PROBES
    await clock.advance(100 - st.PROBES + 2)  # 10.0.0.1 and 10.0.0.2 (t=1, 2) have left the window
    t.record_failure("10.0.1.1")
    t.record_failure("10.0.1.2")
    # Their slots were taken, not those of clients still in the window.
    assert all(t.check(f"10.0.0.{i}").failures == 1 for i in range(3, st.PROBES))
    assert t.check("10.0.1.1").failures == 1 and t.check("10.0.1.2").failures == 1


def test_a_flood_of_addresses_grows_nothing(tmp_path):
    t = shared_throttle(AuthSettings(max_failures_per_ip=5), tmp_path)
    path = tmp_path / st.FILE_NAME
    size = path.stat().st_size
    for i in range(3000):
        t.record_failure(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
    assert path.stat().st_size == size and len(t) == 3000
    # A small table shows the bound: more clients than slots, never more tracked than slots.
    (tmp_path / "small").mkdir()
    small = LoginThrottle(5, 60, table=SharedTable(tmp_path / "small", 16, slots=64))
    for i in range(1000):
        small.record_failure(f"10.1.{i // 256}.{i % 256}")
    assert len(small) == 64
    assert small.check("10.1.3.231").failures == 1  # the newest is kept


def test_a_slot_holds_max_failures_entries_when_that_is_more_than_an_accounts(tmp_path):
    clock = FakeClock(monotonic=0.0)
    auth = AuthSettings(max_failures_per_ip=40, failures_per_account_before_delay=5)
    t = shared_throttle(auth, tmp_path, clock=clock)
    for _ in range(45):
        t.record_failure("192.0.2.40")
    v = t.check("192.0.2.40")
    assert v.failures == 40 and not v.allowed


def test_the_table_starts_empty_after_a_reboot_and_survives_a_restart(tmp_path, monkeypatch):
    clock = FakeClock(monotonic=0.0)
    first, _ = _two(tmp_path, clock)
    first.record_failure("192.0.2.3")
    again, _ = _two(tmp_path, clock)  # a restarted server, same boot: the count is kept
    assert again.check("192.0.2.3").failures == 1
    monkeypatch.setattr(st, "_boot_id", lambda: b"another boot")
    rebooted, _ = _two(tmp_path, clock)
    assert rebooted.check("192.0.2.3").failures == 0


def test_one_slot_per_key_even_when_a_freed_slot_precedes_it(tmp_path):
    table = SharedTable(tmp_path, 16, slots=st.PROBES)
    for i in range(3):
        table.put(CLIENT, f"k{i}", [(float(i), False)], -1.0)
    table.put(CLIENT, "k0", [], -1.0)  # k0 forgotten: its slot is FREED
    table.put(CLIENT, "k2", [(2.0, False), (3.0, True)], -1.0)
    assert table.get(CLIENT, "k2") == [(2.0, False), (3.0, True)]
    table.put(CLIENT, "k2", [], -1.0)
    assert table.get(CLIENT, "k2") == [] and len(table) == 1


def test_checks_waiting_are_counted_over_the_workers(tmp_path):
    w0, w1 = SharedChecks(tmp_path, 0, 2), SharedChecks(tmp_path, 1, 2)
    assert w0.try_add(3) and w1.try_add(3) and w1.try_add(3)
    assert not w0.try_add(3) and not w1.try_add(3)
    w1.remove()
    assert w0.try_add(3)
    assert w0.total() == 3
    w1.close()  # worker 1 died with a check in flight; its successor starts with a clean region
    w1 = SharedChecks(tmp_path, 1, 2)
    assert w0.total() == 2 and w1.try_add(3)
    with pytest.raises(ValueError):
        SharedChecks(tmp_path, 2, 2)
    assert (tmp_path / "password-checks.map").stat().st_mode & 0o777 == 0o600
