"""Rules as sans-IO generators that yield typed statements: the store's and the directory's.

A rule (store/rules/, directory/rules.py) is the one place a write's logic lives: what to check,
which error to raise, what to lock, which change to announce. It does no I/O. It yields a
`Statement` (a small frozen dataclass naming one step against the database: "this account's row,
locked", "these messages, deleted") and is sent back that statement's result:

    def set_quota(user, max_bytes, max_messages):
        if (yield SetQuota(user, max_bytes, max_messages)) == 0:
            raise AccountNotFound(f"no such account: {user}")

Each backend keeps only what differs: a `Handlers` table giving every statement its SQL (and
its dialect's way to run it), and a driver that runs rules: SQLite's group-commit writer thread
with `run` (synchronous), PostgreSQL's pooled transactions with `run_async`. This is h11's idea
applied to storage: the logic is written once and tested through both drivers by one contract
suite, and a backend cannot drift from it because it never holds a copy.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
H = TypeVar("H", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Statement:
    """One step a rule asks of the database. Subclasses carry its arguments as fields."""


# A rule: yields statements, is sent each one's result, returns its own result.
Rule = Generator[Statement, Any, T]


class Handlers(Generic[H]):
    """A backend's statement table: `@handlers.on(SomeStatement)` registers the function that
    runs it. Looking up an unregistered statement is a KeyError naming it."""

    def __init__(self) -> None:
        self._table: dict[type[Statement], H] = {}

    def on(self, kind: type[Statement]) -> Callable[[H], H]:
        def register(fn: H) -> H:
            if kind in self._table:
                raise ValueError(f"{kind.__name__} is handled twice")
            self._table[kind] = fn
            return fn

        return register

    def __getitem__(self, kind: type[Statement]) -> H:
        return self._table[kind]

    def missing(self, kinds: Iterable[type[Statement]]) -> list[str]:
        """The names of the statements among `kinds` this table has no handler for."""
        return sorted(k.__name__ for k in kinds if k not in self._table)


def statements_of(namespace: dict[str, Any]) -> list[type[Statement]]:
    """Every Statement subclass defined in a module's namespace (for completeness tests)."""
    return [v for v in namespace.values() if isinstance(v, type) and issubclass(v, Statement) and v is not Statement]


def run(rule: Rule[T], execute: Callable[[Statement], Any]) -> T:
    """Drive `rule` to its end, executing each statement it yields with `execute`. An exception
    from `execute` ends the rule (it is closed at the statement it was waiting on)."""
    send = rule.send
    result: Any = None
    try:
        while True:
            result = execute(send(result))
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    finally:
        rule.close()


async def run_async(rule: Rule[T], execute: Callable[[Statement], Awaitable[Any]]) -> T:
    """`run` for a driver whose statements are awaited (asyncpg)."""
    send = rule.send
    result: Any = None
    try:
        while True:
            result = await execute(send(result))
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    finally:
        rule.close()
