"""web/http.py's connection loop over real asyncio streams on loopback, fed arbitrary bytes
(Hypothesis): every input ends in HTTP responses or a clean close, never an exception, and a
good request on a fresh connection is still answered afterwards."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailcove.web.http import HttpConnection, Limits, Request, Response

LIMITS = Limits(max_header_bytes=1024, max_body_bytes=256, request_timeout=0.3, keepalive_timeout=0.3,
                max_requests=5)
PIECES = [b"GET ", b"POST ", b"HEAD ", b"/ ", b"/mail/config-v1.1.xml?emailaddress=a@b ", b"HTTP/1.1\r\n",
          b"HTTP/1.0\r\n", b"Host: x\r\n", b"Content-Length: 5\r\n", b"Content-Length: -1\r\n",
          b"Transfer-Encoding: chunked\r\n", b"\r\n", b"5\r\nhello\r\n0\r\n\r\n", b"hello", b"\x00\xff", b"\n",
          b"Connection: close\r\n", b"Expect: 100-continue\r\n", b" folded\r\n"]


async def app(req: Request) -> Response:
    return Response(200, b"ok " + req.method.encode() + b" " + str(len(req.body)).encode())


async def exchange(data: bytes) -> tuple[bytes, list[BaseException]]:
    errors: list[BaseException] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await HttpConnection(reader, writer, app, LIMITS).serve()
        except BaseException as exc:  # what the test is looking for
            errors.append(exc)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(data)
        await writer.drain()
        out = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        r2, w2 = await asyncio.open_connection("127.0.0.1", port)
        w2.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        again = await asyncio.wait_for(r2.read(), 5)
        w2.close()
        assert again.startswith(b"HTTP/1.1 200 "), again
    finally:
        server.close()
        await server.wait_closed()
    return out, errors


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from(PIECES), st.binary(max_size=40)), max_size=12))
def test_any_input_gets_responses_or_a_clean_close(parts: list[bytes]) -> None:
    out, errors = asyncio.run(exchange(b"".join(parts)))
    assert not errors, errors
    assert out == b"" or out.startswith(b"HTTP/1.1 "), out[:200]
