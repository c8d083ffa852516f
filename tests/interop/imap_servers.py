"""Starting a mailcove server with IMAP users that have passwords, for the interop tests, the
Dovecot differential test and bench/imap.

serve_factory (tests/mailcove_testing.py) is function-scoped; the differential test and the bench
need one server for many checks, so `start_mailcove` builds the same ServerProcess by hand.
Users are made the way an admin does it: `mailcove domain add` and `mailcove user add
--password-stdin`, against the server's data dir.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from mailcove_testing import REPO, ServerProcess

PLAIN_CONFIG = 'hostname = "mx1.hamap.local"\n[auth]\nallow_plaintext = true\n'


def cli(cfg: Path, data: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH", "")) if p)
    env.pop("MAILCOVE_CONFIG", None)
    r = subprocess.run(
        [sys.executable, "-m", "mailcove", "--config", str(cfg), "--data", str(data), *args],
        input=input,
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    if r.returncode != 0:
        raise RuntimeError(f"mailcove {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def add_users(cfg: Path, data: Path, users: Mapping[str, str]) -> None:
    domains = sorted({u.rpartition("@")[2] for u in users})
    for d in domains:
        cli(cfg, data, "domain", "add", d)
    for user, password in users.items():
        cli(cfg, data, "user", "add", user, "--password-stdin", input=password + "\n")


def start_mailcove(
    base: Path,
    users: Mapping[str, str],
    *,
    config: str = PLAIN_CONFIG,
    listeners: Mapping[str, str | None] | None = None,
    env: Mapping[str, str] | None = None,
    before_start: Callable[[Path, Path], None] | None = None,
) -> ServerProcess:
    """A `mailcove serve` with imap and imaps on free loopback ports (other listeners off unless given).
    before_start(config_path, data_dir) runs after the users exist (bench/imap fills mailboxes there)."""
    base.mkdir(parents=True, exist_ok=True)
    data = base / "data"
    data.mkdir(mode=0o700, exist_ok=True)
    cfg = base / "mailcove.toml"
    cfg.write_text(config)
    add_users(cfg, data, users)
    if before_start is not None:
        before_start(cfg, data)
    plan: dict[str, str | None] = {"imap": "127.0.0.1:0", "imaps": "127.0.0.1:0"}
    for name in ("smtp", "submission", "submissions", "pop3", "pop3s", "http"):
        plan[name] = None
    plan.update(listeners or {})
    args = ["--config", str(cfg), "--data", str(data), "serve"]
    for name, addr in plan.items():
        args += ["--listen", f"{name}={addr or ''}"]
    proc_env = dict(os.environ)
    proc_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), str(REPO / "src"), proc_env.get("PYTHONPATH", "")) if p
    )
    proc_env.pop("MAILCOVE_CONFIG", None)
    proc_env.update(env or {})
    srv = ServerProcess(
        data, cfg, [sys.executable, "-m", "mailcove", *args], base / "stdout.txt", base / "stderr.txt", proc_env
    )
    return srv.start()
