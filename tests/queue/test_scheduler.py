"""The queue runner's schedule with an injected clock, against a real store and directory: the
backoff series, the delay warning once after 4 hours, the bounce after 5 days, NOTIFY=NEVER and
the null sender (never a DSN). The next hop is a closed loopback port (a [transport] entry), so
every attempt is a real connection refused."""

from __future__ import annotations

import pytest
from outbound_testing import free_tcp_port, inbox

from mailcove.config.settings import QueueSettings
from mailcove.core.clock import FakeClock
from mailcove.queue import QueueRunner, backoff
from mailcove.store.api import OutboundEnvelope, OutboundRecipient

MSG = b"From: a@a.test\r\nTo: x@dead.test\r\nSubject: s\r\n\r\nbody\r\n"


def test_backoff_doubles_and_is_capped() -> None:
    q = QueueSettings()
    assert [backoff(n, q) for n in range(1, 7)] == [300, 600, 1200, 2400, 3600, 3600]


async def test_retry_schedule_delay_warning_and_give_up(env) -> None:  # type: ignore[no-untyped-def]
    settings, store, directory = env
    res = await store.submit(MSG, [], OutboundEnvelope("a@a.test", (OutboundRecipient("x@dead.test"),), envid="E1"))
    created = (await store.queue_get(res.queue_id)).created
    clock = FakeClock(wall=created)
    runner = QueueRunner(settings, store, directory, clock=clock)
    start = clock.monotonic()

    async def step(at: float) -> int:  # at `at` seconds after the message was queued
        await clock.advance(at - (clock.monotonic() - start))
        n = await runner.run_once()
        await runner.wait_idle()
        return n

    assert await step(0) == 1
    r = (await store.queue_get(res.queue_id)).recipients[0]
    assert (r.status, r.attempts, r.next_attempt) == ("queued", 1, created + 300)
    assert "Connection refused" in (r.last_error or "") or "connect" in (r.last_error or "")
    assert await step(299) == 0  # not due yet
    assert await step(300) == 1
    assert (await store.queue_get(res.queue_id)).recipients[0].next_attempt == created + 300 + 600
    assert await inbox(store) == []  # a temporary failure is no DSN
    # after 4 hours: one delay warning (RFC 3464 action=delayed), and only one
    assert await step(4 * 3600 + 1) == 1
    assert await step(4 * 3600 + 3602) == 1
    warnings = await inbox(store)
    assert len(warnings) == 1
    assert b"Action: delayed" in warnings[0] and b"Will-Retry-Until:" in warnings[0]
    assert b"Original-Envelope-Id: E1" in warnings[0] and b"Return-Path: <>" in warnings[0]
    # after 5 days: failed, bounced, gone from the queue
    assert await step(120 * 3600 + 1) == 1
    msgs = await inbox(store)
    assert len(msgs) == 2 and b"Action: failed" in msgs[1] and b"gave up after 120 hours" in msgs[1]
    assert b"Status: 4.4.7" in msgs[1]
    assert await store.queue_list() == []


@pytest.mark.parametrize(("sender", "notify"), [("", ()), ("a@a.test", ("NEVER",)), ("a@a.test", ("SUCCESS",))])
async def test_no_dsn_when_not_wanted(env, sender: str, notify: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    settings, store, directory = env
    res = await store.submit(MSG, [], OutboundEnvelope(sender, (OutboundRecipient("x@dead.test", notify=notify),)))
    created = (await store.queue_get(res.queue_id)).created
    clock = FakeClock(wall=created + 121 * 3600)
    runner = QueueRunner(settings, store, directory, clock=clock)
    assert await runner.run_once() == 1
    await runner.wait_idle()
    assert await store.queue_list() == []
    assert await inbox(store) == []


async def test_dns_timeout_is_a_temporary_failure(env) -> None:  # type: ignore[no-untyped-def]
    settings, store, directory = env
    settings.transport["gone.test"] = "no-such-host.invalid:25"
    settings.dns.nameservers = [f"127.0.0.1:{free_tcp_port()}"]  # nothing answers: a temporary failure
    settings.dns.timeout = 0.3
    res = await store.submit(MSG, [], OutboundEnvelope("a@a.test", (OutboundRecipient("x@gone.test"),)))
    runner = QueueRunner(settings, store, directory)
    assert await runner.run_once() == 1
    await runner.wait_idle()
    r = (await store.queue_get(res.queue_id)).recipients[0]
    assert r.status == "queued" and r.attempts == 1  # DNS did not answer: try again later
