"""The store contract suite runs against every backend listed in BACKENDS. A new backend adds a
factory here and must pass every test unchanged.

The PostgreSQL factory gets a fresh migrated database per test (tests/pg_testing.py); without
PostgreSQL its tests skip locally and fail under CI=true."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from mailcove.store.api import MailStore
from mailcove.store.sqlite import SqliteStore


def _sqlite(request: pytest.FixtureRequest, tmp_path: Path, **kw: object) -> MailStore:
    return SqliteStore(tmp_path / "data", change_poll_ms=20, **kw)  # type: ignore[arg-type]


def _postgres(request: pytest.FixtureRequest, tmp_path: Path, **kw: object) -> MailStore:
    from mailcove.store.postgres import PostgresStore

    dsn = request.getfixturevalue("pg_dsn")
    return PostgresStore(dsn, data_dir=tmp_path / "data", pool_size=4, **kw)  # type: ignore[arg-type]


BACKENDS: dict[str, Callable[..., MailStore]] = {"sqlite": _sqlite, "postgres": _postgres}


@pytest.fixture(params=sorted(BACKENDS))
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., MailStore]:
    factory = BACKENDS[request.param]
    return lambda **kw: factory(request, tmp_path, **kw)


@pytest.fixture
async def store(make_store: Callable[..., MailStore]) -> AsyncIterator[MailStore]:
    s = make_store()
    await s.start()
    await s.create_account("a@hamap.local")
    await s.create_account("b@hamap.local")
    try:
        yield s
    finally:
        await s.close()
