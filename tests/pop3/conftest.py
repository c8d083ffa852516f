"""Module-scoped POP3 servers with a pool of users: each test gets a user of its own, so tests
share a server start without seeing each other's mail or locks."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterator

import pytest

from mailcove_testing import ServerProcess

from .helpers import LAB, PASSWORD, shared_server

POOL = {f"u{i}@hamap.local": PASSWORD for i in range(16)}
_next_user: defaultdict[str, Iterator[int]] = defaultdict(itertools.count)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Lab mode ([auth] allow_plaintext = true), TLS on."""
    with shared_server(tmp_path_factory.mktemp("pop3-lab"), LAB, POOL) as srv:
        yield srv


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The defaults: TLS on, passwords only over TLS."""
    with shared_server(tmp_path_factory.mktemp("pop3-strict"), "", POOL) as srv:
        yield srv


@pytest.fixture
def user(request: pytest.FixtureRequest) -> str:
    n = next(_next_user[request.module.__name__])
    assert n < len(POOL), "tests/pop3/conftest.py POOL is too small for this module"
    return f"u{n}@hamap.local"


@pytest.fixture
def user2(request: pytest.FixtureRequest, user: str) -> str:
    """A second user for the same test."""
    return user_for(request)


def user_for(request: pytest.FixtureRequest) -> str:
    n = next(_next_user[request.module.__name__])
    assert n < len(POOL), "tests/pop3/conftest.py POOL is too small for this module"
    return f"u{n}@hamap.local"
