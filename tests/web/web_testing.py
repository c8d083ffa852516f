"""Helpers of tests/web: a real server with the domain hamap.local and the user a@hamap.local
(password It1), made through the CLI, and small HTTP/CLI wrappers."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
from typing import Any

from mailcove_testing import REPO, ServerProcess, run_async

PASSWORD = "It1"


def cli(srv: ServerProcess, *args: str, input: str | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH", "")) if p)
    env.pop("MAILCOVE_CONFIG", None)
    r = subprocess.run([sys.executable, "-m", "mailcove", "--config", str(srv.config_path), "--data", str(srv.data_dir),
                        *args], input=input, capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    if check:
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r


def add_domain_and_user(srv: ServerProcess, domain: str, user: str, password: str) -> None:
    """What `mailcove domain add` and `user add` do, through the same admin use cases, in this
    process: two CLI start-ups cost seconds on a loaded 2-core machine."""
    from mailcove.admin import domains, users
    from mailcove.admin.context import open_admin
    from mailcove.config import load_settings

    async def go() -> None:
        settings = load_settings(srv.config_path, data_dir=str(srv.data_dir))
        async with open_admin(settings) as ctx:
            await domains.add_domain(ctx, domain)
            await users.add_user(ctx, user, password)

    run_async(go())


def hamap_server(serve_factory: Any, config: str = "", **kw: Any) -> ServerProcess:
    srv: ServerProcess = serve_factory(config, start=False, **kw)
    srv.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    add_domain_and_user(srv, "hamap.local", "a@hamap.local", PASSWORD)
    return srv.start()


def request(srv: ServerProcess, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    host, port = srv.address("http")
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()

