"""scan_prefixed: the description of a message stored as received with header lines served in
front of it (store.api.MessagePrefix) equals the scan of the bytes a client is served, whether it
is computed on the concatenation (small bodies) or by moving the offsets of the body's own scan
(large bodies, which are never copied to be described)."""

from __future__ import annotations

import mmap
import random
from pathlib import Path

import pytest

from mailcove.message import scanner
from mailcove.message.scanner import scan, scan_prefixed

TRACE = (b"Return-Path: <a@example.org>\r\n"
         b"Authentication-Results: mx.hamap.local;\r\n\tdkim=none;\r\n\tspf=pass smtp.mailfrom=a@example.org\r\n"
         b"Received: from client.example ([192.0.2.1])\r\n\tby mx.hamap.local (mailcove) with ESMTPS id ab12000001\r\n"
         b"\tfor <b@hamap.local>;\r\n\tThu, 1 Jan 2026 00:00:00 +0000\r\n")

MULTIPART = (b"From: a@example.org\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
             b"Content-Type: multipart/mixed; boundary=\"XX\"\r\n\r\npreamble\r\n--XX\r\n"
             b"Content-Type: text/plain\r\n\r\none\r\n--XX\r\nContent-Type: message/rfc822\r\n\r\n"
             b"Subject: inner\r\nFrom: c@example.net\r\n\r\ninner body\r\n--XX--\r\nepilogue\r\n")

BODIES = [
    b"Subject: x\r\nFrom: a@b.example\r\n\r\nline1\r\nline2\r\n",
    b"Subject: x\nFrom: a@b\n\nbody\n",  # bare LF
    b"Subject: x\r\n\r\nno trailing newline",
    b"Subject: x",  # header only, no newline at all
    b"Subject: x\r\n",
    b"",
    b"\r\nbody only\r\n",
    b"\n\nbare LF blank lines\n",
    b"\rodd\r\n\r\nb",
    b"Subject: x\r\nthis line has no colon\r\nmore\r\n",
    b"no header at all\r\n\r\nbody\r\n",
    b" leading continuation\r\nSubject: x\r\n\r\nb",
    b"\tleading tab continuation",
    b"Subject: caf\xe9\r\n\r\n\xff\xfe",
    b"Subject: folded\r\n  over\r\n\tlines\r\n\r\nb",
    b"--XX\r\nContent-Type: text/plain\r\n\r\nno header, a delimiter first\r\n--XX--\r\n",
    MULTIPART,
    b"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: in digest\r\n\r\nx\r\n--d--\r\n",
    b"Authentication-Results: mx.hamap.local; dmarc=pass (forged)\r\nSubject: s\r\n\r\nbody\r\n",
]


def _as_served(prefix: bytes, body: bytes, skip: int) -> bytes:
    return prefix + body[skip:]


@pytest.fixture
def shifting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every body takes the large-body path (offsets moved), not the concatenation."""
    monkeypatch.setattr(scanner, "HEAD_CHECK_MAX", 0)


@pytest.mark.parametrize("body", BODIES)
@pytest.mark.parametrize("prefix", [b"", TRACE, b"X-Authentication-Warning: h: u set sender\r\n"])
def test_a_trace_prefix_moves_offsets_only(shifting: None, prefix: bytes, body: bytes) -> None:
    assert scan_prefixed(prefix, body) == scan(prefix + body)


def _header_end(body: bytes) -> int:
    return scanner.first_fields(body, 0, len(body), frozenset())[1]


@pytest.mark.parametrize("body", BODIES)
def test_a_rewritten_header_block(shifting: None, body: bytes) -> None:
    """A filter's header block replacing the body's own: the same description as the bytes
    served, whether the rewrite changes fields the scanner reads (then the concatenation is
    scanned) or not (a forged Authentication-Results removed: offsets moved)."""
    end = _header_end(body)
    head = body[:end]
    rewrites = [
        b"".join(line for line in head.splitlines(keepends=True)
                 if not line.lower().startswith(b"authentication-results:")),
        head.replace(b"Subject: x", b"Subject: [SPAM] x"),
        b"Subject: replaced\r\nContent-Type: text/html\r\n\r\n",
        b"",
    ]
    for new_head in rewrites:
        prefix = TRACE + new_head
        assert scan_prefixed(prefix, body, end) == scan(_as_served(prefix, body, end)), new_head


def test_random_bodies(shifting: None) -> None:
    """Mutations of the bodies above (bytes replaced by line ends, colons, spaces, tabs, dashes)."""
    rng = random.Random(14)
    alphabet = b"\r\n:- \tX"
    for _ in range(3000):
        body = bytearray(rng.choice(BODIES))
        for _ in range(rng.randint(1, 6)):
            if body:
                body[rng.randrange(len(body))] = rng.choice(alphabet)
        data = bytes(body)
        assert scan_prefixed(TRACE, data) == scan(TRACE + data), data
        end = _header_end(data)
        rewritten = TRACE + data[:end].replace(b"X", b"Y")
        assert scan_prefixed(rewritten, data, end) == scan(rewritten + data[end:]), data


def test_a_large_file_body_is_described_without_a_copy(tmp_path: Path) -> None:
    """A body past HEAD_CHECK_MAX in an mmap: the result equals the concatenation's scan."""
    body = MULTIPART.replace(b"inner body", b"x" * (scanner.HEAD_CHECK_MAX + 1000))
    path = tmp_path / "body"
    path.write_bytes(body)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        info = scan_prefixed(TRACE, mm)
        end = _header_end(body)
        forged_removed = scan_prefixed(TRACE + body[:end], mm, end)
    assert info == scan(TRACE + body)
    assert forged_removed == info
