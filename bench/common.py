"""Helpers shared by the benches that run peers (Postfix, Dovecot, ...) beside mailcove.

Peers are installed here when missing (apt-get, or pip into the running venv), started in
temporary directories on loopback ports, and every process a bench starts is ended when it
exits, whether it finishes, fails or is interrupted (SIGINT/SIGTERM).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parent.parent


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- installing peers --------------------------------------------------------------------------


def ensure_apt(binary: str, package: str, preseed: Sequence[str] = ()) -> str:
    """The path of `binary`, installing the Debian `package` first when it is missing.

    `preseed` lines go to debconf-set-selections, so that packages which ask questions (postfix)
    install without a terminal."""
    path = shutil.which(binary) or (f"/usr/sbin/{binary}" if os.path.exists(f"/usr/sbin/{binary}") else None)
    if path:
        return path
    log(f"installing {package} (apt-get) for {binary}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if preseed:
        subprocess.run(["debconf-set-selections"], input="\n".join(preseed) + "\n", text=True, check=True)
    if subprocess.run(["apt-get", "install", "-y", "-q", package], env=env).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True)
        subprocess.run(["apt-get", "install", "-y", "-q", package], env=env, check=True)
    path = shutil.which(binary) or f"/usr/sbin/{binary}"
    if not os.path.exists(path):
        raise RuntimeError(f"{package} installed but {binary} not found")
    return path


def ensure_pip(module: str, requirement: str) -> None:
    """Import-check `module`; pip-install `requirement` into this interpreter's venv if missing."""
    if importlib.util.find_spec(module) is not None:
        return
    log(f"installing {requirement} (pip) for {module}")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", requirement], check=True)


# --- places and ports --------------------------------------------------------------------------


def bench_tmp(prefix: str) -> Path:
    """A fresh directory on a real disk: fsync on tmpfs costs nothing, which would flatter
    every durable writer. $BENCH_TMP overrides; the default is /var/tmp (not /tmp, which is
    tmpfs on many systems). Mode 0755 so that peers running as other users can reach their
    subdirectories."""
    base = os.environ.get("BENCH_TMP", "/var/tmp")
    fstype = filesystem_type(Path(base))
    if fstype in ("tmpfs", "ramfs"):
        log(f"WARNING: {base} is {fstype}; fsync is free there and the figures mean little")
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    path.chmod(0o755)
    return path


def filesystem_type(path: Path) -> str:
    best, kind = "", "?"
    real = str(path.resolve())
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            mount = parts[1]
            if (real == mount or real.startswith(mount.rstrip("/") + "/")) and len(mount) >= len(best):
                best, kind = mount, parts[2]
    return kind


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_port(host: str, port: int, timeout: float = 30.0, banner: bytes = b"") -> None:
    """Wait until something accepts on host:port (and, if given, greets with `banner`)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=2) as s:
                if banner:
                    data = s.recv(512)
                    if not data.startswith(banner):
                        raise RuntimeError(f"unexpected greeting {data!r}")
                    with contextlib.suppress(OSError):
                        s.sendall(b"QUIT\r\n")
                return
        except (OSError, RuntimeError) as exc:
            last = exc
            time.sleep(0.05)
    raise RuntimeError(f"nothing ready on {host}:{port} after {timeout}s: {last}")


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


# --- processes ---------------------------------------------------------------------------------


class Cleanup:
    """Everything to undo when the bench ends, run in reverse order exactly once, also on
    SIGINT/SIGTERM, so no peer daemon is left running after the bench."""

    def __init__(self) -> None:
        self._actions: list[tuple[str, Callable[[], None]]] = []
        self._done = False
        atexit.register(self.run)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)

    def add(self, what: str, action: Callable[[], None]) -> None:
        self._actions.append((what, action))

    def process(self, proc: subprocess.Popen[bytes], what: str, timeout: float = 20.0) -> None:
        self.add(what, lambda: stop_process(proc, timeout))

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log(f"signal {signum}: cleaning up")
        self.run()
        sys.exit(128 + signum)

    def run(self) -> None:
        if self._done:
            return
        self._done = True
        while self._actions:
            what, action = self._actions.pop()
            try:
                action()
            except Exception as exc:  # cleanup goes on whatever one step does
                log(f"cleanup of {what} failed: {exc}")


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def tree_cpu_seconds(pid: int) -> float:
    """User+system CPU of a process, its live descendants, and the children it has reaped.

    Good enough to compare servers: Postfix's daemons are long-lived children of master and
    mailcove/aiosmtpd are single processes."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    seen: set[int] = set()
    stack = [pid]
    root = True
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[0] is state (field 3); utime=14, stime=15, cutime=16, cstime=17 (1-based).
        total += int(fields[11]) + int(fields[12])
        if root:
            total += int(fields[13]) + int(fields[14])
            root = False
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    stack.extend(int(c) for c in f.read().split())
    return total / tick


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def fsync_probe(directory: Path, samples: int = 50) -> float:
    """Median ms to create, write 1 KB to, and fsync a new file plus fsync its directory: the
    disk cost of one durable Maildir-style delivery. On a shared machine this moves a lot with
    what else runs (ext4 serialises journal commits), so benches print it beside their figures."""
    probe = directory / ".fsync-probe"
    probe.mkdir(exist_ok=True)
    times = []
    try:
        dfd = os.open(probe, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for i in range(samples):
                t = time.perf_counter()
                fd = os.open(probe / str(i), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.write(fd, b"x" * 1024)
                os.fsync(fd)
                os.close(fd)
                os.fsync(dfd)
                times.append(time.perf_counter() - t)
        finally:
            os.close(dfd)
    finally:
        shutil.rmtree(probe, ignore_errors=True)
    return median(times) * 1000


def load_average() -> float:
    return os.getloadavg()[0]
