"""Scanner timings: ``.venv/bin/python -m mailcove.message.bench``.

Compares `scan` with the stdlib parser (compat32 and policy.default) on a typical 1 KB single-part
message and a ~10 KB multipart, then scans a 50 MB message through mmap.

Figures from one run on the shared 2-core build machine (loaded by other jobs, so the stdlib figures
are ~2.5x the unloaded ones in DESIGN.md §5; compare within a run):

    1 KB single part (1266 bytes): scan 93.6 us, email compat32 99.5 us, policy.default 716.9 us
    multipart with 6 KB attachment (9258 bytes): scan 275.8 us, compat32 595.5 us, policy.default 4895 us
    53.1 MB multipart via mmap: scan 25.2 ms
    52.4 MB text/plain (line count) as bytes: scan 40.5 ms

The 1 KB case only ties compat32 (which gives no offsets, envelope or address parsing). A timeit
breakdown of one earlier run put ENVELOPE building (address lists) at roughly a fifth to a third
of the total; the rest is spread over header splitting, parameters, dates, msg-ids and subject.
"""

from __future__ import annotations

import base64
import email
import email.policy
import mmap
import os
import tempfile
import time
from collections.abc import Callable

from mailcove.message.scanner import scan

HEADER = (
    b"Return-Path: <alice@example.org>\r\n"
    b"Received: from mx.example.org (mx.example.org [192.0.2.1])\r\n\tby mx1.hamap.local with ESMTPS id 4F2a;"
    b" Tue, 15 Nov 2022 08:12:31 +0000\r\n"
    b"From: Alice Example <alice@example.org>\r\n"
    b"To: Bob <bob@hamap.local>, carol@hamap.local\r\n"
    b"Cc: =?utf-8?q?D=C3=A9sir=C3=A9e?= <desiree@example.net>\r\n"
    b"Subject: Re: [team] Quarterly numbers =?utf-8?q?=E2=9C=93?=\r\n"
    b"Date: Tue, 15 Nov 2022 08:12:31 +0100\r\n"
    b"Message-ID: <20221115081231.4F2a@example.org>\r\n"
    b"In-Reply-To: <20221114.1@hamap.local>\r\n"
    b"References: <20221113.1@hamap.local> <20221114.1@hamap.local>\r\n"
    b"MIME-Version: 1.0\r\n"
)


def one_kb() -> bytes:
    body = b"".join(b"Line %02d of a plain text message, long enough to be typical.\r\n" % i for i in range(10))
    return HEADER + b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + body


def multipart() -> bytes:
    att = base64.encodebytes(os.urandom(6000)).replace(b"\n", b"\r\n")
    return (HEADER + b'Content-Type: multipart/mixed; boundary="=_outer"\r\n\r\npreamble\r\n--=_outer\r\n'
            b'Content-Type: multipart/alternative; boundary="=_alt"\r\n\r\n--=_alt\r\n'
            b"Content-Type: text/plain; charset=utf-8\r\n\r\nHello Bob,\r\nthe numbers.\r\n--=_alt\r\n"
            b"Content-Type: text/html; charset=utf-8\r\n\r\n<p>Hello Bob,</p><p>the numbers.</p>\r\n--=_alt--\r\n"
            b"\r\n--=_outer\r\nContent-Type: application/pdf; name=q.pdf\r\nContent-Transfer-Encoding: base64\r\n"
            b'Content-Disposition: attachment; filename="q.pdf"\r\n\r\n' + att + b"--=_outer--\r\n")


def per_call(fn: Callable[[], object], n: int) -> float:
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t) / n)
    return best


def main() -> None:
    for label, msg in (("1 KB single part", one_kb()), ("multipart with 6 KB attachment", multipart())):
        s = per_call(lambda m=msg: scan(m), 2000)
        c = per_call(lambda m=msg: email.message_from_bytes(m), 500)
        d = per_call(lambda m=msg: email.message_from_bytes(m, policy=email.policy.default), 200)
        print(f"{label} ({len(msg)} bytes): scan {s * 1e6:.1f} us, email compat32 {c * 1e6:.1f} us "
              f"(no offsets), email policy.default {d * 1e6:.1f} us")
    att = base64.encodebytes(os.urandom(37 * 1024 * 1024)).replace(b"\n", b"\r\n")
    big = multipart().replace(b"--=_outer--\r\n", b"--=_outer\r\nContent-Type: application/zip\r\n"
                              b"Content-Transfer-Encoding: base64\r\n\r\n" + att + b"--=_outer--\r\n")
    with tempfile.NamedTemporaryFile() as f:
        f.write(big)
        f.flush()
        with open(f.name, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            t = time.perf_counter()
            info = scan(mm)
            dt = time.perf_counter() - t
    print(f"{len(big) / 1e6:.1f} MB multipart via mmap: scan {dt * 1e3:.1f} ms ({info.part_count} parts)")
    big_text = HEADER + b"\r\n" + b"x" * 70 + b"\r\n"
    big_text = big_text + (b"y" * 76 + b"\r\n") * (50 * 1024 * 1024 // 78)
    t = time.perf_counter()
    scan(big_text)
    dt = time.perf_counter() - t
    print(f"{len(big_text) / 1e6:.1f} MB text/plain (line count) as bytes: scan {dt * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
