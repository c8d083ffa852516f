from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailcove.config.settings import AuthSettings
from mailcove.directory import SqliteDirectory

# Cheap argon2 parameters: the tests check behaviour, not cost.
FAST = AuthSettings(argon2_time_cost=1, argon2_memory_kib=1024, argon2_parallelism=1, verify_workers=2)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "directory.db"


@pytest.fixture
async def directory(db_path: Path) -> AsyncIterator[SqliteDirectory]:
    d = SqliteDirectory(db_path, auth=FAST, postmaster="admin@hamap.local")
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
