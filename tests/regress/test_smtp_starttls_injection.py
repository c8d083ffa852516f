"""STARTTLS command injection (CVE-2011-0411 class): commands pipelined in plaintext after
STARTTLS must be discarded, never executed as if they came over TLS."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "smtp"))
from smtp_lab import insecure_context, start_lab


def _reply(f) -> bytes:
    out = b""
    while True:
        line = f.readline()
        out += line
        if not line or line[3:4] != b"-":
            return out


def test_plaintext_after_starttls_is_discarded(serve_factory):
    lab = start_lab(serve_factory)
    host, port = lab.srv.address("smtp")
    s = socket.create_connection((host, port), timeout=10)
    f = s.makefile("rb")
    assert _reply(f).startswith(b"220")
    s.sendall(b"EHLO x\r\n")
    _reply(f)
    s.sendall(b"STARTTLS\r\nMAIL FROM:<injected@example.org>\r\nHELP\r\n")
    assert _reply(f).startswith(b"220 2.0.0")
    f.close()
    t = insecure_context().wrap_socket(s, server_hostname="mx1.hamap.local")
    tf = t.makefile("rb")
    t.sendall(b"NOOP\r\n")
    # Had the injected commands run, their replies (250 for MAIL, 214 for HELP) would come first.
    assert _reply(tf).startswith(b"250 2.0.0 OK")
    # And the state was reset: no transaction, no EHLO (RFC 3207 4.2).
    t.sendall(b"RCPT TO:<a@hamap.local>\r\n")
    assert _reply(tf).startswith(b"503")
    t.sendall(b"QUIT\r\n")
    assert _reply(tf).startswith(b"221")
    t.close()
