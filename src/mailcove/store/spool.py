"""A message on its way into the store.

Protocol code writes the body here as it arrives, so a 50 MB message is never held in memory on
the event loop. Small messages stay in memory too and are committed inline; once the size passes
the inline limit the bytes go to a temp file, which the store fsyncs and adopts as a blob. The
temp file's name is made only then: a 1 KB message costs a buffer, no name and no file.

What is written here (after the bare-LF conversion a caller may ask for) is what the store
keeps, byte for byte: header lines the server adds (Return-Path, Received,
Authentication-Results) are not written into a spool but given to the store beside it
(store.api.MessagePrefix)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from mailcove.message import CrlfNormalizer


class Spool:
    def __init__(
        self, tmp_path: Path | Callable[[], Path], inline_max: int, *, normalize_newlines: bool = False
    ) -> None:
        # The temp file's path, or the function that names it when the spool first needs a file.
        self._tmp_path = tmp_path
        self._inline_max = inline_max
        self._buf = bytearray()
        self._file: BinaryIO | None = None
        self._normalizer = CrlfNormalizer() if normalize_newlines else None
        self._finished = False
        self.size = 0

    def write(self, chunk: bytes) -> None:
        if self._finished:
            raise RuntimeError("spool already finished")
        if self._normalizer is not None:
            chunk = self._normalizer.feed(chunk)
        self._write(chunk)

    def _write(self, chunk: bytes) -> None:
        if not chunk:
            return
        self.size += len(chunk)
        if self._file is None:
            self._buf += chunk
            if len(self._buf) > self._inline_max:
                self._file = open(self.path, "wb")  # noqa: SIM115 - lives until finish()
                self._file.write(self._buf)
                self._buf = bytearray()
        else:
            self._file.write(chunk)

    def finish(self) -> None:
        """No more data. Flushes to the OS; the store does the fsync when it adopts the file."""
        if self._finished:
            return
        if self._normalizer is not None:
            self._write(self._normalizer.finish())
        if self._file is not None:
            self._file.close()
        self._finished = True

    @property
    def inline(self) -> bool:
        return self._file is None

    @property
    def path(self) -> Path:
        if not isinstance(self._tmp_path, Path):
            self._tmp_path = self._tmp_path()
        return self._tmp_path

    def getvalue(self) -> bytes:
        if not self.inline:
            raise RuntimeError("spool is on disk; use path")
        return bytes(self._buf)

    def discard(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()
        self._finished = True
        if self._file is not None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        self._buf = bytearray()
