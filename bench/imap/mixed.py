"""(d) The mixed load: N concurrent clients, each looping over sessions of login, SELECT, then 20
commands drawn at random (FETCH of headers and flags, STORE, APPEND, expunge of a message it
appended, IDLE for 50 ms, NOOP), then LOGOUT. Several clients share each mailbox, so every server
also has to send EXISTS/EXPUNGE/FETCH updates between sessions.

Hand-written because Debian has no imaptest. Appends and expunges balance each other, so the
mailboxes keep their size through the run.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bench.imap.client import Client, ImapError
from bench.imap.fill import message

COMMANDS_PER_SESSION = 20
_APPENDUID = re.compile(rb"\[APPENDUID \d+ (\d+)\]")


@dataclass
class MixedResult:
    commands: int
    logins: int
    errors: int
    seconds: float

    @property
    def commands_per_s(self) -> float:
        return self.commands / self.seconds

    @property
    def logins_per_s(self) -> float:
        return self.logins / self.seconds

    def __str__(self) -> str:
        return (
            f"{self.commands_per_s:.0f} commands/s, {self.logins_per_s:.1f} logins/s, "
            f"{self.errors} errors in {self.seconds:.1f} s"
        )


async def run(
    host: str, port: int, users: Sequence[str], password: str, *, clients: int, seconds: float
) -> MixedResult:
    counts = {"commands": 0, "logins": 0, "errors": 0}
    stop_at = time.perf_counter() + seconds

    async def client(i: int) -> None:
        rnd = random.Random(i)
        user = users[i % len(users)]
        while time.perf_counter() < stop_at:
            appended: list[int] = []
            try:
                c = await Client.connect(host, port)
                await c.login(user, password)
                counts["logins"] += 1
                await c.command(b"SELECT INBOX")
                counts["commands"] += 2
                for _ in range(COMMANDS_PER_SESSION):
                    if time.perf_counter() >= stop_at:
                        break
                    op = rnd.random()
                    if op < 0.40:
                        n = rnd.randrange(1, 880)
                        await c.command(b"FETCH %d:%d (FLAGS BODY.PEEK[HEADER.FIELDS (From Subject)])" % (n, n + 9))
                    elif op < 0.60:
                        n = rnd.randrange(1, 900)
                        sign = b"+" if rnd.random() < 0.5 else b"-"
                        await c.command(b"STORE %d %sFLAGS (\\Flagged)" % (n, sign))
                    elif op < 0.75:
                        msg = message(rnd.randrange(10**6), rnd.randrange(500, 4000))
                        c.n += 1
                        tag = b"b%d" % c.n
                        c.w.write(tag + b" APPEND INBOX () {%d+}\r\n" % len(msg) + msg + b"\r\n")
                        while True:
                            line = await c.read_response()
                            if line.startswith(tag + b" "):
                                if not line.startswith(tag + b" OK"):
                                    raise ImapError(line.decode(errors="replace"))
                                m = _APPENDUID.search(line)
                                if m:
                                    appended.append(int(m.group(1)))
                                break
                    elif op < 0.90 and appended:
                        uid = appended.pop()
                        await c.command(b"UID STORE %d +FLAGS.SILENT (\\Deleted)" % uid)
                        await c.command(b"UID EXPUNGE %d" % uid)
                        counts["commands"] += 1
                    elif op < 0.97:
                        await c.idle_start()
                        await asyncio.sleep(0.05)
                        await c.idle_done()
                    else:
                        await c.command(b"NOOP")
                    counts["commands"] += 1
                # leave the mailbox as found: expunge what this session appended
                for uid in appended:
                    await c.command(b"UID STORE %d +FLAGS.SILENT (\\Deleted)" % uid)
                    await c.command(b"UID EXPUNGE %d" % uid)
                    counts["commands"] += 2
                await c.command(b"LOGOUT")
                counts["commands"] += 1
                c.close()
            except (ImapError, ConnectionError, OSError, asyncio.IncompleteReadError) as exc:
                counts["errors"] += 1
                if counts["errors"] <= 3:
                    print(f"    mixed client {i}: {exc}", flush=True)
                await asyncio.sleep(0.05)

    for u in users:  # untimed: the first login of each user fills mailcove's verify cache
        c = await Client.connect(host, port)
        await c.login(u, password)
        await c.logout()
    stop_at = time.perf_counter() + seconds
    t0 = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    return MixedResult(counts["commands"], counts["logins"], counts["errors"], time.perf_counter() - t0)
