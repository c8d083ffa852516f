"""Logging set-up for `mailcove serve`: one line per event, with the session id when there is one.

Session code logs through a LoggerAdapter carrying {"session": id} (net.listeners.Connection.log),
so every line of one SMTP/IMAP/POP3 session can be found with `grep s=<id>`.

A failed login writes one line in one format whatever the protocol (`auth_failed`); fail2ban's
filter in contrib/fail2ban/ matches that line and nothing else (docs/security.md)."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from mailcove.config.settings import LogSettings

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
FORMAT = "%(asctime)s %(levelname)s %(name)s s=%(session)s %(message)s"
# The client's address comes before anything the client chose, and the name is JSON-quoted (no
# bare quote, space or newline from the client), so no user name can put another address where
# the filter looks for one. `reason` is one of the server's own words, never client text.
AUTH_FAILED = "auth failed: service=%s rip=%s user=%s reason=%s"
USER_SHOWN = 64  # characters of the attempted name kept in the line


def auth_failed(log: logging.Logger | logging.LoggerAdapter[Any], service: str, ip: str, user: str,
                reason: str) -> None:
    """Log a failed login: SMTP AUTH, IMAP LOGIN/AUTHENTICATE, POP3 USER/PASS/AUTH. A warning, so
    that it is kept at `[log] level = "warning"` too."""
    log.warning(AUTH_FAILED, service, ip, json.dumps(user[:USER_SHOWN]), reason)


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
