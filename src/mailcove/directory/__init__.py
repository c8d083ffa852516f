"""The directory: local domains, users, aliases and access rules.

`Directory` (api.py) is the interface protocol sessions use; `DatabaseDirectory` (database.py)
implements it over a database, `SqliteDirectory` (sql.py, the default) or `PostgresDirectory`
(postgres.py), and `open_directory(settings)` builds the configured one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mailcove.directory.api import (
    AccessRule,
    Action,
    Alias,
    AliasInfo,
    Directory,
    DomainInfo,
    Invalid,
    Local,
    Principal,
    Remote,
    Resolution,
    Tag,
    UserInfo,
)
from mailcove.directory.database import DatabaseDirectory
from mailcove.directory.errors import (
    BadAccessRule,
    BadAddress,
    BadPassword,
    DirectoryBusy,
    DirectoryError,
    DomainExists,
    DomainInUse,
    UnknownAccessRule,
    UnknownAlias,
    UnknownDomain,
    UnknownUser,
    UserExists,
)
from mailcove.directory.sql import SqliteDirectory
from mailcove.directory.throttle import LoginThrottle, ThrottleVerdict

if TYPE_CHECKING:
    from mailcove.config.settings import Settings


def open_directory(settings: Settings, **kwargs: Any) -> DatabaseDirectory:
    """The configured directory (not yet started: `await d.start()` or `async with`): in the
    PostgreSQL database when the store is there (`[store] backend = "postgres"`), so every node
    shares it; otherwise `<data_dir>/directory.db`. `store` (optional) is where system users'
    accounts are made on first use (`[directory] users = "system"`); other directories ignore it."""
    store = kwargs.pop("store", None)
    if settings.directory.users == "system":
        if settings.store.backend == "postgres":
            raise DirectoryError('[directory] users = "system" works with the SQLite store only (for now)')
        from mailcove.directory.system import SystemDirectory

        return SystemDirectory.from_settings(settings, store=store, **kwargs)
    if settings.store.backend == "postgres":
        from mailcove.directory.postgres import PostgresDirectory

        return PostgresDirectory.from_settings(settings, **kwargs)
    return SqliteDirectory.from_settings(settings, **kwargs)


__all__ = [
    "AccessRule",
    "Action",
    "Alias",
    "AliasInfo",
    "BadAccessRule",
    "BadAddress",
    "BadPassword",
    "DatabaseDirectory",
    "Directory",
    "DirectoryBusy",
    "DirectoryError",
    "DomainExists",
    "DomainInUse",
    "DomainInfo",
    "Invalid",
    "Local",
    "LoginThrottle",
    "Principal",
    "Remote",
    "Resolution",
    "SqliteDirectory",
    "Tag",
    "ThrottleVerdict",
    "UnknownAccessRule",
    "UnknownAlias",
    "UnknownDomain",
    "UnknownUser",
    "UserExists",
    "UserInfo",
    "open_directory",
]
