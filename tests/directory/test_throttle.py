from __future__ import annotations

from mailcove.config.settings import AuthSettings
from mailcove.core.clock import FakeClock
from mailcove.directory.throttle import LoginThrottle, client_key


async def test_delay_grows_then_deny_then_window_expires() -> None:
    clock = FakeClock(monotonic=0.0)
    t = LoginThrottle(4, 100, base_delay=0.5, max_delay=3.0, clock=clock)
    assert t.check("127.0.0.2").allowed and t.check("127.0.0.2").delay == 0
    delays = [t.record_failure("127.0.0.2").delay for _ in range(3)]
    assert delays == [0.5, 1.0, 2.0]
    v = t.record_failure("127.0.0.2")
    assert not v.allowed and v.failures == 4 and v.retry_after == 100
    assert not t.check("127.0.0.2").allowed
    assert t.check("127.0.0.3").allowed  # per client
    await clock.advance(50)
    assert t.check("127.0.0.2").retry_after == 50
    await clock.advance(50.5)
    v = t.check("127.0.0.2")
    assert v.allowed and v.failures == 0


async def test_sliding_window() -> None:
    clock = FakeClock(monotonic=0.0)
    t = LoginThrottle(3, 10, clock=clock)
    t.record_failure("10.0.0.1")
    await clock.advance(6)
    t.record_failure("10.0.0.1")
    await clock.advance(5)  # the first failure has left the window
    assert t.check("10.0.0.1").failures == 1


def test_ipv6_counted_per_64_and_mapped_ipv4() -> None:
    assert client_key("2001:db8::1") == client_key("2001:db8::ffff:1") == "2001:db8::/64"
    assert client_key("2001:db8:0:1::1") != client_key("2001:db8::1")
    assert client_key("::ffff:127.0.0.2") == "127.0.0.2"
    t = LoginThrottle(2, 60)
    t.record_failure("2001:db8::1")
    t.record_failure("2001:db8::2")
    assert not t.check("2001:db8::3").allowed


def test_bounded_memory() -> None:
    t = LoginThrottle(5, 60, max_tracked=100)
    for i in range(1000):
        t.record_failure(f"10.0.{i // 256}.{i % 256}")
    assert len(t) == 100


def test_from_settings() -> None:
    t = LoginThrottle.from_settings(AuthSettings(max_failures_per_ip=7, failure_window_seconds=30))
    assert t.max_failures == 7 and t.window == 30


def test_begin_reserves_so_parallel_attempts_cannot_pass_the_limit() -> None:
    """Issue 13, finding 9: the reservation is made in the same step as the check."""
    t = LoginThrottle(3, 100, clock=FakeClock(monotonic=0.0))
    attempts = [t.begin("10.0.0.9", "a@x") for _ in range(5)]
    assert [a.allowed for a in attempts] == [True, True, True, False, False]
    # A success releases its reservation; a failure keeps it.
    t.release(attempts[0])
    assert t.failed(attempts[1]).failures == 2
    assert t.begin("10.0.0.9", "a@x").allowed
    assert not t.begin("10.0.0.9", "a@x").allowed


async def test_account_failures_slow_but_never_refuse() -> None:
    clock = FakeClock(monotonic=0.0)
    t = LoginThrottle(1000, 100, base_delay=0.5, max_delay=5.0, account_free_failures=2, clock=clock)
    waits = []
    for i in range(8):
        a = t.begin(f"10.1.0.{i}", "Victim@X")
        assert a.allowed
        waits.append(a.wait)
        t.failed(a)
    assert waits == [0, 0, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    ok = t.begin("10.2.0.1", "victim@x")  # the owner, from elsewhere: slowed, not refused
    assert ok.allowed and ok.wait == 5.0
    t.release(ok)
    assert t.begin("10.2.0.2", "other@x").wait == 0
    await clock.advance(101)  # the failures leave the window
    assert t.begin("10.2.0.3", "victim@x").wait == 0


def test_an_accounts_logins_in_flight_do_not_slow_it_down_only_its_failures_do() -> None:
    """Thunderbird opens five connections at once; imaptest's clients share five users. Logins
    of one account in flight did count like failures, so the sixth waited, and under load the
    waiting ones made the next wait longer, up to max_delay each (a stalled stress run)."""
    clock = FakeClock(monotonic=0.0)
    t = LoginThrottle(100, 300, account_free_failures=5, clock=clock)
    in_flight = [t.begin(f"10.0.0.{i}", "a@hamap.local") for i in range(20)]
    assert all(a.allowed and a.wait == 0 for a in in_flight)
    for a in in_flight:
        t.release(a)
    # Failures still slow the account down, from any client, past account_free_failures.
    for i in range(6):
        t.failed(t.begin(f"10.0.1.{i}", "a@hamap.local"))
    assert t.begin("10.0.2.1", "a@hamap.local").wait > 0
    assert t.begin("10.0.2.2", "b@hamap.local").wait == 0
