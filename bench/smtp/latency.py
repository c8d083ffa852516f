"""Per-message latency under load: N connections, each sending messages one after another.

    python -m bench.smtp.latency --port PORT --to RCPT [--conns 50] [--messages 40] [--size 1024]

Prints one JSON object: p50/p90/p99/max in milliseconds, the count, and the client-side rate.
A message's latency is from writing MAIL FROM to reading the reply after the final dot, so it
includes the whole transaction (MAIL, RCPT, DATA, body), unpipelined as smtp-source sends it.
The first --warmup messages of each connection are not counted.

Python costs hundreds of microseconds of CPU per message on the same cores as the server, so
this client is for latency only; throughput is measured with smtp-source.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

with_uvloop = True
try:
    import uvloop
except ImportError:  # the figures are still valid, the client just costs more CPU
    with_uvloop = False


def make_message(size: int, to: str, n: int) -> bytes:
    head = (
        f"From: <bench@example.org>\r\nTo: <{to}>\r\nSubject: latency {n}\r\n"
        f"Message-Id: <{n}.latency@example.org>\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n\r\n"
    ).encode()
    line = b"X" * 78 + b"\r\n"
    body = (line * (size // len(line) + 1))[:size]
    if not body.endswith(b"\r\n"):
        body = body[:-2] + b"\r\n"
    return head + body + b".\r\n"


class SmtpError(Exception):
    pass


async def reply(reader: asyncio.StreamReader, expect: bytes) -> None:
    while True:
        line = await reader.readline()
        if not line:
            raise SmtpError("connection closed")
        if line[3:4] != b"-":
            break
    if not line.startswith(expect):
        raise SmtpError(f"expected {expect!r}, got {line!r}")


async def client(host: str, port: int, to: str, size: int, count: int, warmup: int, out: list[float]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    await reply(reader, b"220")
    writer.write(b"EHLO latency.example.org\r\n")
    await reply(reader, b"250")
    mail = b"MAIL FROM:<bench@example.org>\r\n"
    rcpt = f"RCPT TO:<{to}>\r\n".encode()
    for i in range(count + warmup):
        msg = make_message(size, to, i)
        t0 = time.perf_counter()
        writer.write(mail)
        await reply(reader, b"250")
        writer.write(rcpt)
        await reply(reader, b"250")
        writer.write(b"DATA\r\n")
        await reply(reader, b"354")
        writer.write(msg)
        await reply(reader, b"250")
        if i >= warmup:
            out.append(time.perf_counter() - t0)
    writer.write(b"QUIT\r\n")
    await writer.drain()
    writer.close()


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


async def run(args: argparse.Namespace) -> dict[str, float]:
    out: list[float] = []
    t0 = time.perf_counter()
    await asyncio.gather(
        *(client(args.host, args.port, args.to, args.size, args.messages, args.warmup, out) for _ in range(args.conns))
    )
    elapsed = time.perf_counter() - t0
    out.sort()
    return {
        "count": len(out),
        "p50_ms": percentile(out, 50) * 1000,
        "p90_ms": percentile(out, 90) * 1000,
        "p99_ms": percentile(out, 99) * 1000,
        "max_ms": out[-1] * 1000 if out else float("nan"),
        "client_rate": (args.messages + args.warmup) * args.conns / elapsed,
        "uvloop": with_uvloop,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--to", required=True)
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--messages", type=int, default=40, help="counted messages per connection")
    ap.add_argument("--warmup", type=int, default=2, help="uncounted messages per connection first")
    ap.add_argument("--size", type=int, default=1024)
    args = ap.parse_args()
    result = uvloop.run(run(args)) if with_uvloop else asyncio.run(run(args))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
