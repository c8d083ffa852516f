"""(e) Memory and CPU of many idle IDLE connections.

Memory is PSS (proportional set size, /proc/PID/smaps_rollup), summed over every process of the
server: Dovecot forks a process per IMAP connection and shares most pages between them, so summed
RSS would count those shared pages once per process. The figure per connection is
(PSS with N idle connections - PSS before they connected) / N.

CPU is the server's utime+stime over a quiet window while all N connections sit in IDLE, as a
percentage of one core.

Client sockets are bound to 127.0.0.x source addresses, a different block per run, so tens of
thousands of connections (and the TIME_WAIT left by earlier runs) never exhaust ephemeral ports.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.imap.client import Client, ImapError

CLK_TCK = os.sysconf("SC_CLK_TCK")
SETTLE_S = 5.0
CPU_WINDOW_S = 20.0
SOURCES_PER_BLOCK = 40


@dataclass
class IdleResult:
    connections: int
    baseline_kb: float
    loaded_kb: float
    processes: int
    cpu_percent: float
    connect_s: float
    retried: int = 0

    @property
    def pss_per_conn_kb(self) -> float:
        return (self.loaded_kb - self.baseline_kb) / self.connections

    def __str__(self) -> str:
        return (
            f"{self.connections} conns in {self.connect_s:.0f} s ({self.retried} retried): "
            f"PSS {self.baseline_kb / 1024:.1f} -> "
            f"{self.loaded_kb / 1024:.1f} MB over {self.processes} processes = {self.pss_per_conn_kb:.1f} KB/conn; "
            f"CPU {self.cpu_percent:.2f}% of a core"
        )


def pss_kb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
        except (OSError, ValueError):
            continue
    return float(total)


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
        except (OSError, ValueError, IndexError):
            continue
    return total


async def measure(peer: Any, user: str, password: str, n: int, *, tls: bool, source_block: int) -> IdleResult:
    await asyncio.sleep(1.0)
    baseline = pss_kb(peer.pids())
    port = peer.tls_port if tls else peer.port
    clients: list[Client] = []
    retried = [0]
    sem = asyncio.Semaphore(50)
    first_source = 2 + (source_block % 6) * SOURCES_PER_BLOCK

    async def one(i: int) -> None:
        async with sem:
            src = f"127.0.0.{first_source + i % SOURCES_PER_BLOCK}"
            for attempt in range(5):
                try:
                    c = await Client.connect(peer.host, port, tls=tls, local_addr=src, limit=8192)
                    await c.login(user, password)
                    await c.command(b"SELECT INBOX")
                    await c.idle_start()
                    clients.append(c)
                    return
                except (OSError, ConnectionError, asyncio.IncompleteReadError, ImapError):
                    # a refused or dropped connection under the connect storm is retried, and counted
                    retried[0] += 1
                    if attempt == 4:
                        raise
                    await asyncio.sleep(0.5)

    warm = await Client.connect(peer.host, peer.port)  # one login first: mailcove caches the verify
    await warm.login(user, password)
    await warm.logout()
    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    connect_s = time.perf_counter() - t0
    await asyncio.sleep(SETTLE_S)
    pids = peer.pids()
    loaded = pss_kb(pids)
    c0, w0 = cpu_ticks(pids), time.perf_counter()
    await asyncio.sleep(CPU_WINDOW_S)
    c1, w1 = cpu_ticks(peer.pids()), time.perf_counter()
    cpu = (c1 - c0) / CLK_TCK / (w1 - w0) * 100
    for c in clients:
        c.close()
    await asyncio.sleep(0.5)
    return IdleResult(n, baseline, loaded, len(pids), cpu, connect_s, retried[0])
