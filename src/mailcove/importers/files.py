"""Reading the old installation's files, with limits, behind a small interface.

Parsers take a `Files` instead of opening paths themselves, so tests can hand them a dict of
texts (tests/importers/test_import_config_parsers.py: MemoryFiles). DiskFiles is the real one."""

from __future__ import annotations

import glob as _glob
import os
from pathlib import Path
from typing import Protocol

# A configuration file larger than this is not a configuration file; refusing it bounds memory.
MAX_FILE_BYTES = 16 * 1024 * 1024


class FileProblem(Exception):
    """A file that exists but cannot be used (too big, unreadable, not text)."""


class Files(Protocol):
    def read(self, path: str) -> str | None:
        """The file's text, None when it does not exist. Raises FileProblem when it exists but
        cannot be read."""

    def glob(self, pattern: str) -> list[str]:
        """Matching paths, sorted (Dovecot includes `conf.d/*.conf` in name order)."""


def decode(data: bytes) -> str:
    """UTF-8, else Latin-1: old configuration files are often Latin-1, and every byte string is
    valid Latin-1, so a line can always be shown in the report (never a surrogate that the
    database or the JSON output would refuse)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


class DiskFiles:
    def read(self, path: str) -> str | None:
        p = Path(path)
        try:
            size = p.stat().st_size
            if not p.is_file():
                raise FileProblem(f"{path}: not a regular file")
            if size > MAX_FILE_BYTES:
                raise FileProblem(f"{path}: {size} bytes, more than the {MAX_FILE_BYTES} a configuration file may have")
            with open(p, "rb") as f:
                data = f.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise FileProblem(f"{path}: {exc.strerror or exc}") from None
        return decode(data)

    def glob(self, pattern: str) -> list[str]:
        return sorted(p for p in _glob.glob(pattern) if os.path.isfile(p))
