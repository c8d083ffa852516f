"""Logging set-up for `mailcove serve`: one line per event, with the session id when there is one.

Session code logs through a LoggerAdapter carrying {"session": id} (net.listeners.Connection.log),
so every line of one SMTP/IMAP/POP3 session can be found with `grep s=<id>`."""

from __future__ import annotations

import logging
import sys

from mailcove.config.settings import LogSettings

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
FORMAT = "%(asctime)s %(levelname)s %(name)s s=%(session)s %(message)s"


class _SessionDefault(logging.Filter):
    """Lines outside a session get `s=-`, so the format works for every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "session"):
            record.session = "-"
        return True


def setup_logging(log: LogSettings, source: str = "<defaults>") -> None:
    """Raises ValueError (naming `log.level`) for an unknown level, OSError for an unusable file."""
    level = LEVELS.get(log.level.lower())
    if level is None:
        raise ValueError(f"log.level: expected one of {', '.join(LEVELS)}, got {log.level!r}")
    handler: logging.Handler
    if log.file is not None:
        log.file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log.file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(_SessionDefault())
    root = logging.getLogger("mailcove")
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
