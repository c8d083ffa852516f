"""The aiosmtpd baseline: the plain-Python way to accept mail and store it durably in a Maildir.

    python -m bench.smtp.aiosmtpd_peer --port PORT --maildir DIR

Each message is written to DIR/tmp, fsynced, renamed into DIR/new, and DIR/new is fsynced,
all before the 250 reply: the same promise mailcove makes (an acknowledged message survives a
crash). The write runs in asyncio's default thread pool (`run_in_executor`), so one session's
fsync does not stop the others and concurrent fsyncs can share the file system's journal
commits: the competent plain-Python way, without group commit of its own. `--inline` does it on
the event loop instead (the naive way: every fsync stops every session). aiosmtpd itself reads
the body line by line. The default asyncio event loop, as shipped.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
import socket
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session


class DurableMaildir:
    def __init__(self, root: Path, inline: bool = False) -> None:
        self.inline = inline
        for sub in ("tmp", "new", "cur"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self.tmp = root / "tmp"
        self.new = root / "new"
        self.counter = itertools.count()
        self.prefix = f"{os.getpid()}.{socket.gethostname()}"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        if self.inline:
            self.write(data)
        else:
            await asyncio.get_running_loop().run_in_executor(None, self.write, data)
        return "250 2.0.0 OK stored"

    def write(self, data: bytes) -> None:
        name = f"{next(self.counter)}.{self.prefix}"
        tmp = self.tmp / name
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, self.new / name)
        dfd = os.open(self.new, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


async def serve(host: str, port: int, maildir: Path, inline: bool) -> None:
    handler = DurableMaildir(maildir, inline)
    loop = asyncio.get_running_loop()

    def factory() -> Any:
        return SMTP(handler, hostname="bench.test", data_size_limit=64 * 1024 * 1024)

    server = await loop.create_server(factory, host, port, backlog=512)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()
    server.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--maildir", type=Path, required=True)
    ap.add_argument("--inline", action="store_true", help="write and fsync on the event loop")
    args = ap.parse_args()
    asyncio.run(serve(args.host, args.port, args.maildir, args.inline))


if __name__ == "__main__":
    main()
