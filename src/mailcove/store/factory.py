"""Choose and build the store backend named in the settings."""

from __future__ import annotations

from mailcove.config import ConfigError, Settings
from mailcove.store.api import MailStore


def open_store(settings: Settings, *, watch_changes: bool = True) -> MailStore:
    """Build (not start) the configured backend. `watch_changes=False` suits one-shot commands
    that never subscribe to the change bus."""
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
        )
    raise ConfigError(settings.source, "store.backend", f"unknown backend {backend!r} (known: sqlite)")
