"""What only the PostgreSQL directory has: NOTIFY reaching another process, surviving the loss
of its connections (a database restart or failover), and the schema check at start."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest

from mailcove.directory import Local

from .conftest import FAST

asyncpg = pytest.importorskip("asyncpg")


async def _wait_for(pred, timeout: float = 5.0) -> float:  # type: ignore[no-untyped-def]
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if await pred():
            return time.monotonic() - t0
        await asyncio.sleep(0.02)
    raise AssertionError("change not visible in time")


async def test_other_process_change_arrives_by_notify(pg_dsn: str) -> None:
    from mailcove.directory.postgres import PostgresDirectory

    # reload_interval 60 s: only the NOTIFY can make the change visible within the test.
    server = PostgresDirectory(pg_dsn, auth=FAST, reload_interval=60.0)
    await server.start()
    try:
        assert not await server.is_local_domain("proc.example")
        code = (
            "import asyncio, sys\n"
            "from mailcove.directory.postgres import PostgresDirectory\n"
            "async def main():\n"
            "    async with PostgresDirectory(sys.argv[1]) as d:\n"
            "        await d.add_domain('proc.example')\n"
            "asyncio.run(main())\n"
        )
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        await asyncio.to_thread(subprocess.run, [sys.executable, "-c", code, pg_dsn], check=True, env=env)
        await _wait_for(lambda: server.is_local_domain("proc.example"))
    finally:
        await server.close()


async def test_survives_losing_its_connections(pg_dsn: str) -> None:
    from mailcove.directory.postgres import PostgresDirectory

    d = PostgresDirectory(pg_dsn, auth=FAST, reload_interval=0.2)
    admin = PostgresDirectory(pg_dsn, auth=FAST)
    await d.start()
    await admin.start()
    try:
        await admin.add_domain("hamap.local")
        await _wait_for(lambda: d.is_local_domain("hamap.local"))
        # What a restart or failover does to this node: every connection of `d` is cut.
        conn = await asyncpg.connect(pg_dsn)
        try:
            pids = [d._pgconn.pg.get_server_pid(), d._listener.get_server_pid()]  # type: ignore[union-attr]
            await conn.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", pids)
        finally:
            await conn.close()
        await asyncio.sleep(0.2)
        # Reads reconnect; a change made meanwhile is seen (by polling until LISTEN is back).
        await admin.add_user("a@hamap.local", "It1")
        await _wait_for(lambda: _resolves(d, "a@hamap.local"))
        # and writes through `d` work again
        await d.add_domain("second.example")
        assert await d.is_local_domain("second.example")
    finally:
        await admin.close()
        await d.close()


async def _resolves(d, address: str) -> bool:  # type: ignore[no-untyped-def]
    return await d.resolve(address) == Local(address)


async def test_refuses_an_unmigrated_database(pg_cluster) -> None:  # type: ignore[no-untyped-def]
    from mailcove.directory.postgres import PostgresDirectory
    from mailcove.store.postgres.schema import SchemaError

    conn = await asyncpg.connect(pg_cluster.dsn("postgres"))
    name = f"empty_{os.getpid()}"
    try:
        await conn.execute(f"CREATE DATABASE {name}")
        d = PostgresDirectory(pg_cluster.dsn(name), auth=FAST)
        with pytest.raises(SchemaError, match="db migrate"):
            await d.start()
        await d.close()
    finally:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await conn.close()
