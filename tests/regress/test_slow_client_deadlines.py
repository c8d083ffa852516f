"""Issue 13 finding 5: timeouts are deadlines, not per read. One byte every few seconds used to
keep SMTP before HELO, SMTP in DATA, POP3 before login and a logged-in IMAP or POP3 session open
for ever. Now each request must be complete within its deadline (message data gets one more
second per `min_data_rate` bytes, so an honest slow upload still finishes) — with the timeouts
shortened to seconds so the test is quick. (IMAP before login: test_imap_slow_clients.py.)"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from inprocess import serve_in_process
from mailcove_testing import ServerProcess

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pop3"))
from helpers import add_users

USERS = {"a@hamap.local": "It1"}
USERS_A = "a@hamap.local"
CONFIG = """
[auth]
allow_plaintext = true
[smtp]
command_timeout = 2
data_timeout = 2
min_data_rate = 2000
[pop3]
login_timeout = 2
idle_timeout = 2
[imap]
idle_timeout = 2
min_data_rate = 2000
"""
TRICKLE = 0.3  # seconds between bytes: well under every timeout, so only a deadline ends it
CUT_WITHIN = 5.0


@pytest.fixture
def srv(serve_factory: Callable[..., ServerProcess]) -> ServerProcess:
    server = serve_factory(CONFIG, start=False)
    add_users(server, USERS)
    server.start()
    return server


class Line:
    def __init__(self, addr: tuple[str, int]) -> None:
        self.sock = socket.create_connection(addr, timeout=10)
        self.buf = b""

    def read_line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise EOFError(self.buf)
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def command(self, text: bytes) -> bytes:
        self.sock.sendall(text + b"\r\n")
        return self.read_line()

    def trickle(self, data: bytes) -> tuple[float, bytes]:
        """Send `data` one byte at a time; return (seconds until the server spoke or closed,
        what it said)."""
        self.sock.setblocking(False)
        start = time.monotonic()
        for i in range(len(data)):
            try:
                self.sock.send(data[i:i + 1])
            except OSError:
                return time.monotonic() - start, self.buf
            time.sleep(TRICKLE)
            try:
                chunk = self.sock.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                return time.monotonic() - start, self.buf
            self.buf += chunk
            if not chunk or b"\r\n" in self.buf:
                return time.monotonic() - start, self.buf
        raise AssertionError(f"still open after trickling {len(data)} bytes over {time.monotonic() - start:.1f}s")


def test_smtp_before_helo(srv: ServerProcess) -> None:
    c = Line(srv.address("smtp"))
    assert c.read_line().startswith(b"220")
    took, said = c.trickle(b"EHLO " + b"x" * 100)
    assert said.startswith(b"421 4.4.2"), said
    assert took < CUT_WITHIN


def _smtp_in_data(srv: ServerProcess) -> Line:
    c = Line(srv.address("smtp"))
    assert c.read_line().startswith(b"220")
    c.sock.sendall(b"HELO client.example\r\n")
    assert c.read_line().startswith(b"250")
    assert c.command(b"MAIL FROM:<x@example.org>").startswith(b"250")
    assert c.command(b"RCPT TO:<a@hamap.local>").startswith(b"250")
    assert c.command(b"DATA").startswith(b"354")
    return c


def test_smtp_trickling_data_is_cut(srv: ServerProcess) -> None:
    c = _smtp_in_data(srv)
    took, said = c.trickle(b"Subject: slow\r\n\r\n" + b"y" * 100)
    assert said.startswith(b"421 4.4.2"), said
    assert took < CUT_WITHIN


async def test_smtp_slow_honest_data_above_the_minimum_rate_finishes(tmp_path: Path) -> None:
    """Longer than data_timeout in all, but faster than min_data_rate: accepted. In process, on
    a FakeClock: 800 bytes every 0.25 s (3,200 bytes/s) for 3 s."""
    async with serve_in_process(tmp_path, CONFIG) as lab:
        c = await lab.smtp()
        assert (await c.cmd(b"HELO client.example")).startswith(b"250")
        assert (await c.cmd(b"MAIL FROM:<x@example.org>")).startswith(b"250")
        assert (await c.cmd(b"RCPT TO:<a@hamap.local>")).startswith(b"250")
        assert (await c.cmd(b"DATA")).startswith(b"354")
        body = b"Subject: slow but steady\r\n\r\n" + (b"z" * 78 + b"\r\n") * 120  # about 9.6 KB
        start = lab.clock.monotonic()
        for i in range(0, len(body), 800):
            c.send(body[i:i + 800])
            await lab.clock.advance(0.25)
        assert lab.clock.monotonic() - start > 2.5  # past data_timeout
        assert (await c.cmd(b".")).startswith(b"250"), "an honest slow upload was cut"

def _pop3(srv: ServerProcess) -> Line:
    c = Line(srv.address("pop3"))
    assert c.read_line().startswith(b"+OK")
    return c


def test_pop3_before_login(srv: ServerProcess) -> None:
    c = _pop3(srv)
    took, said = c.trickle(b"USER " + b"a" * 100)
    assert said.startswith(b"-ERR"), said
    assert took < CUT_WITHIN


async def test_pop3_login_deadline_counts_from_connect(tmp_path: Path) -> None:
    """Whole commands that never log in do not extend it either. In process, on a FakeClock: a
    CAPA every 0.3 s is answered until login_timeout (2 s) has passed since the connection."""
    async with serve_in_process(tmp_path, CONFIG) as lab:
        p = await lab.pop3()
        for n in range(7):  # at 0, 0.3, ..., 1.8 s
            assert (await p.cmd(b"CAPA")).startswith(b"+OK"), n
            await p.multiline()
            await lab.clock.advance(0.3)  # the last one passes 2 s
        assert await p.read_all() == b"-ERR [SYS/TEMP] Login timeout.\r\n"

def test_pop3_after_login(srv: ServerProcess) -> None:
    c = _pop3(srv)
    assert c.command(b"USER a@hamap.local").startswith(b"+OK")
    assert c.command(b"PASS It1").startswith(b"+OK")
    took, said = c.trickle(b"STAT" + b" " * 100)
    assert said.startswith(b"-ERR"), said
    assert took < CUT_WITHIN


def _imap_logged_in(srv: ServerProcess) -> Line:
    c = Line(srv.address("imap"))
    assert c.read_line().startswith(b"* OK")
    assert c.command(b"a LOGIN a@hamap.local It1").startswith(b"a OK")
    return c


def test_imap_after_login(srv: ServerProcess) -> None:
    c = _imap_logged_in(srv)
    took, said = c.trickle(b"b NOOP" + b" " * 100)
    assert said.startswith(b"* BYE"), said
    assert took < CUT_WITHIN


async def test_imap_slow_honest_append_above_the_minimum_rate_finishes(tmp_path: Path) -> None:
    """In process, on a FakeClock: an APPEND literal at 3,200 bytes/s for 3 s, past idle_timeout."""
    async with serve_in_process(tmp_path, CONFIG) as lab:
        c = await lab.imap(login=USERS_A)
        body = b"Subject: slow append\r\n\r\n" + (b"z" * 78 + b"\r\n") * 120
        c.send(b"b APPEND INBOX {%d}\r\n" % len(body))
        await c.continuation()
        start = lab.clock.monotonic()
        for i in range(0, len(body), 800):
            c.send(body[i:i + 800])
            await lab.clock.advance(0.25)
        assert lab.clock.monotonic() - start > 2.5  # past idle_timeout
        c.send(b"\r\n")
        _, done = await c.until("b")
        assert done.status == "OK", "an honest slow APPEND was cut"
