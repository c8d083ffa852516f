"""Running admin use cases from a synchronous front end (the CLI), and presenting their results.

Kept here rather than in cli/ so every command module shares one way to report errors and print
lists: a rich table for people, JSON for scripts, and one line on stderr plus a non-zero exit
status for any failure."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, NoReturn, TypeVar

from mailcove.admin.context import AdminContext, open_admin
from mailcove.config import ConfigError, Settings
from mailcove.core.errors import MailError

T = TypeVar("T")

EXIT_ERROR = 1
EXIT_CONFIG = 2


def fail(message: str, status: int = EXIT_ERROR) -> NoReturn:
    print(f"mailcove: {message}", file=sys.stderr)
    sys.exit(status)


def run(settings: Settings, use_case: Callable[[AdminContext], Awaitable[T]]) -> T:
    """Open the directory (and the store if the use case asks for it), run, close. Errors become
    one line on stderr and exit status 1 (2 for configuration errors)."""

    async def main() -> T:
        async with open_admin(settings) as ctx:
            return await use_case(ctx)

    try:
        return asyncio.run(main())
    except MailError as exc:
        fail(exc.text)
    except ConfigError as exc:
        fail(f"config error: {exc}", EXIT_CONFIG)
    except sqlite3.Error as exc:
        fail(f"database error in {settings.data_dir}: {exc}")
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        fail(f"{exc.strerror or exc}{where}")


def emit(
    rows: Sequence[dict[str, Any]],
    columns: Iterable[tuple[str, str]],
    *,
    as_json: bool,
    title: str | None = None,
    empty: str = "(none)",
) -> None:
    """`columns` is (key, header). JSON gets every key of every row, not only the shown ones."""
    if as_json:
        print(json.dumps(list(rows), indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(soft_wrap=True)
    if not rows:
        console.print(empty, highlight=False, markup=False)
        return
    table = Table(title=title, show_lines=False)
    cols = list(columns)
    for _, header in cols:
        table.add_column(header)
    for row in rows:
        table.add_row(*(_cell(row.get(key)) for key, _ in cols))
    console.print(table)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)
