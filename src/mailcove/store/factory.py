"""Choose and build the store backend named in the settings."""

from __future__ import annotations

from mailcove.config import ConfigError, Settings
from mailcove.store.api import MailStore


def open_store(settings: Settings, *, watch_changes: bool = True, text_index: bool | None = None) -> MailStore:
    """Build (not start) the configured backend. `watch_changes=False` suits one-shot commands
    that never subscribe to the change bus; a store that watches (the server's) also runs the
    background full-text indexer (store/textindexer.py) unless `text_index` is False."""
    if text_index is None:
        text_index = watch_changes
    backend = settings.store.backend
    if backend == "sqlite":
        from mailcove.store.sqlite import SqliteStore

        return SqliteStore(
            settings.data_dir,
            inline_max=settings.store.inline_max_bytes,
            min_free_bytes=settings.store.min_free_bytes,
            default_quota_bytes=settings.store.default_quota_bytes,
            default_quota_messages=settings.store.default_quota_messages,
            change_poll_ms=settings.store.change_poll_ms,
            watch_changes=watch_changes,
            text_index=text_index,
        )
    if backend == "postgres":
        if not settings.store.dsn:
            raise ConfigError(settings.source, "store.dsn", 'backend "postgres" needs dsn = "postgresql://..."')
        try:
            from mailcove.store.postgres import PostgresStore
        except ImportError as exc:
            why = f"the postgres backend needs asyncpg (pip install 'mailcove[postgres]'): {exc}"
            raise ConfigError(settings.source, "store.backend", why) from exc
        return PostgresStore(
            settings.store.dsn,
            data_dir=settings.data_dir,
            inline_max=settings.store.inline_max_bytes,
            min_free_bytes=settings.store.min_free_bytes,
            default_quota_bytes=settings.store.default_quota_bytes,
            default_quota_messages=settings.store.default_quota_messages,
            pool_size=settings.store.pool_size,
            watch_changes=watch_changes,
            text_index=text_index,
        )
    raise ConfigError(settings.source, "store.backend", f"unknown backend {backend!r} (known: sqlite, postgres)")
