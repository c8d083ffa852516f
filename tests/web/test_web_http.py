"""Bad HTTP input against the real http listener: every case gets a clear error and the server
keeps serving (a good request works after each). Keep-alive, pipelining and HEAD."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

from web_testing import hamap_server, request

from mailcove_testing import ServerProcess

CONFIG = ("[web]\nrequest_timeout = 1.0\nkeepalive_timeout = 2.0\nmax_header_bytes = 2048\nmax_body_bytes = 1024\n"
          "max_connections_per_ip = 4\nmax_requests_per_connection = 3\n")
GOOD = b"GET /mail/config-v1.1.xml?emailaddress=a@hamap.local HTTP/1.1\r\nHost: x\r\n\r\n"


def raw(srv: ServerProcess, data: bytes, *, wait_close: bool = True) -> bytes:
    s = socket.create_connection(srv.address("http"), timeout=10)
    try:
        s.sendall(data)
        out = b""
        while wait_close:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def still_serving(srv: ServerProcess) -> None:
    assert request(srv, "GET", "/mail/config-v1.1.xml?emailaddress=a@hamap.local")[0] == 200


def test_bad_requests_get_clear_errors_and_the_server_keeps_serving(serve_factory: Any) -> None:
    srv = hamap_server(serve_factory, CONFIG)
    out = raw(srv, b"GARBAGE\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 ") and b"malformed request" in out and b"Connection: close" in out
    still_serving(srv)
    out = raw(srv, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64) + b"\r\n\r\n")  # a TLS ClientHello
    assert out.startswith(b"HTTP/1.1 400 ")
    out = raw(srv, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 4000 + b"\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 431 ") and b"larger than the limit (2048 bytes)" in out
    out = raw(srv, b"GET /" + b"a" * 5000)  # a request line without end
    assert out.startswith(b"HTTP/1.1 431 ")
    still_serving(srv)
    body = b"<x>" + b"a" * 2000 + b"</x>"
    out = raw(srv, b"POST /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
              % (len(body), body))
    assert out.startswith(b"HTTP/1.1 413 ") and b"larger than the limit (1024 bytes)" in out
    chunked = b"".join(b"%x\r\n%s\r\n" % (300, b"b" * 300) for _ in range(5)) + b"0\r\n\r\n"
    out = raw(srv, b"POST /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
              + chunked)
    assert out.startswith(b"HTTP/1.1 413 ")
    out = raw(srv, b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")
    assert out.startswith(b"HTTP/1.1 400 ")
    s = socket.create_connection(srv.address("http"), timeout=10)
    s.sendall(b"DELETE /mail/config-v1.1.xml HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    out = s.recv(65536)
    s.close()
    assert out.startswith(b"HTTP/1.1 405 ") and b"Allow: GET, HEAD" in out
    assert request(srv, "GET", "/nothing/here")[0] == 404
    still_serving(srv)


def test_slow_client_gets_408_and_idle_connections_close(serve_factory: Any) -> None:
    srv = hamap_server(serve_factory, CONFIG)
    s = socket.create_connection(srv.address("http"), timeout=10)
    s.sendall(b"GET /mail/config-v1.1.xml HTTP/1.1\r\nHo")  # and then nothing (slowloris)
    t0 = time.monotonic()
    out = s.recv(65536)
    assert out.startswith(b"HTTP/1.1 408 ") and b"not complete within 1s" in out
    assert time.monotonic() - t0 < 8
    s.close()
    # an idle kept-alive connection is closed after keepalive_timeout, silently
    s = socket.create_connection(srv.address("http"), timeout=10)
    assert s.recv(100) == b""
    s.close()
    still_serving(srv)


def test_keep_alive_pipelining_head_and_connection_limits(serve_factory: Any) -> None:
    srv = hamap_server(serve_factory, CONFIG)
    # three pipelined requests on one connection; the third is the last allowed (max 3): closed after it
    out = raw(srv, GOOD + b"HEAD /mail/config-v1.1.xml?emailaddress=a@hamap.local HTTP/1.1\r\nHost: x\r\n\r\n" + GOOD)
    assert out.count(b"HTTP/1.1 200 OK") == 3
    first, second, _third = out.split(b"HTTP/1.1 200 OK")[1:]
    length = int(first.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    assert second.endswith(b"\r\n\r\n") and b"Content-Length: %d" % length in second  # HEAD: headers only
    assert b"Connection: close" in _third
    # per-IP connection limit: the fifth concurrent connection gets 503, the others keep working
    held = [socket.create_connection(srv.address("http"), timeout=10) for _ in range(4)]
    time.sleep(0.3)
    out = raw(srv, GOOD)
    assert out.startswith(b"HTTP/1.1 503 ") and b"too many connections" in out
    held[0].sendall(GOOD)
    assert held[0].recv(65536).startswith(b"HTTP/1.1 200 ")
    for h in held:
        h.close()
    time.sleep(0.3)
    still_serving(srv)


async def test_request_and_keepalive_deadlines_on_the_clock() -> None:
    """web/http.py's deadlines, exactly, on a FakeClock, over an in-memory connection: a request
    must be whole within request_timeout of its first byte (408), and a kept-alive connection
    closes silently after keepalive_timeout without a new request. (The same over a real
    listener: test_slow_client_gets_408_and_idle_connections_close.)"""
    from inprocess import Client, Pipe
    from mailcove.core.clock import FakeClock
    from mailcove.web.http import HttpConnection, Limits, Request, Response

    async def app(req: Request) -> Response:
        return Response(200, b"ok")

    clock = FakeClock()
    limits = Limits(request_timeout=15.0, keepalive_timeout=30.0)

    def connect() -> Client:
        pipe = Pipe(("127.0.0.1", 40000), ("127.0.0.1", 80))
        return Client(pipe, asyncio.create_task(HttpConnection(pipe.reader, pipe.writer, app, limits,
                                                                 clock=clock).serve()))

    c = connect()
    c.send(b"GET / HTTP/1.1\r\nHo")  # and then nothing (slowloris)
    await clock.advance(14.9)
    assert c.unread() == b"" and not c.task.done()
    await clock.advance(0.1)
    await c.task
    out = c.unread()
    assert out.startswith(b"HTTP/1.1 408 ") and b"not complete within 15s" in out
    c = connect()
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await c.line()).startswith(b"HTTP/1.1 200 ")
    await clock.advance(29.9)
    assert not c.task.done()
    await clock.advance(0.1)
    await c.task  # closed, silently
    assert b"HTTP/1.1" not in c.unread()
