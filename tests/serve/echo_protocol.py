"""A tiny line protocol plugged in for tests (run in the server process via `preload`), so the
listener machinery (binding, implicit TLS, STARTTLS, shutdown, SIGHUP) is tested apart from the
real protocols. It serves smtp (plain + STARTTLS) and imaps (implicit TLS): `mailcove serve` runs
`run_server(..., handlers=HANDLERS)`.

    S: HELLO <session id> tls=<0|1>
    C: STARTTLS     S: GO           (then the TLS handshake)
    C: SLOW <s>     S: DONE         (after <s> seconds, even if the server is shutting down)
    C: QUIT         S: BYE
    C: <other>      S: ECHO <other>
When the server shuts down, a session waiting for a command says "SHUTDOWN" and ends."""

from __future__ import annotations

import asyncio
import functools

from mailcove import app
from mailcove.cli import serve
from mailcove.net.listeners import Connection, Handler


async def echo(conn: Connection) -> None:
    w = conn.writer
    w.write(f"HELLO {conn.session_id} tls={int(conn.is_tls)}\r\n".encode())
    await w.drain()
    while True:
        line_task = asyncio.ensure_future(conn.reader.readline())
        closing_task = asyncio.ensure_future(conn.closing.wait())
        done, _ = await asyncio.wait({line_task, closing_task}, return_when=asyncio.FIRST_COMPLETED)
        if line_task not in done:
            line_task.cancel()
            w.write(b"SHUTDOWN\r\n")
            await w.drain()
            return
        closing_task.cancel()
        line = line_task.result()
        if not line:
            return
        cmd = line.decode().strip()
        conn.log.info("command %s", cmd.split(" ", 1)[0])
        if cmd == "STARTTLS":
            await conn.start_tls(b"GO\r\n")
        elif cmd.startswith("SLOW "):
            await asyncio.sleep(float(cmd[5:]))
            w.write(b"DONE\r\n")
        elif cmd == "QUIT":
            w.write(b"BYE\r\n")
            await w.drain()
            return
        else:
            w.write(f"ECHO {cmd}\r\n".encode())
        await w.drain()


HANDLERS: dict[str, Handler | None] = {"smtp": echo, "imaps": echo}
serve.run_server = functools.partial(app.run_server, handlers=HANDLERS)
