"""A local user holding the submit socket (issue 13's local-user attacker). Any local user may
connect to `[smtp] submit_socket` (mode 0666, as Postfix's postdrop), and the server read from it
with no deadline and no connection count: a user who connected and sent nothing, or announced a
message and then stalled, kept a connection (and a file descriptor of the server) for ever, and
could open as many as the process could hold. Now the request line has [smtp] command_timeout,
the message data_timeout plus one second per min_data_rate bytes (ERR 421 4.4.2), and one local
user may hold at most [smtp] max_connections_per_ip connections (ERR 421 4.7.0). The size,
recipient and request-line limits of the socket are here too."""

from __future__ import annotations

import asyncio
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "smtp"))
from local_socket_testing import answer as read_reply
from local_socket_testing import connect
from smtp_lab import Lab, start_lab

from inprocess import serve_in_process

CUT_WITHIN = 5.0


def _connect(lab: Lab) -> socket.socket:
    return connect(lab.submit_socket)


async def test_a_stalled_request_is_cut(tmp_path: Path) -> None:
    """In process (the SMTP service and its submit socket, a real Unix socket), on a FakeClock:
    the request line within command_timeout, the message within data_timeout plus one second per
    min_data_rate bytes, however it trickles. (The same deadlines of the control socket, with a
    real server: test_control_socket_deadlines.py.)"""
    sock_dir = Path(tempfile.mkdtemp(prefix="mcs"))  # short: sun_path holds 108 bytes
    path = sock_dir / "submit.sock"
    config = (f'[smtp]\nsubmit_socket = "{path}"\ncommand_timeout = 60\ndata_timeout = 60\n'
              "min_data_rate = 1000\n")
    try:
        async with serve_in_process(tmp_path, config) as lab:
            await lab.handler("smtp")  # starts the submit socket
            clock = lab.clock

            async def cut(request: bytes) -> bytes:
                reader, writer = await asyncio.open_unix_connection(str(path))
                made = clock.made
                writer.write(request)
                await clock.waiting(60, since=made)  # the deadline, on the clock
                await clock.advance(60)
                answer = await asyncio.wait_for(reader.read(), 10)
                writer.close()
                return answer

            assert await cut(b"") == b"ERR 421 4.4.2 timeout, closing connection\r\n"
            # most of the message never comes
            assert await cut(b"SUBMIT 100000 - a@hamap.local\r\nSubject: stalled\r\n\r\n") == (
                b"ERR 421 4.4.2 timeout, closing connection\r\n")
            # trickling does not extend it: 60 s plus one second per 1,000 bytes, at 100 bytes/s
            reader, writer = await asyncio.open_unix_connection(str(path))
            made = clock.made
            writer.write(b"SUBMIT 100000 - a@hamap.local\r\n")
            await clock.waiting(60, since=made)  # accepted; the message is awaited
            answer = asyncio.ensure_future(reader.read())
            start = clock.monotonic()
            while not answer.done() and clock.monotonic() - start < 100:
                made = clock.made
                writer.write(b"x" * 100)
                # The server reads the bytes (and waits again) or has cut the connection.
                waits = asyncio.ensure_future(clock.waiting(None, since=made))
                await asyncio.wait({waits, answer}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
                waits.cancel()
                await clock.advance(1)
            took = clock.monotonic() - start
            assert (await asyncio.wait_for(answer, 10)).startswith(b"ERR 421 4.4.2"), answer
            assert 66 <= took <= 68, took  # 60 + 6.6 s for 6,600 bytes
            writer.close()
            assert await lab.inbox("a@hamap.local") == []
            # an honest submission is untouched
            reader, writer = await asyncio.open_unix_connection(str(path))
            writer.write(b"SUBMIT 14 - a@hamap.local\r\nSubject: x\r\n\r\n")
            assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"OK ")
            writer.close()
            assert len(await lab.inbox("a@hamap.local")) == 1
    finally:
        shutil.rmtree(sock_dir, ignore_errors=True)


def test_connections_per_local_user(serve_factory) -> None:
    lab = start_lab(serve_factory, smtp="max_connections_per_ip = 2\n")
    held = [_connect(lab) for _ in range(2)]
    for h in held:  # an answer: accepted and counted
        h.sendall(b"PING\r\n")
        assert read_reply(h) == b"OK pong\r\n"
    third = _connect(lab)
    assert read_reply(third) == b"ERR 421 4.7.0 too many connections from local user root, try again later\r\n"
    held.pop().close()
    deadline = time.monotonic() + 10
    while True:  # the slot comes back once the server has seen the close
        s = _connect(lab)
        s.sendall(b"SUBMIT 14 - a@hamap.local\r\nSubject: x\r\n\r\n")
        answer = read_reply(s)
        if answer.startswith(b"OK "):
            break
        assert answer.startswith(b"ERR 421 4.7.0") and time.monotonic() < deadline, answer
        time.sleep(0.1)
    for h in held:
        h.close()


def test_size_recipients_and_request_line(serve_factory) -> None:
    """The socket takes [smtp] max_message_bytes and max_recipients, as SMTP does."""
    lab = start_lab(serve_factory, smtp="max_message_bytes = 1000\nmax_recipients = 2\n")

    def submit(request: bytes) -> bytes:
        s = _connect(lab)
        s.sendall(request)
        return read_reply(s)

    assert submit(b"SUBMIT 1001 - a@hamap.local\r\n") == b"ERR 552 5.3.4 message of 1001 bytes exceeds 1000\r\n"
    assert submit(b"SUBMIT 10 - a@hamap.local b@hamap.local x@hamap.local\r\n") == (
        b"ERR 452 4.5.3 too many recipients (limit 2)\r\n")
    assert submit(b"SUBMIT 10 - " + b"a" * 70_000 + b"\r\n") == b"ERR 500 5.5.2 request line too long\r\n"
    assert submit(b"SUBMIT 14 - a@hamap.local b@hamap.local\r\nSubject: x\r\n\r\n").startswith(b"OK ")
