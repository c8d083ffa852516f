"""Several worker processes serving the same listening sockets (`[server] workers`).

One Python process is one core for protocol work. `mailcove serve` binds every socket once (as
root, before dropping privileges), then this supervisor forks the workers, which inherit the
bound sockets and each run their own event loop; the kernel hands each new connection to one of
the processes waiting on the socket. Worker 0 is the primary: it alone runs the outbound queue,
the control socket, SMTP and HTTP, exactly as a one-process server does. The others serve IMAP and
POP3, the protocols whose sessions are long and whose commands cost CPU. They share the store
through what already works across processes (SQLite's WAL with a writer per process, serialised
by SQLite's lock; PostgreSQL's pool), and learn each other's changes from the store's cross-process
change feed (store/*/watch.py).

The supervisor runs no event loop and no threads: it forks, waits for signals and restarts a
worker that died (after RESTART_DELAY, doubling up to MAX_RESTART_DELAY while a worker keeps
dying young), so the other workers keep serving and the dead one's clients reconnect. SIGTERM,
SIGINT and SIGHUP are passed on to every worker. Each worker asks the kernel to SIGKILL it when
the supervisor dies (PR_SET_PDEATHSIG): `kill -9` of the server's pid stops all of it, as it does
a one-process server, so the durability tests' crash means the same with several workers.

The primary starts first and alone (it migrates the store's schema), then the others.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import select
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from mailcove.net.listeners import new_session_prefix

log = logging.getLogger("mailcove.workers")

READY_TIMEOUT = 60.0
RESTART_DELAY = 1.0
MAX_RESTART_DELAY = 30.0
# A worker that lived at least this long is healthy again: its next restart waits RESTART_DELAY.
HEALTHY_AFTER = 30.0
_PR_SET_PDEATHSIG = 1
_SIGNALS = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


@dataclass(frozen=True)
class WorkerRole:
    """What one worker process is: its number, whether it is the primary (queue, control socket,
    SMTP, HTTP), and the pipe on which it reports that it serves (one byte, then closed)."""

    index: int
    count: int
    ready_fd: int

    @property
    def primary(self) -> bool:
        return self.index == 0

    def ready(self) -> None:
        self._report(b"R")

    def failed(self, reason: str) -> None:
        """The worker cannot start: the supervisor reports `reason` (one line) and stops."""
        self._report(b"E" + reason.encode("utf-8", "replace")[:4000])

    def _report(self, message: bytes) -> None:
        with contextlib.suppress(OSError):
            os.write(self.ready_fd, message)
            os.close(self.ready_fd)


class WorkerStartError(Exception):
    """A worker exited or hung before it served: the server does not start."""


@dataclass
class _Worker:
    index: int
    pid: int
    started: float
    delay: float = RESTART_DELAY


# The files the workers share hold this many workers' regions (net/shared_counts.py,
# directory/shared_checks.py): "one per core" stops there rather than failing to start.
MAX_DEFAULT_COUNT = 64


def default_count() -> int:
    """One worker per core this process may run on, at most MAX_DEFAULT_COUNT."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_DEFAULT_COUNT))


