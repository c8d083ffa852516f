"""The control socket (`mailcove deliver`, the operator's local injection) read with no deadline:
a caller that connected and sent nothing, or announced a message and stalled, held a session and
a spool until the server stopped. It now has the SMTP listeners' deadlines ([smtp]
command_timeout for the request line, data_timeout plus one second per min_data_rate bytes for
the announced message), answering `ERR 421 4.4.2`."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from local_socket_testing import answer as read_reply
from local_socket_testing import connect

from mailcove_testing import ServerProcess

CONFIG = "[smtp]\ncommand_timeout = 1\ndata_timeout = 1\nmin_data_rate = 1000000\n"
CUT_WITHIN = 5.0


def _connect(srv: ServerProcess) -> socket.socket:
    return connect(srv.control_socket)


def test_a_silent_caller_is_cut(serve_factory: Callable[..., ServerProcess]) -> None:
    srv = serve_factory(CONFIG)
    s = _connect(srv)
    start = time.monotonic()
    s.sendall(b"DELI")  # a request line that never ends
    assert read_reply(s).startswith(b"ERR 421 4.4.2")
    assert time.monotonic() - start < CUT_WITHIN


def test_a_stalled_message_is_cut(serve_factory: Callable[..., ServerProcess]) -> None:
    srv = serve_factory(CONFIG)
    s = _connect(srv)
    s.sendall(b"DELIVER 100000 a@hamap.local\r\n" + b"x" * 100)
    start = time.monotonic()
    assert read_reply(s).startswith(b"ERR 421 4.4.2")
    assert time.monotonic() - start < CUT_WITHIN
    assert _connect_ping(srv) == b"OK pong\r\n"  # the server goes on


def _connect_ping(srv: ServerProcess) -> bytes:
    s = _connect(srv)
    s.sendall(b"PING\r\n")
    return read_reply(s)
