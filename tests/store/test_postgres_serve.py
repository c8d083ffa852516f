"""`mailcove serve` on the PostgreSQL store: it refuses an unmigrated database with one line
saying what to do, and serves once `mailcove db migrate` ran."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

from mailcove_testing import ServerProcess
from pg_testing import PgCluster, _run_async


def test_serve_refuses_an_unmigrated_database_then_runs_after_migrate(
    serve_factory: Callable[..., ServerProcess], pg_cluster: PgCluster
) -> None:
    name = "unmigrated_serve"
    _run_async(pg_cluster._admin(f"DROP DATABASE IF EXISTS {name}"))
    _run_async(pg_cluster._admin(f"CREATE DATABASE {name} TEMPLATE template0"))
    dsn = pg_cluster.dsn(name)
    try:
        srv = serve_factory(dsn=dsn, start=False, listeners={"http": None})
        r = srv.run_to_exit()
        assert r.returncode == 1
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, r.stderr
        assert "schema is at version 0" in lines[0] and "run `mailcove db migrate`" in lines[0]
        m = subprocess.run(
            [sys.executable, "-m", "mailcove", "--config", str(srv.config_path), "--data", str(srv.data_dir),
             "db", "migrate"],
            capture_output=True, text=True, timeout=120,
        )
        assert m.returncode == 0, m.stderr
        srv.start()
        srv.create_accounts("a@hamap.local")
        assert srv.deliver(b"Subject: pg\r\n\r\nhello\r\n", ["a@hamap.local"]).startswith("OK")
        assert srv.read_mailbox("a@hamap.local") == [b"Subject: pg\r\n\r\nhello\r\n"]
        assert srv.stop() == 0
    finally:
        pg_cluster.drop_database(name, wait=True)
