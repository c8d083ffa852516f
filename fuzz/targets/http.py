"""HTTP: web/http.py's connection loop (h11 underneath; the limits, smuggling guards, keep-alive
and error answers are ours) with the real routing and documents of web/server.py's WebApp, so
autodiscover's XML parsing (web/documents.py, defusedxml) runs on the fuzzed bodies too. The
socket is a scripted reader (the input's reads, then EOF) and a writer that collects the output.

The documented error path is an HTTP error response (400, 404, 405, 408, 413, 431, 501) followed
by a close. A finding is an exception out of `serve()`, an exception in the application (the
connection would hide it as a 500 and a logged traceback), or output that is not HTTP/1.1."""

from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path
from types import SimpleNamespace

from fuzz.common import Finding, seed, split
from mailcove.config.settings import AuthSettings, ListenSettings, Settings
from mailcove.web.http import HttpConnection, Limits, Request, Response
from mailcove.web.server import WebApp

INSTRUMENT = ["mailcove.web", "h11", "defusedxml"]
MODULES = ["src/mailcove/web/http.py", "src/mailcove/web/documents.py", "src/mailcove/web/server.py",
           "src/mailcove/web/clientconfig.py", "src/mailcove/web/mtasts.py"]

LIMITS = Limits()  # the defaults of [web]
SMALL = Limits(max_header_bytes=256, max_body_bytes=64, max_requests=3)
# policy bit 0x02: a client slower than the deadlines (each read after the first waits 2 ms, the
# request and keep-alive deadlines are 1 ms), so the 408 and idle-close paths run too
SLOW_READ = 0.002
SLOW = Limits(request_timeout=0.001, keepalive_timeout=0.001)

_AUTODISCOVER = (b'<?xml version="1.0" encoding="utf-8"?>\r\n'
                 b'<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">'
                 b"<Request><EMailAddress>alice@example.org</EMailAddress><AcceptableResponseSchema>"
                 b"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
                 b"</AcceptableResponseSchema></Request></Autodiscover>")


