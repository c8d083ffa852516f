"""Shared test support: the real `mailcove serve` process fixture and helpers.

Imported by tests/conftest.py (which only re-exports the fixtures) and by tests that need the
helpers: `from mailcove_testing import ServerProcess, require_tool`. A module named conftest
would be ambiguous, since several test folders have their own conftest.py.

    def test_something(serve_factory):
        srv = serve_factory(config='[auth]\\nallow_plaintext = true\\n', accounts=["a@hamap.local"])
        host, port = srv.address("imap")        # every listener binds 127.0.0.1:0 by default
        srv.deliver(b"...", ["a@hamap.local"])  # durable, through the control socket
        srv.stop()                              # SIGTERM; returns the exit status

    def test_default(mailcove_server):          # the same with defaults
        ...

Listeners whose protocol is not written yet are not bound; `srv.address(name)` fails for them
with a message saying so. Pass `listeners={"smtp": "127.0.0.1:0,[::1]:0", "imap": None}` to
change or switch off (None) a listener. `preload=[path_to_py_file]` runs Python files in the
server process before it starts (to register test protocol handlers, see serve/echo_protocol.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
LISTENERS = ("smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s", "http", "https")
IMPLICIT_TLS = ("submissions", "imaps", "pop3s", "https")
READY_TIMEOUT = 30.0


def workers_args() -> list[str]:
    """`mailcove serve --workers` for a test server. MAILCOVE_TEST_WORKERS=N runs every server of
    a suite run with N worker processes; otherwise one. Not the server's default (one per core):
    a suite of servers each forking a worker per core would crowd the machine the tests share,
    and most tests are about one process (its log, its pid)."""
    return ["--workers", os.environ.get("MAILCOVE_TEST_WORKERS") or "1"]


def unavailable(what: str) -> None:
    """Something the test needs is missing: skip locally, FAIL under CI=true (a CI machine that
    lacks it must not turn a test green by skipping it)."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{what} is required under CI")
    pytest.skip(f"{what} is missing")


def require_tool(name: str) -> str:
    """The path of an external tool; `unavailable` when it is not installed."""
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} (not installed)")
    return path  # type: ignore[return-value]


def with_store_backend(config: str, backend: str, dsn: str | None) -> str:
    """`config` with [store] backend (and dsn) set: inserted under an existing [store] table, or
    a new table appended."""
    if backend == "sqlite":
        return config
    keys = f'backend = "{backend}"\ndsn = "{dsn}"\n'
    lines = config.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.strip() == "[store]":
            lines.insert(i + 1, keys)
            return "".join(lines)
    sep = "" if not config or config.endswith("\n") else "\n"
    return f"{config}{sep}[store]\n{keys}"


def default_backend() -> str:
    """The store backend servers use unless a test says otherwise: $MAILCOVE_TEST_BACKEND runs
    every serve_factory server of a suite run on PostgreSQL (a fresh database each)."""
    return os.environ.get("MAILCOVE_TEST_BACKEND", "sqlite")


def run_async(coro: Any) -> Any:
    """Run a coroutine to completion from sync or async test code (a fresh loop in a thread, so
    it works even inside a running event loop)."""
    result: list[Any] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:
            error.append(exc)

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if error:
        raise error[0]
    return result[0]


def _settings_for(config_path: Path, data_dir: Path) -> Any:
    from mailcove.config import load_settings

    return load_settings(config_path, data_dir=str(data_dir))


def create_accounts(config_path: Path, data_dir: Path, users: Sequence[str]) -> None:
    """Create store accounts directly (works with or without a running server)."""
    from mailcove.store.factory import open_store

    async def go() -> None:
        store = open_store(_settings_for(config_path, data_dir), watch_changes=False)
        await store.start()
        try:
            for user in users:
                await store.create_account(user)
        finally:
            await store.close()

    run_async(go())


def read_mailbox(config_path: Path, data_dir: Path, user: str, mailbox: str = "INBOX") -> list[bytes]:
    """Every message in one mailbox, in UID order, read straight from the store."""
    from mailcove.store.factory import open_store

    async def go() -> list[bytes]:
        store = open_store(_settings_for(config_path, data_dir), watch_changes=False)
        await store.start()
        try:
            box = await store.get_mailbox(user, mailbox)
            return [await store.read_message(box.id, e.uid) for e in await store.index(box.id)]
        finally:
            await store.close()

    return run_async(go())


