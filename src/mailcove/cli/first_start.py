"""A data dir `serve` makes on its first start is taken away again when that start fails.

A configuration or start-up error (serve exits 1 or 2 while handling ConfigError/StartupError)
removes the data dir with any parents serve made for it; a server that did start keeps it,
however it ends, since mail may have arrived.

serve drops root's privileges after binding, and some start-ups fail only after that (the store
opened as the service user: an unreachable PostgreSQL, say). The service user owns the new dir
but not the root-owned directory it sits in (/var/lib), so it cannot remove it. A started as
root therefore forks a small root helper first, before anything else runs: it removes the dir
when told the start failed, and otherwise ends as soon as the server is serving (its state
file appears) or the server is gone, so no root process stays beside a running server."""

from __future__ import annotations

import contextlib
import os
import select
import shutil
from pathlib import Path

from mailcove.config import ConfigError

REMOVE = b"R"
KEEP = b"K"
LOOK_SECONDS = 0.2  # how often the helper looks whether the server serves


class RemovedIfServeFails:
    def __init__(self, data_dir: Path) -> None:
        top = data_dir.absolute()
        while not top.parent.exists():
            top = top.parent
        self.top = top
        self.data_dir = data_dir.absolute()
        self._helper: int | None = None  # the pipe to the root helper, when there is one

    def __enter__(self) -> RemovedIfServeFails:
        if os.geteuid() == 0:
            self._helper = _start_helper(self.top, self.data_dir)
        return self

    def __exit__(self, *exc_info: object) -> None:
        from mailcove.app import StartupError

        exc = exc_info[1]
        failed = (isinstance(exc, SystemExit) and exc.code not in (0, None)
                  and isinstance(exc.__context__, ConfigError | StartupError))
        if failed:
            shutil.rmtree(self.top, ignore_errors=True)  # all of it while still root, else what it may
        if self._helper is not None:
            with contextlib.suppress(OSError):  # a helper that already ended (the server served)
                os.write(self._helper, REMOVE if failed else KEEP)
            os.close(self._helper)


def _start_helper(top: Path, data_dir: Path) -> int:
    """Fork the root helper (twice, so that no worker supervisor ever reaps it as its own child);
    returns the pipe's write end."""
    from mailcove.app import STATE_FILE

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the forked helper
        try:
            os.close(w)
            if os.fork() == 0:
                _helper(r, top, data_dir / STATE_FILE)
        finally:
            os._exit(0)
    os.close(r)
    os.waitpid(pid, 0)
    return w


def _helper(r: int, top: Path, state_file: Path) -> None:  # pragma: no cover - in the helper
    os.setsid()  # out of the terminal's process group: Ctrl-C is for the server
    # Hold nothing of the server's: not its output (a reader waiting for its end), nor a socket.
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.closerange(3, r)
    os.closerange(r + 1, 1 << 16)
    while True:
        ready, _, _ = select.select([r], [], [], LOOK_SECONDS)
        if ready:
            if os.read(r, 1) == REMOVE:
                shutil.rmtree(top, ignore_errors=True)
            return  # told, or the server is gone (end of file)
        if state_file.exists():
            return  # serving: the dir is the server's now
