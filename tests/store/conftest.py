"""The store contract suite runs against every backend listed in BACKENDS. A new backend (the
PostgreSQL one) adds a factory here and must pass every test unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from mailcove.store.api import MailStore
from mailcove.store.sqlite import SqliteStore


def _sqlite(tmp_path: Path, **kw: object) -> MailStore:
    return SqliteStore(tmp_path / "data", change_poll_ms=20, **kw)  # type: ignore[arg-type]


BACKENDS: dict[str, Callable[..., MailStore]] = {"sqlite": _sqlite}


@pytest.fixture(params=sorted(BACKENDS))
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., MailStore]:
    factory = BACKENDS[request.param]
    return lambda **kw: factory(tmp_path, **kw)


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
