"""Two real `mailcove serve` instances, a.test and b.test, and a real dnsmasq serving their MX
and A records on loopback: mail from a user of a.test reaches b.test by MX lookup; a 550 from the
receiver comes back to the sender as a DSN; a receiver that answers 421 first gets the message
on a retry; a kill -9 mid-queue and a restart still deliver every recipient."""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "queue"))

from outbound_testing import (
    Dnsmasq,
    free_tcp_port,
    queue_items,
    send,
    start_instance,
    wait_for,
)

MSG = (b"From: A <a@a.test>\r\nTo: B <b@b.test>\r\nSubject: over the net\r\n"
       b"Message-ID: <1@a.test>\r\n\r\nhello from a.test\r\n")


@pytest.fixture
def net(tmp_path):  # type: ignore[no-untyped-def]
    pa, pb = free_tcp_port(), free_tcp_port()
    dns = Dnsmasq(tmp_path)
    for d in ("a.test", "b.test"):
        dns.mx(d, f"mx.{d}", 10)
        dns.host(f"mx.{d}", "127.0.0.1")
    dns.mx("nullmx.test", ".", 0)
    dns.start()
    yield dns, pa, pb
    dns.stop()


def test_delivery_by_mx_and_bounce_for_550(serve_factory, net) -> None:  # type: ignore[no-untyped-def]
    dns, pa, pb = net
    a = start_instance(serve_factory, "a.test", pa, dns, pb)
    b = start_instance(serve_factory, "b.test", pb, dns, pa)
    send(pa, "a@a.test", ["b@b.test", "nobody@b.test"], MSG)
    got = wait_for(lambda: b.read_mailbox("b@b.test"), what="delivery to b.test")
    assert len(got) == 1
    assert b"hello from a.test\r\n" in got[0]
    assert b"Return-Path: <a@a.test>" in got[0]
    # nobody@b.test: 550 at RCPT -> a DSN in a@a.test's INBOX, from the null sender
    dsns = wait_for(lambda: [m for m in a.read_mailbox("a@a.test") if b"multipart/report" in m], what="DSN")
    report = dsns[0]
    assert b"Return-Path: <>" in report
    assert b"report-type=delivery-status" in report
    assert b"Final-Recipient: rfc822; nobody@b.test" in report
    assert b"Action: failed" in report and b"Status: 5.1.1" in report
    assert b"Diagnostic-Code: smtp; 550 5.1.1" in report
    assert b"Subject: over the net" in report  # the original comes back
    wait_for(lambda: not queue_items(a), what="empty queue")
    # null MX (RFC 7505): an immediate bounce, no connection
    send(pa, "a@a.test", ["x@nullmx.test"], MSG)
    wait_for(lambda: any(b"Status: 5.1.10" in m for m in a.read_mailbox("a@a.test")), what="null MX bounce")


class FlakyProxy:
    """A receiver in front of b.test that answers 421 to the first connection, then passes
    connections on to the real server."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.port = free_tcp_port()
        self.connections = 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.ready.wait(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            if self.connections == 1:
                writer.write(b"421 4.3.2 busy, come back later\r\n")
                await writer.drain()
                writer.close()
                return
            r2, w2 = await asyncio.open_connection("127.0.0.1", self.target)

            async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
                try:
                    while data := await src.read(65536):
                        dst.write(data)
                        await dst.drain()
                finally:
                    dst.close()

            await asyncio.gather(pipe(reader, w2), pipe(r2, writer), return_exceptions=True)

        async def main() -> None:
            self.server = await asyncio.start_server(handle, "127.0.0.1", self.port)
            self.ready.set()
            await self.server.serve_forever()

        try:
            self.loop.run_until_complete(main())
        except Exception:
            pass


def test_421_then_accepted_on_retry(serve_factory, net) -> None:  # type: ignore[no-untyped-def]
    dns, pa, pb = net
    b = start_instance(serve_factory, "b.test", pb, dns, pa)
    proxy = FlakyProxy(pb)
    a = start_instance(serve_factory, "a.test", pa, dns, proxy.port)
    send(pa, "a@a.test", ["b@b.test"], MSG)
    got = wait_for(lambda: b.read_mailbox("b@b.test"), what="delivery after the retry")
    assert len(got) == 1 and proxy.connections >= 2
    wait_for(lambda: not queue_items(a), what="empty queue")
    # a temporary failure is no bounce
    assert not [m for m in a.read_mailbox("a@a.test") if b"multipart/report" in m]


def test_kill_mid_queue_then_restart_delivers_everything(serve_factory, net) -> None:  # type: ignore[no-untyped-def]
    dns, pa, pb = net
    # b.test is down: everything stays queued at a.test
    a = start_instance(serve_factory, "a.test", pa, dns, pb, extra="concurrency_per_destination = 2\n")
    n = 20
    for i in range(n):
        send(pa, "a@a.test", ["b@b.test"], MSG.replace(b"hello", b"hello %d" % i))
    wait_for(lambda: len(queue_items(a)) == n, what="queued")
    b = start_instance(serve_factory, "b.test", pb, dns, pa)
    # kill -9 as soon as the first deliveries land
    wait_for(lambda: b.read_mailbox("b@b.test"), timeout=30, what="first delivery")
    a.kill()
    a.start()
    wait_for(lambda: not queue_items(a), timeout=60, what="queue drained after the restart")
    got = b.read_mailbox("b@b.test")
    bodies = {m[m.index(b"hello"):] for m in got}
    assert len(bodies) == n  # every message at least once
    # duplicates only for the transactions in flight at the kill: one per connection
    assert len(got) - n <= 2
