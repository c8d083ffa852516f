"""Talking to mailcove's local Unix sockets (the submit and control sockets) from a test."""

from __future__ import annotations

import socket
from pathlib import Path


def connect(path: Path | str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(15)
    s.connect(str(path))
    return s


def answer(s: socket.socket) -> bytes:
    """One CRLF-terminated reply, or what came before the server closed."""
    out = b""
    while not out.endswith(b"\r\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        out += chunk
    return out
