"""A small memory-mapped file in the data dir that the server's worker processes share, and the
flock that orders their reads and writes (imap/recent.py, net/shared_counts.py,
directory/shared_throttle.py, directory/shared_checks.py).

The lock is taken on the event loop, for a few microseconds of work. `fcntl.flock` lets go of the
GIL around the system call even when it would not block, and getting the GIL back means waiting
for whichever of the process's threads (the store's writer, its readers) took it meanwhile, up to
the 5 ms switch interval, with the flock held: the other workers then queued behind a lock whose
work takes microseconds. Under imaptest's load with two workers that was 7% of each event loop's
time in `locked`. So the lock is first tried without blocking and without letting go of the GIL
(libc's flock through ctypes.PyDLL, which keeps the GIL); only when another process holds it
does the thread wait in `fcntl.flock`, GIL released.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import mmap
import os
from collections.abc import Iterator
from pathlib import Path

_libc = ctypes.PyDLL(None, use_errno=True)  # PyDLL: the call keeps the GIL
_flock_keeping_gil = _libc.flock
_flock_keeping_gil.argtypes = (ctypes.c_int, ctypes.c_int)
_flock_keeping_gil.restype = ctypes.c_int


def _try_flock(fd: int, how: int) -> bool:
    """flock(fd, how | LOCK_NB) without letting go of the GIL: whether the lock was taken."""
    if _flock_keeping_gil(fd, how | fcntl.LOCK_NB) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EWOULDBLOCK, errno.EINTR):
        return False
    raise OSError(err, os.strerror(err))


@contextlib.contextmanager
def locked(fd: int, how: int = fcntl.LOCK_EX) -> Iterator[None]:
    if not _try_flock(fd, how):
        fcntl.flock(fd, how)  # another process holds it: wait with the GIL released
    try:
        yield
    finally:
        _flock_keeping_gil(fd, fcntl.LOCK_UN)  # never blocks


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
