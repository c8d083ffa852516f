"""Every statement the rules may yield has its SQL in every backend (store/sansio.py).

The rules (store/rules/, directory/rules.py) are written once; a backend is only a table of
statement handlers and a driver. A statement added to the rules without a handler in one backend
would fail only when some rule first yields it, so the tables are checked whole here."""

from __future__ import annotations

import pytest

from mailcove.directory import rules as directory_rules
from mailcove.directory import sql as directory_sqlite
from mailcove.store.rules import statements as store_statements
from mailcove.store.sqlite import statements as store_sqlite


def test_sqlite_store_runs_every_statement() -> None:
    assert store_sqlite.HANDLERS.missing(store_statements.STATEMENTS) == []


def test_postgres_store_runs_every_statement() -> None:
    pytest.importorskip("asyncpg")
    from mailcove.store.postgres import statements as store_postgres

    assert store_postgres.HANDLERS.missing(store_statements.STATEMENTS) == []


def test_sqlite_directory_runs_every_statement() -> None:
    assert directory_sqlite.HANDLERS.missing(directory_rules.STATEMENTS) == []


def test_postgres_directory_runs_every_statement() -> None:
    from mailcove.directory import postgres as directory_postgres

    assert directory_postgres.HANDLERS.missing(directory_rules.STATEMENTS) == []


def test_the_vocabularies_are_not_empty() -> None:
    # statements_of() found the classes (a renamed base would make every table look complete)
    assert len(store_statements.STATEMENTS) > 50
    assert len(directory_rules.STATEMENTS) > 25