class Supervisor:
    """Forks `count` workers running `serve(role)` (its return value is the worker's exit
    status) and keeps them running until SIGTERM or SIGINT."""

    def __init__(self, count: int, serve: Callable[[WorkerRole], int], *, shutdown_timeout: float,
                 ready_timeout: float = READY_TIMEOUT, restarted: Callable[[list[int]], None] | None = None) -> None:
        self.count = count
        self._serve = serve
        self._restarted = restarted  # told the workers' pids after a restart
        self._shutdown_timeout = shutdown_timeout
        self._ready_timeout = ready_timeout
        self.workers: dict[int, _Worker] = {}  # pid -> worker
        self._due: dict[int, tuple[float, float]] = {}  # index -> (when to restart, its delay)
        self._pid = os.getpid()

    def pids(self) -> list[int]:
        return [w.pid for w in sorted(self.workers.values(), key=lambda w: w.index)]

    # --- starting ------------------------------------------------------------------------------

    def start(self) -> None:
        """Fork every worker and wait until each serves; WorkerStartError if one cannot."""
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        for index in range(self.count):
            self._spawn(index, RESTART_DELAY, wait=True)

    def _spawn(self, index: int, delay: float, *, wait: bool) -> int:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker
            os.close(r)
            code = 1
            try:
                self._become_worker()
                code = self._serve(WorkerRole(index, self.count, w))
            except BaseException:
                log.exception("worker %d failed", index)
            finally:
                logging.shutdown()
                os._exit(code)
        os.close(w)
        self.workers[pid] = _Worker(index, pid, time.monotonic(), delay)
        try:
            if wait:
                self._wait_ready(pid, r)
        finally:
            # A restarted worker's readiness only matters to its own log: not waited for (the
            # worker's write to the closed pipe fails quietly).
            os.close(r)
        return pid

    def _become_worker(self) -> None:
        # The supervisor blocks these to wait for them; the worker's event loop handles its own.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
        for sig in _SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != self._pid:  # the supervisor died before prctl took effect
            os._exit(1)
        new_session_prefix()

    def _wait_ready(self, pid: int, fd: int) -> None:
        deadline = time.monotonic() + self._ready_timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self._kill_all()
                raise WorkerStartError(f"worker (pid {pid}) was not serving within {self._ready_timeout:.0f} s")
            readable, _, _ = select.select([fd], [], [], min(left, 0.2))
            word = os.read(fd, 4096) if readable else b""
            if word == b"R":
                return
            done, status = os.waitpid(pid, os.WNOHANG)
            if done or readable:  # failed, exited, or closed the pipe without a word
                if done:
                    del self.workers[pid]
                self._kill_all()
                if word.startswith(b"E"):
                    raise WorkerStartError(word[1:].decode("utf-8", "replace"))
                code = os.waitstatus_to_exitcode(status) if done else "unknown"
                raise WorkerStartError(f"worker (pid {pid}) exited before it served (status {code}; its log says why)")

    # --- running -------------------------------------------------------------------------------

    def run(self) -> int:
        """Until SIGTERM or SIGINT: restart dead workers, pass SIGHUP on. Then stop them all
        and return 0 when every worker exited cleanly."""
        while True:
            timeout = None
            if self._due:
                timeout = max(0.0, min(when for when, _ in self._due.values()) - time.monotonic())
            info = signal.sigtimedwait(_SIGNALS, timeout) if timeout is not None else signal.sigwaitinfo(_SIGNALS)
            if info is None or info.si_signo == signal.SIGCHLD:
                self._reap()
                self._restart_due()
                continue
            if info.si_signo == signal.SIGHUP:
                self._forward(signal.SIGHUP)
                continue
            log.info("%s: stopping %d workers", signal.Signals(info.si_signo).name, len(self.workers))
            return self._stop()

    def _reap(self) -> None:
        while self.workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            lived = time.monotonic() - worker.started
            delay = RESTART_DELAY if lived >= HEALTHY_AFTER else min(worker.delay * 2, MAX_RESTART_DELAY)
            log.error("worker %d (pid %d) exited with status %s after %.1f s; restarting it in %.0f s",
                      worker.index, pid, os.waitstatus_to_exitcode(status), lived, delay)
            self._due[worker.index] = (time.monotonic() + delay, delay)

    def _restart_due(self) -> None:
        now = time.monotonic()
        for index, (when, delay) in sorted(self._due.items()):
            if when <= now:
                del self._due[index]
                log.info("worker %d restarted (pid %d)", index, self._spawn(index, delay, wait=False))
                if self._restarted is not None:
                    self._restarted(self.pids())

    def _forward(self, sig: int) -> None:
        for pid in list(self.workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def _stop(self) -> int:
        self._due.clear()
        self._forward(signal.SIGTERM)
        deadline = time.monotonic() + self._shutdown_timeout + 10
        clean = True
        while self.workers:
            left = deadline - time.monotonic()
            if left <= 0:
                log.warning("%d workers did not stop in time: killing them", len(self.workers))
                self._kill_all()
                return 1
            signal.sigtimedwait({signal.SIGCHLD}, min(left, 0.5))
            while self.workers:
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    self.workers.clear()
                    break
                if pid == 0:
                    break
                # Killed by a SIGTERM counts as stopped: the worker got ours and, when the whole
                # group or cgroup was signalled (killpg, systemd's KillMode=control-group), its
                # own as well, and a second one that lands after its event loop let go of the
                # signal (the last milliseconds of its exit) ends it by default.
                code = os.waitstatus_to_exitcode(status)
                if self.workers.pop(pid, None) is not None and code not in (0, -signal.SIGTERM):
                    clean = False
        return 0 if clean else 1

    def _kill_all(self) -> None:
        self._forward(signal.SIGKILL)
        for pid in list(self.workers):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.workers.clear()
