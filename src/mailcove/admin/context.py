"""What every admin use case works with: the settings, the directory, and (opened only when a
use case needs it) the message store. The admin commands run in their own short-lived process,
beside a running server; both sides see each other's changes through the databases."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from mailcove.config import Settings
from mailcove.directory import DatabaseDirectory, open_directory
from mailcove.store.api import MailStore


def _open_store(settings: Settings) -> MailStore:
    try:
        from mailcove.store import open_store  # type: ignore[attr-defined]
    except ImportError:  # the package does not re-export it (yet)
        from mailcove.store.factory import open_store
    try:
        return open_store(settings, watch_changes=False)  # type: ignore[call-arg]
    except TypeError:
        return open_store(settings)


@dataclass
class AdminContext:
    settings: Settings
    directory: DatabaseDirectory
    _store: MailStore | None = field(default=None, repr=False)

    async def store(self) -> MailStore:
        if self._store is None:
            store = _open_store(self.settings)
            await store.start()
            self._store = store
        return self._store

    async def close(self) -> None:
        try:
            if self._store is not None:
                await self._store.close()
                self._store = None
        finally:
            await self.directory.close()


def ensure_data_dir(path: Path) -> None:
    """Create the data dir as `mailcove serve` does: mode 0700, since it holds password hashes."""
    if not path.exists():
        path.mkdir(parents=True, mode=0o700)
        os.chmod(path, 0o700)


@contextlib.asynccontextmanager
async def open_admin(settings: Settings, *, postmaster: str | None = None) -> AsyncIterator[AdminContext]:
    ensure_data_dir(Path(settings.data_dir))
    directory = open_directory(settings, postmaster=postmaster)
    ctx = AdminContext(settings, directory)
    try:
        await directory.start()
        yield ctx
    finally:
        await ctx.close()