@dataclass
class ServerProcess:
    data_dir: Path
    config_path: Path
    argv: list[str]
    stdout_path: Path
    stderr_path: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    state: dict[str, Any] = field(default_factory=dict)
    banner: str = ""
    dsn: str | None = None  # the PostgreSQL store's database, when the server uses one

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self, timeout: float = READY_TIMEOUT) -> ServerProcess:
        (self.data_dir / "serve.json").unlink(missing_ok=True)
        self.stdout_path.write_bytes(b"")
        out = open(self.stdout_path, "ab")  # noqa: SIM115 - handed to the child
        err = open(self.stderr_path, "ab")  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=err, env=self.env, cwd=REPO)
        finally:
            out.close()
            err.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.stdout_path.read_text(errors="replace")
            if "\nready\n" in text or text.startswith("ready\n"):
                self.banner = text[: text.index("ready\n") + len("ready")]
                self.state = json.loads((self.data_dir / "serve.json").read_text())
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"mailcove serve exited with {self.proc.returncode} before it was ready:\n{self.logs()}"
                )
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"mailcove serve was not ready within {timeout}s:\n{self.logs()}")

    def run_to_exit(self, timeout: float = READY_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """Run the command expecting it to fail (bad config): returns exit status and output."""
        return subprocess.run(self.argv, capture_output=True, text=True, env=self.env, cwd=REPO, timeout=timeout)

    @property
    def pid(self) -> int:
        """The server's own pid (not a wrapper such as strace)."""
        return int(self.state["pid"])

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def reload(self) -> None:
        self.signal(signal.SIGHUP)

    def wait(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait; returns the exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        with contextlib.suppress(ProcessLookupError):
            self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        """SIGKILL, the way a crash or the OOM killer ends a process."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, KeyError, ValueError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait(30)

    def restart(self) -> ServerProcess:
        self.stop()
        return self.start()

    # --- looking at it ------------------------------------------------------------------------

    def logs(self) -> str:
        out = self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""
        err = self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""
        return f"--- stdout ---\n{out}\n--- stderr ---\n{err}"

    def addresses(self, name: str) -> list[tuple[str, int]]:
        bound = self.state.get("listeners", {})
        if name not in bound:
            raise KeyError(
                f"listener {name!r} is not bound (off, or its protocol is not registered yet):\n{self.banner}"
            )
        out = []
        for text in bound[name]:
            host, _, port = text.rpartition(":")
            out.append((host.strip("[]"), int(port)))
        return out

    def address(self, name: str) -> tuple[str, int]:
        return self.addresses(name)[0]

    def port(self, name: str) -> int:
        return self.address(name)[1]

    @property
    def control_socket(self) -> Path:
        return Path(self.state["control_socket"])

    # --- mail ---------------------------------------------------------------------------------

    def deliver(self, message: bytes, recipients: Sequence[str]) -> str:
        """Deliver through the control socket; returns the reply line ("OK ..." / "ERR ...")."""
        from mailcove.net.control import ControlClient

        with ControlClient(self.control_socket) as client:
            return client.deliver(message, recipients)

    def create_accounts(self, *users: str) -> None:
        create_accounts(self.config_path, self.data_dir, users)

    def read_mailbox(self, user: str, mailbox: str = "INBOX") -> list[bytes]:
        return read_mailbox(self.config_path, self.data_dir, user, mailbox)


@pytest.fixture
def serve_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start `mailcove serve` processes. backend="postgres" puts the server's store on the test
    PostgreSQL (tests/pg_testing.py): a fresh database, or `dsn=` another server's (`srv.dsn`)
    so several nodes share one. Without backend=, a `backend` fixture of the test (a module's
    parametrisation over both backends) decides, then $MAILCOVE_TEST_BACKEND, then sqlite."""
    started: list[ServerProcess] = []
    counter = iter(range(1000))
    wanted = str(request.getfixturevalue("backend")) if "backend" in request.fixturenames else default_backend()

    def factory(
        config: str = "",
        *,
        listeners: dict[str, str | None] | None = None,
        accounts: Sequence[str] = (),
        wrap: Sequence[str] = (),
        preload: Sequence[str | Path] = (),
        extra_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        data_dir: Path | None = None,
        start: bool = True,
        backend: str | None = None,
        dsn: str | None = None,
    ) -> ServerProcess:
        n = next(counter)
        base = tmp_path / f"srv{n}"
        base.mkdir()
        data = data_dir or base / "data"
        cfg = base / "mailcove.toml"
        text = config if "hostname" in config else 'hostname = "mx1.hamap.local"\n' + config
        backend = backend or ("postgres" if dsn else wanted)
        if backend == "postgres" and dsn is None:
            cluster = request.getfixturevalue("pg_cluster")
            dsn = cluster.dsn(cluster.create_database())
        text = with_store_backend(text, backend, dsn)
        cfg.write_text(text)
        parsed = tomllib.loads(text)
        tls_on = parsed.get("tls", {}).get("enabled", True)
        plan: dict[str, str | None] = {
            name: "127.0.0.1:0" for name in LISTENERS if tls_on or name not in IMPLICIT_TLS
        }
        plan.update(listeners or {})
        args = ["--config", str(cfg), "--data", str(data), "serve", *extra_args]
        if "--workers" not in extra_args:
            args += workers_args()
        if "--user" not in extra_args:
            # Data dirs live under pytest's 0700 root-owned tmp dirs, which a dropped-to user
            # could not reach; tests of the privilege drop pass --user themselves (tests/deploy).
            args += ["--user", "root"]
        for name, addr in plan.items():
            args += ["--listen", f"{name}={addr or ''}"]
        # MAILCOVE_TEST_PRELOAD (os.pathsep-separated files) adds preloads to every server started,
        # e.g. to try the suite against a patched build.
        extra = os.environ.get("MAILCOVE_TEST_PRELOAD", "")
        preload = [str(p) for p in preload] + [p for p in extra.split(os.pathsep) if p]
        if preload:
            code = (
                "import sys, runpy\n"
                f"for p in {preload!r}: runpy.run_path(p)\n"
                "from mailcove.cli.main import main\n"
                f"sys.argv = ['mailcove', *{args!r}]\n"
                "main()\n"
            )
            argv = [*wrap, sys.executable, "-c", code]
        else:
            argv = [*wrap, sys.executable, "-m", "mailcove", *args]
        proc_env = dict(os.environ)
        proc_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO), str(REPO / "src"), proc_env.get("PYTHONPATH", "")) if p
        )
        proc_env.pop("MAILCOVE_CONFIG", None)
        proc_env.update(env or {})
        srv = ServerProcess(data, cfg, argv, base / "stdout.txt", base / "stderr.txt", proc_env)
        srv.dsn = dsn if backend == "postgres" else None
        if accounts:
            data.mkdir(mode=0o700, parents=True, exist_ok=True)
            srv.create_accounts(*accounts)
        started.append(srv)
        if start:
            srv.start()
        return srv

    yield factory
    for srv in started:
        srv.kill()


@pytest.fixture
def mailcove_server(serve_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return serve_factory()


# Tests that change the machine itself (Unix accounts, which useradd adds under a lock on
# /etc/passwd; the standard ports 25/110/143/587/80) are marked `host_state`. xdist's own
# grouping (xdist_group with --dist loadgroup) silently does nothing under pytest 9.2 (it renames
# item._nodeid, which pytest 9.2 no longer reads), so the rule is a lock every worker shares
# instead: a module so marked runs while holding an exclusive flock, taken before its module
# fixtures (which create the accounts) and released after them. A worker never waits while
# holding it: pytest tears down the last module before it sets up the next.
HOST_LOCK = Path(os.environ.get("TMPDIR", "/tmp")) / "mailcove-tests-host-state.lock"


@pytest.fixture(scope="module", autouse=True)
def host_state_lock(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("host_state") is None:
        yield
        return
    import fcntl

    with open(HOST_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
