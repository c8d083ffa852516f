"""HTTP request smuggling and parser confusion (issue 13, finding 12). A request with both
Content-Length and Transfer-Encoding gets 400 and the connection is closed (RFC 9112 section
6.1), so a request hidden in its body is never served. An autodiscover POST whose XML names an
encoding the parser cannot decode gets a 4xx, never a 500."""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "web"))
from web_testing import hamap_server, request

from mailcove_testing import ServerProcess

HIDDEN = b"GET /mail/config-v1.1.xml?emailaddress=a@hamap.local HTTP/1.1\r\nHost: x\r\n\r\n"


def _exchange(srv: ServerProcess, data: bytes) -> bytes:
    """Everything the server sends until it closes (a 5 s read timeout fails the test)."""
    s = socket.create_connection(srv.address("http"), timeout=5)
    try:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out
    finally:
        s.close()


def test_content_length_with_transfer_encoding_is_refused_and_closed(serve_factory: Any) -> None:
    srv = hamap_server(serve_factory)
    for path in (b"/autodiscover/autodiscover.xml", b"/mail/config-v1.1.xml"):
        for te, body in ((b"chunked", b"0\r\n\r\n"), (b"chunked", b"5\r\nhello\r\n0\r\n\r\n")):
            head = (b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nTransfer-Encoding: %s\r\n\r\n"
                    % (len(body) + len(HIDDEN), te))
            out = _exchange(srv, head + body + HIDDEN)
            assert out.startswith(b"HTTP/1.1 400 "), out[:200]
            assert out.count(b"HTTP/1.1 ") == 1, out  # the hidden request was never served
            assert b"connection: close" in out.lower()
            assert b"Content-Length and Transfer-Encoding" in out
    assert request(srv, "GET", "/mail/config-v1.1.xml?emailaddress=a@hamap.local")[0] == 200


def test_autodiscover_with_an_undecodable_encoding_is_a_client_error(serve_factory: Any) -> None:
    srv = hamap_server(serve_factory)
    for encoding in ("UTF-7", "x-no-such-encoding", "UTF-32", "utf-16", "cp1252"):
        body = (f'<?xml version="1.0" encoding="{encoding}"?>'
                '<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">'
                "<Request><EMailAddress>a@hamap.local</EMailAddress><AcceptableResponseSchema>"
                "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
                "</AcceptableResponseSchema></Request></Autodiscover>").encode()
        status, _, text = request(srv, "POST", "/autodiscover/autodiscover.xml", body=body,
                                  headers={"Content-Type": "text/xml"})
        if encoding == "cp1252":
            assert status == 200, text  # a single-byte encoding expat knows is still served
        else:
            assert 400 <= status < 500, (encoding, status, text)
    assert "Traceback" not in srv.logs()
