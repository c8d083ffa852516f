"""Outbound deferrals and bounces are in the server's log, not only in `queue list`.

A real `mailcove serve` for a.test finds b.test's MX through a private dnsmasq; the MX is an SMTP
peer on loopback that defers one recipient with 451 and refuses another with 550. The log must
then carry, for each, one line with the queue id, the recipient, the remote host and the remote
reply; the recipient the peer took is logged as sent and not as deferred or bounced."""

from __future__ import annotations

import asyncio
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "queue"))

from outbound_testing import Dnsmasq, free_tcp_port, queue_items, send, start_instance, wait_for

MSG = b"From: a@a.test\r\nTo: b@b.test\r\nSubject: log me\r\nMessage-ID: <log-1@a.test>\r\n\r\nhello\r\n"
REPLIES = {
    "later@b.test": b"451 4.7.1 greylisted by peer, try again in a while\r\n",
    "nobody@b.test": b"550 5.1.1 no mailbox here by that name\r\n",
}


class Peer:
    """b.test's MX: answers each RCPT from REPLIES (250 for anyone else), takes the data."""

    def __init__(self) -> None:
        self.port = free_tcp_port()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.messages = 0
        threading.Thread(target=self._run, daemon=True).start()
        assert self.ready.wait(10)

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"220 peer.b.test ESMTP\r\n")
        while line := await r.readline():
            cmd = line.decode().strip()
            verb = cmd.split(" ", 1)[0].upper()
            if verb == "EHLO":
                w.write(b"250-peer.b.test\r\n250 8BITMIME\r\n")
            elif verb == "RCPT":
                addr = cmd[cmd.index("<") + 1:cmd.index(">")]
                w.write(REPLIES.get(addr, b"250 2.1.5 ok\r\n"))
            elif verb == "DATA":
                w.write(b"354 go on\r\n")
                await w.drain()
                while (await r.readline()) != b".\r\n":
                    pass
                self.messages += 1
                w.write(b"250 2.0.0 taken\r\n")
            elif verb == "QUIT":
                w.write(b"221 bye\r\n")
                await w.drain()
                break
            else:
                w.write(b"250 2.0.0 ok\r\n")
            await w.drain()
        w.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.done = asyncio.Event()

        async def main() -> None:
            server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
            self.ready.set()
            async with server:
                await self.done.wait()

        self.loop.run_until_complete(main())

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.done.set)


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[tuple[Dnsmasq, Peer]]:
    dns = Dnsmasq(tmp_path)
    dns.mx("b.test", "mx.b.test", 10)
    dns.host("mx.b.test", "127.0.0.1")
    dns.start()
    p = Peer()
    yield dns, p
    p.stop()
    dns.stop()


def test_deferral_and_bounce_are_logged_with_id_recipient_host_and_reply(serve_factory: Any, peer: Any,
                                                                         tmp_path: Path) -> None:
    dns, p = peer
    log = tmp_path / "a.log"
    pa = free_tcp_port()
    a = start_instance(serve_factory, "a.test", pa, dns, p.port, extra=f'[log]\nfile = "{log}"\n')
    send(pa, "a@a.test", ["b@b.test", "later@b.test", "nobody@b.test"], MSG)
    wait_for(lambda: p.messages >= 1, what="the peer took the message")
    item = wait_for(lambda: [i for i in queue_items(a) if any(r.last_error for r in i.recipients)],
                    what="the deferral in the queue")[0]
    relay = rf"mx\.b\.test\[127\.0\.0\.1\]:{p.port}"
    deferred = wait_for(lambda: re.search(
        rf"queue: id=(\d+) to=<later@b\.test> relay={relay} status=deferred retry_in=\d+s "
        r"reply=451 4\.7\.1 greylisted by peer, try again in a while$", log.read_text(), re.M), what="deferral line")
    bounced = re.search(rf"WARNING mailcove\.queue s=- queue: id=(\d+) to=<nobody@b\.test> relay={relay} "
                        r"status=bounced reply=550 5\.1\.1 no mailbox here by that name$", log.read_text(), re.M)
    assert bounced is not None, log.read_text()
    # the queue id is the one `queue list` shows
    assert int(deferred.group(1)) == int(bounced.group(1)) == item.id
    text = log.read_text()
    assert "to=<b@b.test>" not in text, text  # delivered: neither deferred nor bounced
    a.stop()
