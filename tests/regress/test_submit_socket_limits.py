"""A local user holding the submit socket (issue 13's local-user attacker). Any local user may
connect to `[smtp] submit_socket` (mode 0666, as Postfix's postdrop), and the server read from it
with no deadline and no connection count: a user who connected and sent nothing, or announced a
message and then stalled, kept a connection (and a file descriptor of the server) for ever, and
could open as many as the process could hold. Now the request line has [smtp] command_timeout,
the message data_timeout plus one second per min_data_rate bytes (ERR 421 4.4.2), and one local
user may hold at most [smtp] max_connections_per_ip connections (ERR 421 4.7.0). The size,
recipient and request-line limits of the socket are here too."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "smtp"))
from smtp_lab import Lab, start_lab

CUT_WITHIN = 5.0


def _connect(lab: Lab) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(15)
    s.connect(str(lab.submit_socket))
    return s


def _answer(s: socket.socket) -> bytes:
    out = b""
    while not out.endswith(b"\r\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        out += chunk
    return out


def test_a_stalled_request_is_cut(serve_factory) -> None:
    lab = start_lab(serve_factory, smtp="command_timeout = 1\ndata_timeout = 1\nmin_data_rate = 1000\n")
    s = _connect(lab)  # and then nothing
    start = time.monotonic()
    assert _answer(s) == b"ERR 421 4.4.2 timeout, closing connection\r\n"
    assert time.monotonic() - start < CUT_WITHIN
    assert s.recv(10) == b""
    s = _connect(lab)
    s.sendall(b"SUBMIT 100000 - a@hamap.local\r\nSubject: stalled\r\n\r\n")  # most of it never comes
    start = time.monotonic()
    assert _answer(s) == b"ERR 421 4.4.2 timeout, closing connection\r\n"
    assert time.monotonic() - start < CUT_WITHIN
    # trickling does not extend it: 1 s plus one second per 1,000 bytes
    s = _connect(lab)
    s.sendall(b"SUBMIT 100000 - a@hamap.local\r\n")
    start = time.monotonic()
    s.setblocking(False)
    answer = b""
    while time.monotonic() - start < 10 and not answer:
        try:
            s.send(b"x" * 10)
        except OSError:
            break
        time.sleep(0.2)
        try:
            answer = s.recv(4096)
        except BlockingIOError:
            pass
    assert answer.startswith(b"ERR 421 4.4.2"), answer
    assert time.monotonic() - start < CUT_WITHIN
    assert lab.inbox("a@hamap.local") == []
    # an honest submission is untouched
    s = _connect(lab)
    s.sendall(b"SUBMIT 14 - a@hamap.local\r\nSubject: x\r\n\r\n")
    assert _answer(s).startswith(b"OK ")
    assert len(lab.inbox("a@hamap.local")) == 1


def test_connections_per_local_user(serve_factory) -> None:
    lab = start_lab(serve_factory, smtp="max_connections_per_ip = 2\n")
    held = [_connect(lab) for _ in range(2)]
    time.sleep(0.3)  # both accepted and counted
    third = _connect(lab)
    assert _answer(third) == b"ERR 421 4.7.0 too many connections from local user root, try again later\r\n"
    held.pop().close()
    deadline = time.monotonic() + 10
    while True:  # the slot comes back once the server has seen the close
        s = _connect(lab)
        s.sendall(b"SUBMIT 14 - a@hamap.local\r\nSubject: x\r\n\r\n")
        answer = _answer(s)
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
        return _answer(s)

    assert submit(b"SUBMIT 1001 - a@hamap.local\r\n") == b"ERR 552 5.3.4 message of 1001 bytes exceeds 1000\r\n"
    assert submit(b"SUBMIT 10 - a@hamap.local b@hamap.local x@hamap.local\r\n") == (
        b"ERR 452 4.5.3 too many recipients (limit 2)\r\n")
    assert submit(b"SUBMIT 10 - " + b"a" * 70_000 + b"\r\n") == b"ERR 500 5.5.2 request line too long\r\n"
    assert submit(b"SUBMIT 14 - a@hamap.local b@hamap.local\r\nSubject: x\r\n\r\n").startswith(b"OK ")
