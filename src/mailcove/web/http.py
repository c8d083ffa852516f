"""One HTTP/1.1 connection, served with h11.

h11 (sans-IO, the model DESIGN.md section 3 points at) does the parsing and framing; this module
adds what a server must decide on top of it: limits (request head, body, time for a request, idle
time between requests, requests per connection), HEAD, keep-alive, and an error response with a
clear body for every bad request, after which the connection closes and the server carries on.

Why h11 instead of a parser in proto/: HTTP/1.1 framing (chunked bodies, Content-Length rules,
pipelining, HEAD responses without a body, Connection: close) is where hand-written servers
get request smuggling wrong, and h11 is small, pure Python, typed and well kept."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import h11

from mailcove.core.clock import SYSTEM_CLOCK, Clock, wait_first

READ_CHUNK = 16384

REASONS = {
    200: "OK", 301: "Moved Permanently", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
    408: "Request Timeout", 413: "Content Too Large", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable",
}


@dataclass(frozen=True, slots=True)
class Limits:
    max_header_bytes: int = 16384
    max_body_bytes: int = 65536
    request_timeout: float = 15.0
    keepalive_timeout: float = 30.0
    max_requests: int = 100


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    body: bytes
    peer_ip: str = ""

    @property
    def host(self) -> str:
        """The Host header without port, lower-case, without a trailing dot."""
        h = self.headers.get("host", "").strip().lower()
        if h.startswith("["):
            return h[1 : h.find("]")] if "]" in h else h
        return h.rsplit(":", 1)[0].rstrip(".") if ":" in h else h.rstrip(".")

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)


def error(status: int, text: str, headers: list[tuple[str, str]] | None = None) -> Response:
    """A plain-text error whose body says what was wrong (for people reading curl output)."""
    return Response(status, f"{status} {REASONS.get(status, '')}: {text}\n".encode(), headers=headers or [])


App = Callable[[Request], Awaitable[Response]]


class _Reject(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


class HttpConnection:
    """Serves requests on one stream pair until the client leaves, a limit is reached, an error
    closes it, or `closing` is set (server shutdown: the request in progress is answered)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        app: App,
        limits: Limits,
        *,
        closing: asyncio.Event | None = None,
        peer_ip: str = "",
        log: logging.LoggerAdapter[Any] | logging.Logger | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.clock = clock  # the request and keep-alive deadlines
        self.reader = reader
        self.writer = writer
        self.app = app
        self.limits = limits
        self.closing = closing or asyncio.Event()
        self.peer_ip = peer_ip
        self.log = log or logging.getLogger("mailcove.web")
        self.h = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_header_bytes)

    async def serve(self) -> None:
        served = 0
        while True:
            try:
                request = await self._read_request()
            except _Reject as rej:
                self.log.info("http %s", rej.response.body.decode(errors="replace").strip())
                await self._send(rej.response, head_only=False, close=True)
                return
            if request is None:
                return
            try:
                response = await self.app(request)
            except Exception:
                self.log.exception("http handler failed for %s %s", request.method, request.path)
                response = error(500, "the server failed to answer this request")
            served += 1
            close = (served >= self.limits.max_requests or self.closing.is_set()
                     or request.headers.get("connection", "").lower() == "close")
            self.log.info("http %s %s -> %d (%d bytes)", request.method, request.target[:200], response.status,
                          len(response.body))
            await self._send(response, head_only=request.method == "HEAD", close=close)
            if close or self.h.our_state is h11.MUST_CLOSE:
                return
            try:
                self.h.start_next_cycle()
            except h11.LocalProtocolError:
                return  # the request body was not read to its end: the connection cannot be reused

    async def refuse(self, response: Response) -> None:
        """Answer before any request has been read, then close (the connection caps)."""
        await self.clock.wait_for(self._send(response, head_only=False, close=True), 5)

    # --- reading ------------------------------------------------------------------------------

    async def _read_request(self) -> Request | None:
        """The next whole request; None when the client closed or stayed idle between requests.
        Raises _Reject with the error response for a bad, too large or too slow request."""
        clock = self.clock
        deadline: float | None = None
        head: h11.Request | None = None
        body = bytearray()
        # h11 bounds only a head that arrives in pieces; one that arrives whole is measured here.
        fed = len(self.h.trailing_data[0])
        while True:
            try:
                event = self.h.next_event()
            except h11.RemoteProtocolError as exc:
                status = exc.error_status_hint
                if status == 431:
                    limit = self.limits.max_header_bytes
                    what = f"the request line and headers are larger than the limit ({limit} bytes)"
                else:
                    what = f"malformed request ({str(exc)[:200]})"
                raise _Reject(error(status, what)) from None
            if event is h11.NEED_DATA:
                idle = head is None and not self.h.trailing_data[0]
                if idle and deadline is None:
                    timeout = self.limits.keepalive_timeout
                else:
                    if deadline is None:
                        deadline = clock.monotonic() + self.limits.request_timeout
                    timeout = deadline - clock.monotonic()
                data = await self._receive(timeout, idle=idle)
                if data is None:
                    if idle:
                        return None
                    raise _Reject(error(408, f"the request was not complete within {self.limits.request_timeout:g}s"))
                if deadline is None:
                    deadline = clock.monotonic() + self.limits.request_timeout
                self.h.receive_data(data)
                if head is None:
                    fed += len(data)
                continue
            if isinstance(event, h11.Request):
                head = event
                if _has_header(event.headers, b"content-length") and _has_header(event.headers, b"transfer-encoding"):
                    # RFC 9112 6.1: possibly request smuggling; answer 400 and close the connection,
                    # so that no request hidden in the body is ever read as the next one.
                    raise _Reject(error(400, "the request has both Content-Length and Transfer-Encoding"))
                if fed - len(self.h.trailing_data[0]) > self.limits.max_header_bytes:
                    limit = self.limits.max_header_bytes
                    raise _Reject(error(431, f"the request line and headers are larger than the limit ({limit} bytes)"))
                length = _content_length(event.headers)
                if length is not None and length > self.limits.max_body_bytes:
                    raise _Reject(error(413, f"the body is larger than the limit ({self.limits.max_body_bytes} bytes)"))
                if self.h.client_is_waiting_for_100_continue:
                    # curl sends Expect: 100-continue with larger POSTs and would wait a second
                    with contextlib.suppress(ConnectionError):
                        self.writer.write(self.h.send(h11.InformationalResponse(status_code=100, headers=[])))
                        await self.writer.drain()
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > self.limits.max_body_bytes:
                    raise _Reject(error(413, f"the body is larger than the limit ({self.limits.max_body_bytes} bytes)"))
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                return self._make_request(head, bytes(body))
            elif isinstance(event, h11.ConnectionClosed):
                if head is not None:
                    raise _Reject(error(400, "the connection closed in the middle of the request"))
                return None

    async def _receive(self, timeout: float, *, idle: bool) -> bytes | None:
        """Bytes from the client, b"" at EOF (fed to h11 as the close), None on timeout or, when
        idle between requests, on server shutdown."""
        if timeout <= 0:
            return None
        read = asyncio.ensure_future(self.reader.read(READ_CHUNK))
        waits: set[asyncio.Future[Any]] = {read}
        stop: asyncio.Future[Any] | None = None
        if idle:
            stop = asyncio.ensure_future(self.closing.wait())
            waits.add(stop)
        try:
            done = await wait_first(self.clock, waits, timeout)
        finally:
            for f in waits:
                if not f.done():
                    f.cancel()
                    with contextlib.suppress(BaseException):
                        await f
        if read in done:
            return read.result()
        return None

    def _make_request(self, head: h11.Request, body: bytes) -> Request:
        target = head.target.decode("latin-1")
        try:
            parts = urlsplit(target)
        except ValueError:  # "//x[": urlsplit reads a network location with an unbalanced "["
            raise _Reject(error(400, "malformed request target")) from None
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in head.headers}
        try:
            query = parse_qs(parts.query, max_num_fields=50)
        except ValueError:
            query = {}
        return Request(head.method.decode("latin-1").upper(), target, parts.path or "/", query, headers, body,
                       self.peer_ip)

    # --- writing ------------------------------------------------------------------------------

    async def _send(self, response: Response, *, head_only: bool, close: bool) -> None:
        headers = [
            ("Content-Type", response.content_type),
            ("Content-Length", str(len(response.body))),
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Server", "mailcove"),
            *response.headers,
        ]
        if close:
            headers.append(("Connection", "close"))
        reason = REASONS.get(response.status, "")
        try:
            out = self.h.send(h11.Response(status_code=response.status, headers=headers, reason=reason))
            if not head_only and response.body:
                out += self.h.send(h11.Data(data=response.body))
            out += self.h.send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            if self.h.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
                return  # a response already went out; nothing sensible can follow it
            # h11 refuses to answer a request it could not parse; the error still deserves words.
            lines = [f"HTTP/1.1 {response.status} {reason}"] + [f"{k}: {v}" for k, v in headers]
            out = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head_only else response.body)
        with contextlib.suppress(ConnectionError):
            self.writer.write(out)
            await self.writer.drain()


def _has_header(headers: list[tuple[bytes, bytes]], name: bytes) -> bool:
    return any(k.lower() == name for k, _ in headers)


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for k, v in headers:
        if k.lower() == b"content-length":
            try:
                return int(v)
            except ValueError:
                return None
    return None
