"""Filling the benchmark mailboxes quickly, with the same bytes on both servers.

mailcove: the store API directly (SqliteStore.deliver in concurrent batches, as bench/store does),
before `mailcove serve` starts. Dovecot: Maildir files written directly (with S= sizes in the
names so Dovecot need not stat them), then `doveadm force-resync`, which builds its index the way a
first SELECT would. Neither fill is timed.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import random
import time
from pathlib import Path

WORDS = (
    b"alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa "
    b"quebec romeo sierra tango uniform victor whiskey xray yankee zulu"
).split()


def message(n: int, size: int) -> bytes:
    """A plain message of about `size` bytes. Subjects carry topic{n % 97}; bodies carry
    needle{n % 1000}, so SEARCH finds a known share of the mailbox."""
    head = (
        b"From: Sender %d <sender%d@example.org>\r\nTo: bench@hamap.local\r\n"
        b"Subject: benchmark message %d topic%d\r\nMessage-ID: <%d.bench@example.org>\r\n"
        b"Date: Fri, 27 Nov 2026 10:%02d:%02d +0000\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=us-ascii\r\n\r\n" % (n % 50, n % 50, n, n % 97, n, n // 60 % 60, n % 60)
    )
    rnd = random.Random(n)
    lines = []
    total = len(head)
    marker_at = rnd.randrange(8)
    i = 0
    while total < size:
        words = b" ".join(rnd.choice(WORDS) for _ in range(10))
        if i == marker_at:
            words += b" needle%d" % (n % 1000)
        lines.append(words + b"\r\n")
        total += len(lines[-1])
        i += 1
    return head + b"".join(lines)


def sizes(count: int, small: bool, seed: int = 7) -> list[int]:
    rnd = random.Random(seed)
    if small:
        return [rnd.randrange(400, 1200) for _ in range(count)]
    # a mail-like spread: mostly a few KB, some tens of KB
    return [int(min(60_000, rnd.lognormvariate(8.3, 0.9))) + 300 for _ in range(count)]


def mailcove_fill(config: Path, data: Path, boxes: dict[str, list[bytes]], seen_every: int = 2) -> None:
    """Deliver into each user's INBOX with the store API; every seen_every-th message gets \\Seen."""
    from mailcove.config import load_settings
    from mailcove.store.api import DeliveryTarget
    from mailcove.store.factory import open_store

    async def go() -> None:
        store = open_store(load_settings(config, data_dir=str(data)), watch_changes=False)
        await store.start()
        try:
            for user, messages in boxes.items():
                target = [DeliveryTarget(user)]
                batch = 2000
                for start in range(0, len(messages), batch):
                    # gather: concurrent deliveries share one commit (the store's group commit)
                    await asyncio.gather(*(store.deliver(m, target) for m in messages[start : start + batch]))
                box = await store.get_mailbox(user, "INBOX")
                idx = await store.index(box.id)
                seen = [e.uid for i, e in enumerate(idx) if i % seen_every == 0]
                if seen:
                    await store.store_flags(box.id, seen, "+", ["\\Seen"])
        finally:
            await store.close()

    from mailcove_testing import run_async  # a fresh loop in a thread: callers may be inside one

    run_async(go())


def dovecot_fill(maildir_root: Path, boxes: dict[str, list[bytes]], seen_every: int = 2) -> None:
    """Write Maildir files: MAILROOT/USER/{cur,new,tmp}, owned by the mail uid."""
    nobody = pwd.getpwnam("nobody")
    now = int(time.time())
    for user, messages in boxes.items():
        root = maildir_root / user
        for sub in ("cur", "new", "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        cur = root / "cur"
        for i, m in enumerate(messages):
            flags = "S" if i % seen_every == 0 else ""
            # Maildir stores LF line ends; Dovecot serves CRLF and counts W= as the CRLF size.
            body = m.replace(b"\r\n", b"\n")
            name = f"{now}.M{i:07d}P{os.getpid()}.bench,S={len(body)},W={len(m)}:2,{flags}"
            with open(cur / name, "wb") as f:
                f.write(body)
            os.utime(cur / name, (now - len(messages) + i, now - len(messages) + i))
        for dirpath, dirnames, filenames in os.walk(maildir_root):
            os.chown(dirpath, nobody.pw_uid, nobody.pw_gid)
            for name in filenames:
                os.chown(os.path.join(dirpath, name), nobody.pw_uid, nobody.pw_gid)
            del dirnames
