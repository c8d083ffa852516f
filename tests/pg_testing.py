"""A private PostgreSQL for tests: `pg_dsn` (a fresh migrated database per test) or `pg_cluster` (session).

    def test_x(pg_dsn):                 # "postgresql://postgres@127.0.0.1:PORT/t_..."
        store = PostgresStore(pg_dsn, data_dir=tmp_path / "data")

    def test_two_nodes(pg_cluster):     # a database shared by several servers
        dsn = pg_cluster.dsn(pg_cluster.create_database())

The session fixture starts one cluster from Debian's PostgreSQL (initdb + pg_ctl from
/usr/lib/postgresql/*/bin) in a temp dir: TCP on 127.0.0.1 and a free port, its unix socket in
the temp dir, fsync on, trust authentication (loopback only). As root, the server runs as the
`postgres` system user (PostgreSQL refuses to run as root). Each test database is a copy of a
template migrated once per session with `mailcove db migrate`'s code (CREATE DATABASE ...
TEMPLATE: a few tens of ms). PostgreSQL or asyncpg missing: skip locally, FAIL under CI=true.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

TEMPLATE = "mailcove_template"
SUPERUSER = "postgres"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(why: str) -> None:
    if _in_ci():
        pytest.fail(f"PostgreSQL tests need {why} under CI")
    pytest.skip(f"{why} not available")


def pg_bindir() -> Path | None:
    """The newest Debian PostgreSQL server's bin dir, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_async(coro: Any) -> Any:
    from mailcove_testing import run_async

    return run_async(coro)


class PgCluster:
    """One running private cluster."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="mailcove-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root
        self.log = self.root / "server.log"
        self.port = 0
        self.host = "127.0.0.1"
        self._as_root = os.geteuid() == 0
        self._counter = 0
        # Dropping a database takes ~0.1-1 s; tests need not wait for it.
        self._dropper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pg-drop")

    # --- lifecycle -------------------------------------------------------------------------------

    def _cmd(self, *args: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *args] if self._as_root else list(args)

    def start(self) -> None:
        if self._as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        subprocess.run(
            self._cmd(str(self.bindir / "initdb"), "-D", str(self.data), "-U", SUPERUSER, "--auth=trust",
                      "-E", "UTF8", "--locale=C", "--no-instructions"),
            check=True, capture_output=True, timeout=120,
        )
        for attempt in range(5):
            self.port = _free_port()
            conf = (
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                "fsync = on\nsynchronous_commit = on\nmax_connections = 300\nshared_buffers = 64MB\n"
                "log_min_messages = warning\n"
            )
            (self.data / "postgresql.auto.conf").write_text(conf)
            proc = subprocess.run(
                self._cmd(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                          "start"),
                capture_output=True, timeout=90,
            )
            if proc.returncode == 0:
                return
            if attempt == 4:
                tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
                raise RuntimeError(f"pg_ctl start failed: {proc.stderr.decode(errors='replace')}\n{tail}")

    def stop(self) -> None:
        self._dropper.shutdown(wait=True)
        with contextlib.suppress(Exception):
            subprocess.run(
                self._cmd(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"),
                capture_output=True, timeout=60,
            )
        shutil.rmtree(self.root, ignore_errors=True)

    # --- databases -------------------------------------------------------------------------------

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{database}"

    async def _admin(self, sql: str) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.dsn("postgres"))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def create_template(self) -> None:
        from mailcove.cli.db import migrate_dsn

        _run_async(self._admin(f"CREATE DATABASE {TEMPLATE}"))
        _run_async(migrate_dsn(self.dsn(TEMPLATE)))

    def create_database(self, name: str | None = None) -> str:
        """A new database copied from the migrated template; returns its name."""
        self._counter += 1
        name = name or f"t_{self._counter}_{secrets.token_hex(3)}"
        _run_async(self._admin(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}"))
        return name

    def drop_database(self, name: str, *, wait: bool = False) -> None:
        def drop() -> None:
            with contextlib.suppress(Exception):
                _run_async(self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))

        future = self._dropper.submit(drop)
        if wait:
            future.result()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    bindir = pg_bindir()
    if bindir is None:
        _unavailable("PostgreSQL (Debian package postgresql)")
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        _unavailable("asyncpg (pip install -e '.[test]')")
    cluster = PgCluster(bindir)  # type: ignore[arg-type]
    t0 = time.monotonic()
    try:
        cluster.start()
        cluster.create_template()
    except BaseException:
        cluster.stop()
        raise
    cluster.startup_seconds = time.monotonic() - t0  # type: ignore[attr-defined]
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_dsn(pg_cluster: PgCluster) -> Iterator[str]:
    name = pg_cluster.create_database()
    try:
        yield pg_cluster.dsn(name)
    finally:
        pg_cluster.drop_database(name)
