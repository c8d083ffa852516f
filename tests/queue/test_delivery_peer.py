"""The runner against a minimal SMTP receiver on loopback whose EHLO we choose: a hop without
DSN makes mailcove send the `relayed` notice asked for; a hop without 8BITMIME gets the body as
quoted-printable; a hop without SMTPUTF8 makes SMTPUTF8 mail bounce; PIPELINING sends MAIL and
every RCPT in one write; one connection carries several messages."""

from __future__ import annotations

import asyncio
import time

from outbound_testing import inbox

from mailcove.core.clock import FakeClock
from mailcove.queue import QueueRunner
from mailcove.store.api import OutboundEnvelope, OutboundRecipient


class Receiver:
    def __init__(self, extensions: list[str]) -> None:
        self.extensions = extensions
        self.messages: list[bytes] = []
        self.commands: list[str] = []
        self.reads: list[bytes] = []
        self.connections = 0
        self.open = 0
        self.max_open = 0

    async def start(self) -> int:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        try:
            await self._session(r, w)
        finally:
            self.open -= 1

    async def _session(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"220 peer.test ESMTP\r\n")
        buf = b""
        while True:
            chunk = await r.read(65536)
            if not chunk:
                break
            self.reads.append(chunk)
            buf += chunk
            while b"\r\n" in buf:
                line, buf = buf.split(b"\r\n", 1)
                cmd = line.decode()
                self.commands.append(cmd)
                verb = cmd.split(" ", 1)[0].upper()
                if verb == "EHLO":
                    lines = ["peer.test", *self.extensions]
                    w.write("".join(f"250{'-' if i < len(lines) - 1 else ' '}{t}\r\n"
                                    for i, t in enumerate(lines)).encode())
                elif verb == "DATA":
                    w.write(b"354 go\r\n")
                    await w.drain()
                    while b"\r\n.\r\n" not in buf:
                        more = await r.read(65536)
                        if not more:
                            return
                        buf += more
                    msg, buf = buf.split(b"\r\n.\r\n", 1)
                    self.messages.append(msg + b"\r\n")
                    w.write(b"250 2.0.0 queued\r\n")
                elif verb == "QUIT":
                    w.write(b"221 bye\r\n")
                    await w.drain()
                    w.close()
                    return
                else:
                    w.write(b"250 2.0.0 ok\r\n")
            await w.drain()


async def run(settings, store, directory, extensions: list[str], envelopes: list[tuple[bytes, OutboundEnvelope]]):  # type: ignore[no-untyped-def]
    peer = Receiver(extensions)
    port = await peer.start()
    settings.transport["peer.test"] = f"127.0.0.1:{port}"
    for data, envelope in envelopes:
        await store.submit(data, [], envelope)
    runner = QueueRunner(settings, store, directory, clock=FakeClock(wall=time.time() + 1))
    await runner.run_once()
    await runner.wait_idle()
    peer.server.close()
    return peer


MSG = (b"From: a@a.test\r\nTo: x@peer.test\r\nSubject: s\r\nContent-Type: text/plain; charset=utf-8\r\n"
       b"\r\ncaf\xc3\xa9\r\n")


async def test_hop_without_dsn_gets_relayed_notice(env) -> None:  # type: ignore[no-untyped-def]
    settings, store, directory = env
    env1 = OutboundEnvelope("a@a.test", (OutboundRecipient("x@peer.test", "rfc822;x@peer.test", ("SUCCESS",)),
                                         OutboundRecipient("y@peer.test")), envid="ID7", body="8BITMIME")
    peer = await run(settings, store, directory, ["PIPELINING", "8BITMIME"], [(MSG, env1)])
    assert len(peer.messages) == 1 and b"caf\xc3\xa9" in peer.messages[0]
    assert "MAIL FROM:<a@a.test> BODY=8BITMIME" in peer.commands  # no DSN parameters to a hop without DSN
    # PIPELINING: MAIL and both RCPTs arrived in one read
    assert any(b"MAIL FROM" in r and r.count(b"RCPT TO") == 2 for r in peer.reads)
    [notice] = await inbox(store)
    assert b"Action: relayed" in notice and b"Final-Recipient: rfc822; x@peer.test" in notice
    assert b"y@peer.test" not in notice.split(b"message/delivery-status")[1].split(b"message/rfc822")[0]
    assert await store.queue_list() == []


async def test_hop_with_dsn_gets_the_parameters(env) -> None:  # type: ignore[no-untyped-def]
    settings, store, directory = env
    env1 = OutboundEnvelope("a@a.test", (OutboundRecipient("x@peer.test", "rfc822;x+tag@peer.test",
                                                           ("SUCCESS", "FAILURE")),), envid="ID 7", ret="HDRS")
    peer = await run(settings, store, directory, ["DSN", "8BITMIME", "SIZE 1000000"], [(MSG, env1)])
    assert f"MAIL FROM:<a@a.test> SIZE={len(MSG)} BODY=8BITMIME RET=HDRS ENVID=ID+207" in peer.commands
    assert "RCPT TO:<x@peer.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x+2Btag@peer.test" in peer.commands
    assert await inbox(store) == []  # the next hop reports success itself


async def test_hop_without_8bitmime_or_smtputf8(env) -> None:  # type: ignore[no-untyped-def]
    settings, store, directory = env
    plain = OutboundEnvelope("a@a.test", (OutboundRecipient("x@peer.test"),), body="8BITMIME")
    utf8 = OutboundEnvelope("a@a.test", (OutboundRecipient("\u00e9@peer.test"),), smtputf8=True)
    settings.queue.concurrency_per_destination = 1  # so the three share one connection
    peer = await run(settings, store, directory, [], [(MSG, plain), (MSG, utf8), (MSG, plain)])
    assert len(peer.messages) == 2 and peer.connections == 1
    for m in peer.messages:
        assert m.isascii() and b"caf=C3=A9" in m and b"Content-Transfer-Encoding: quoted-printable" in m
    assert "MAIL FROM:<a@a.test>" in peer.commands  # no BODY= to a hop without 8BITMIME
    [bounce] = await inbox(store)
    assert b"Status: 5.6.7" in bounce and b"Action: failed" in bounce


async def test_concurrency_per_destination(env) -> None:  # type: ignore[no-untyped-def]
    settings, store, directory = env
    settings.queue.concurrency_per_destination = 3
    envs = [(MSG, OutboundEnvelope("a@a.test", (OutboundRecipient(f"r{i}@peer.test"),))) for i in range(12)]
    peer = await run(settings, store, directory, ["PIPELINING", "8BITMIME"], envs)
    assert len(peer.messages) == 12
    assert peer.max_open <= 3 and peer.connections == 3  # three connections, each reused for four messages
    assert await store.queue_list() == []