def _post(path: bytes, body: bytes, extra: bytes = b"") -> bytes:
    return (b"POST " + path + b" HTTP/1.1\r\nHost: autodiscover.example.org\r\nContent-Type: text/xml\r\n"
            + extra + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def _chunked(body: bytes) -> bytes:
    half = len(body) // 2
    return b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (half, body[:half], len(body) - half, body[half:])


SESSIONS = [
    b"GET /.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=alice%40example.org HTTP/1.1\r\n"
    b"Host: autoconfig.example.org\r\nUser-Agent: Thunderbird\r\n\r\n"
    b"GET /mail/config-v1.1.xml HTTP/1.1\r\nHost: autoconfig.example.org\r\n\r\n"
    b"HEAD /apple/mobileconfig?emailaddress=alice@example.org HTTP/1.1\r\nHost: example.org\r\n\r\n"
    b"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: mta-sts.example.org\r\nConnection: close\r\n\r\n",
    _post(b"/autodiscover/autodiscover.xml", _AUTODISCOVER)
    + _post(b"/Autodiscover/Autodiscover.xml", _AUTODISCOVER.replace(b"utf-8", b"UTF-7"))
    + _post(b"/AutoDiscover/AutoDiscover.xml", b"<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>"),
    b"POST /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: example.org\r\nTransfer-Encoding: chunked\r\n"
    b"Expect: 100-continue\r\n\r\n" + _chunked(_AUTODISCOVER) + b"GET /nothing?a=1&a=2&b HTTP/1.1\r\nHost: x\r\n\r\n"
    b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\nDELETE /apple/mobileconfig HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    b"GET /hidden HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\nGET /apple/mobileconfig?emailaddress=%C3%A4@[127.0.0.1] HTTP/1.1\r\nHost: [::1]:80\r\n"
    b"X-Folded: a\r\n b\r\n\r\n",
    b"GET /mail/config-v1.1.xml?emailaddress=bob HTTP/1.1\r\nHost: www.mx1.example.org.\r\n\r\n"
    b"POST /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n",
]
SEEDS = [seed(s) for s in SESSIONS] + [seed(SESSIONS[0], 0, 9), seed(SESSIONS[1], 0x01, 0),
                                       seed(SESSIONS[2], 0, 40), seed(SESSIONS[0], 0x02, 30),
                                       seed(SESSIONS[0], 0x04, 0)]
TOKENS = [b"GET ", b"POST ", b"HEAD ", b" HTTP/1.1\r\n", b" HTTP/1.0\r\n", b"Host: ", b"Content-Length: ",
          b"Transfer-Encoding: chunked\r\n", b"Connection: close\r\n", b"Connection: keep-alive\r\n",
          b"Expect: 100-continue\r\n", b"\r\n\r\n", b"0\r\n\r\n", b"/autodiscover/autodiscover.xml",
          b"/.well-known/autoconfig/mail/config-v1.1.xml", b"/mail/config-v1.1.xml", b"/apple/mobileconfig",
          b"/.well-known/mta-sts.txt", b"?emailaddress=", b"mta-sts.", b"autoconfig.", b"example.org",
          b"//", b"[", b"]", b"[::1]", b"#", b"http://", b"*",
          b"<EMailAddress>", b"</EMailAddress>", b"<AcceptableResponseSchema>", b"<?xml version=\"1.0\"",
          b" encoding=\"", b"<!DOCTYPE", b"<!ENTITY", b"xmlns=\"", b"&amp;", b"]]>", b"<![CDATA[", b"%40",
          b"%00"]

logging.getLogger("mailcove.web").disabled = True
_DATA_DIR = Path(tempfile.gettempdir()) / "mailcove-fuzz-http-no-such-dir"


class _Directory:
    async def is_local_domain(self, domain: str) -> bool:
        return domain in ("example.org", "mx.example.org")


_settings = Settings(
    hostname="mx.example.org", data_dir=_DATA_DIR, auth=AuthSettings(allow_plaintext=True),
    listen=ListenSettings(smtp=["127.0.0.1:25"], submission=["127.0.0.1:587"], submissions=[],
                          imap=["127.0.0.1:143"], imaps=[], pop3=["127.0.0.1:110"], pop3s=[]))
_app = WebApp(SimpleNamespace(settings=_settings, directory=_Directory()))  # type: ignore[arg-type]
_loop: asyncio.AbstractEventLoop | None = None


class _Reader:
    def __init__(self, reads: list[bytes], delay: float = 0.0) -> None:
        self.reads = reads
        self.delay = delay
        self.first = True

    async def read(self, n: int) -> bytes:
        if self.delay and not self.first:
            await asyncio.sleep(self.delay)
        self.first = False
        if not self.reads:
            return b""
        data = self.reads.pop(0)
        if len(data) > n:
            self.reads.insert(0, data[n:])
            data = data[:n]
        return data


class _Writer:
    def __init__(self) -> None:
        self.out = bytearray()

    def write(self, data: bytes) -> None:
        self.out += data

    async def drain(self) -> None:
        return None


async def _serve(reads: list[bytes], limits: Limits, *, delay: float = 0.0,
                 closing: bool = False) -> tuple[bytes, list[BaseException]]:
    errors: list[BaseException] = []

    async def app(req: Request) -> Response:
        try:
            return await _app(req)
        except Exception as exc:
            errors.append(exc)
            raise

    writer = _Writer()
    stop = asyncio.Event()
    if closing:  # server shutdown: the request in progress is answered, then the connection closes
        stop.set()
    await HttpConnection(_Reader(reads, delay), writer, app, limits, closing=stop).serve()  # type: ignore[arg-type]
    return bytes(writer.out), errors


def one_input(data: bytes) -> None:
    global _loop
    if _loop is None:
        _loop = asyncio.new_event_loop()
    policy, reads = split(data)
    limits = SMALL if policy & 0x01 else SLOW if policy & 0x02 else LIMITS
    out, errors = _loop.run_until_complete(_serve([r for r in reads if r], limits,
                                                  delay=SLOW_READ if policy & 0x02 else 0.0,
                                                  closing=bool(policy & 0x04)))
    if errors:
        raise errors[0]
    if out and not out.startswith(b"HTTP/1.1 "):
        raise Finding(f"output that is not an HTTP/1.1 response: {out[:200]!r}")
