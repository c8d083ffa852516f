"""Changes made by another Directory instance (the admin CLI, in real life another process) must
reach a running directory within its reload interval ([directory] reload_interval, 0.5 s by
default). On a FakeClock: once the interval has passed, the next read sees the change."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from mailcove.core.clock import FakeClock
from mailcove.directory import Invalid, Local, SqliteDirectory
from mailcove.directory.access import make_rule
from mailcove.directory.api import Action, Tag

from .conftest import FAST


async def test_second_instance_changes_are_seen(make_directory) -> None:
    clock = FakeClock()
    server = make_directory(auth=FAST, reload_interval=0.5, clock=clock)
    admin = make_directory(auth=FAST)
    await server.start()
    await admin.start()
    try:
        assert not await server.is_local_domain("hamap.local")
        await admin.add_domain("hamap.local")
        await admin.add_user("a@hamap.local", "It1")
        await clock.advance(0.5)
        assert await _eventually(lambda: server.is_local_domain("hamap.local"))
        assert await server.resolve("a@hamap.local") == Local("a@hamap.local")
        assert await server.authenticate("a", "It1") is not None

        await admin.set_password("a@hamap.local", "New2")
        await clock.advance(0.5)
        assert await _eventually(lambda: _refused(server, "a", "It1"))
        assert await server.authenticate("a", "New2") is not None

        await admin.put_access_rules([make_rule(Tag.CONNECT, "127.0.0.2", "RELAY")])
        await clock.advance(0.5)
        assert await _eventually(lambda: _relays(server, "127.0.0.2"))

        await admin.delete_user("a@hamap.local")
        await clock.advance(0.5)
        assert await _eventually(lambda: _is_invalid(server.resolve("a@hamap.local")))
    finally:
        await admin.close()
        await server.close()


async def _eventually(check) -> bool:  # type: ignore[no-untyped-def]
    """SQLite sees the change at the first read once the interval has passed. PostgreSQL is told
    by a NOTIFY on its LISTEN connection (its interval is then only a safety net), which arrives
    over a real socket: give it up to 5 s of real time."""
    for _ in range(250):
        if await check():
            return True
        await asyncio.sleep(0.02)
    return False


async def _refused(d: SqliteDirectory, u: str, p: str) -> bool:
    return await d.authenticate(u, p) is None


async def _relays(d: SqliteDirectory, ip: str) -> bool:
    rule = await d.match_connect(ip)
    return rule is not None and rule.action is Action.RELAY


async def _is_invalid(coro) -> bool:  # type: ignore[no-untyped-def]
    return isinstance(await coro, Invalid)


async def test_other_process_changes_are_seen(db_path: Path) -> None:
    clock = FakeClock()
    server = SqliteDirectory(db_path, auth=FAST, reload_interval=0.5, clock=clock)
    await server.start()
    try:
        code = (
            "import asyncio, sys\n"
            "from mailcove.directory import SqliteDirectory\n"
            "async def main():\n"
            "    async with SqliteDirectory(sys.argv[1]) as d:\n"
            "        await d.add_domain('proc.example')\n"
            "asyncio.run(main())\n"
        )
        await asyncio.to_thread(subprocess.run, [sys.executable, "-c", code, str(db_path)], check=True)
        assert not await server.is_local_domain("proc.example")  # not looked for yet
        await clock.advance(0.5)
        assert await server.is_local_domain("proc.example")
    finally:
        await server.close()
