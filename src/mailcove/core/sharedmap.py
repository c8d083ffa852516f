"""A small memory-mapped file in the data dir that the server's worker processes share, and the
flock that orders their reads and writes (imap/recent.py, net/shared_counts.py)."""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def locked(fd: int, how: int = fcntl.LOCK_EX) -> Iterator[None]:
    fcntl.flock(fd, how)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def open_map(path: Path, size: int, header: bytes = b"") -> tuple[int, mmap.mmap]:
    """The file's descriptor and a map of its `size` bytes. A new file, or one of another size
    (another format), starts as zeros; so does one that does not begin with `header` (which it
    then does), for contents that only hold while the header does (a boot's clock readings)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        with locked(fd):
            if os.fstat(fd).st_size != size or os.pread(fd, len(header), 0) != header:
                # Truncating, not writing zeros: a large sparse file stays sparse.
                os.ftruncate(fd, 0)
                os.ftruncate(fd, size)
                os.pwrite(fd, header, 0)
        return fd, mmap.mmap(fd, size)
    except BaseException:
        os.close(fd)
        raise
