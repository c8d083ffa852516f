"""The aiosmtpd baseline: the plain-Python way to accept mail and store it durably in a Maildir.

    python -m bench.smtp.aiosmtpd_peer --port PORT --maildir DIR

Each message is written to DIR/tmp, fsynced, renamed into DIR/new, and DIR/new is fsynced,
all before the 250 reply: the same promise mailcove makes (an acknowledged message survives a
crash). The writes happen inline in the handler, as a typical aiosmtpd handler would do them;
aiosmtpd itself reads the body line by line. The default asyncio event loop, as shipped.
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
    def __init__(self, root: Path) -> None:
        for sub in ("tmp", "new", "cur"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self.tmp = root / "tmp"
        self.new = root / "new"
        self.counter = itertools.count()
        self.prefix = f"{os.getpid()}.{socket.gethostname()}"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
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
        return "250 2.0.0 OK stored"


async def serve(host: str, port: int, maildir: Path) -> None:
    handler = DurableMaildir(maildir)
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
    args = ap.parse_args()
    asyncio.run(serve(args.host, args.port, args.maildir))


if __name__ == "__main__":
    main()
