"""The PostgreSQL schema: `mailcove db migrate` applies it once, and a store refuses an old one."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mailcove.store.postgres.schema import MIGRATIONS, SchemaError, check_schema, current_version
from pg_testing import PgCluster


async def test_template_is_migrated_and_checked(pg_dsn: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(pg_dsn)
    try:
        assert await current_version(conn) == len(MIGRATIONS)
        await check_schema(conn)
        await conn.execute("UPDATE schema_version SET version = 0 WHERE component = 'store'")
        with pytest.raises(SchemaError, match="run `mailcove db migrate`"):
            await check_schema(conn)
    finally:
        await conn.close()


def test_db_migrate_cli_creates_then_is_idempotent(pg_cluster: PgCluster) -> None:
    name = f"fresh_{id(pg_cluster) % 100000}"
    from pg_testing import _run_async

    _run_async(pg_cluster._admin(f"DROP DATABASE IF EXISTS {name}"))
    _run_async(pg_cluster._admin(f"CREATE DATABASE {name}"))
    try:
        cmd = [sys.executable, "-m", "mailcove", "db", "migrate", "--dsn", pg_cluster.dsn(name)]
        first = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert first.returncode == 0, first.stderr
        assert f"store: applied migration(s) {', '.join(str(i + 1) for i in range(len(MIGRATIONS)))}" in first.stdout
        again = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert again.returncode == 0 and "store: up to date" in again.stdout
    finally:
        pg_cluster.drop_database(name)


def test_db_migrate_without_a_dsn_says_so(tmp_path) -> None:  # type: ignore[no-untyped-def]
    r = subprocess.run(
        [sys.executable, "-m", "mailcove", "--data", str(tmp_path), "db", "migrate"],
        capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 2 and "set [store] dsn" in r.stderr
