"""The bound on password checks waiting (directory/passwords.py), counted over the worker
processes of one server (net/workers.py).

`[auth] verify_workers` x 16 checks may wait for or run in a verify thread; more are answered at
once with a temporary failure. That bound is the server's: a login storm that the kernel spreads
over N workers gets one queue, not N, so the wait at its end and the work it holds stay what the
setting says however many cores the server uses. Each worker counts its own checks in its own
8-byte region of a memory-mapped file in the data dir, and a new check is judged on the sum over
the regions, under an exclusive flock held for microseconds (as net/shared_counts.py does for
connections). A worker clears its region when it starts: the checks of one that died died with it.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from mailcove.core.sharedmap import locked, open_map

FILE_NAME = "password-checks.map"
MAX_WORKERS = 64
_COUNT = struct.Struct("<q")


class SharedChecks:
    """A PendingChecks (directory/passwords.py) for worker `worker` of `workers`."""

    def __init__(self, data_dir: Path, worker: int, workers: int) -> None:
        if not 0 <= worker < workers <= MAX_WORKERS:
            raise ValueError(f"worker {worker} of {workers} (at most {MAX_WORKERS})")
        self.workers = workers
        self._own = worker * _COUNT.size
        self._fd, self._map = open_map(data_dir / FILE_NAME, MAX_WORKERS * _COUNT.size)
        with locked(self._fd):
            _COUNT.pack_into(self._map, self._own, 0)  # a new life: no checks in flight

    def _count(self, worker: int) -> int:
        return _COUNT.unpack_from(self._map, worker * _COUNT.size)[0]

    def try_add(self, limit: int) -> bool:
        with locked(self._fd):
            if sum(self._count(w) for w in range(self.workers)) >= limit:
                return False
            _COUNT.pack_into(self._map, self._own, _COUNT.unpack_from(self._map, self._own)[0] + 1)
            return True

    def remove(self) -> None:
        with locked(self._fd):
            _COUNT.pack_into(self._map, self._own, max(0, _COUNT.unpack_from(self._map, self._own)[0] - 1))

    def total(self) -> int:
        """Checks counted by every worker."""
        with locked(self._fd):
            return sum(self._count(w) for w in range(self.workers))

    def close(self) -> None:
        if self._fd >= 0:
            self._map.close()
            os.close(self._fd)
            self._fd = -1
