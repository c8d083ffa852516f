"""Directory fixtures. Every test that builds its directory through `make_directory` (or uses
`directory` / `seeded`) runs on both backends: SQLite (a file in tmp_path) and PostgreSQL (a
fresh migrated database per test from tests/pg_testing.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from mailcove.config.settings import AuthSettings
from mailcove.directory import SqliteDirectory

# Cheap argon2 parameters: the tests check behaviour, not cost.
FAST = AuthSettings(argon2_time_cost=1, argon2_memory_kib=1024, argon2_parallelism=1, verify_workers=2)

BACKENDS = ("sqlite", "postgres")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "directory.db"


@pytest.fixture(params=BACKENDS)
def make_directory(request: pytest.FixtureRequest, db_path: Path) -> Callable[..., SqliteDirectory]:
    """`make_directory(**kwargs)`: a new (not started) directory on this test's database; two
    calls give two instances on the same data, as two processes or nodes would have."""
    if request.param == "postgres":
        from mailcove.directory.postgres import PostgresDirectory

        dsn = request.getfixturevalue("pg_dsn")

        def pg(**kw: Any) -> SqliteDirectory:
            return PostgresDirectory(dsn, **kw)

        return pg

    def lite(**kw: Any) -> SqliteDirectory:
        return SqliteDirectory(db_path, **kw)

    return lite


@pytest.fixture
async def directory(make_directory: Callable[..., SqliteDirectory]) -> AsyncIterator[SqliteDirectory]:
    d = make_directory(auth=FAST, postmaster="admin@hamap.local")
    await d.start()
    try:
        yield d
    finally:
        await d.close()


@pytest.fixture
async def seeded(directory: SqliteDirectory) -> SqliteDirectory:
    """The seed's lab: hamap.local with rocky9-3 and mx1.hamap.local as aliases, users a and b."""
    await directory.add_domain("hamap.local")
    await directory.add_domain("rocky9-3", alias_of="hamap.local")
    await directory.add_domain("mx1.hamap.local", alias_of="hamap.local")
    for name in ("a", "b", "admin"):
        await directory.add_user(f"{name}@hamap.local", "It1")
    return directory
