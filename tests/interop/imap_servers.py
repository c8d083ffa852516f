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
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from mailcove_testing import REPO, ServerProcess, run_async, workers_args

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


def add_users(cfg: Path, data: Path, users: Mapping[str, str], *, via_cli: int = 0) -> None:
    """Domains and users with passwords. The first `via_cli` users are made the way an admin does
    it (`mailcove domain add`, `mailcove user add --password-stdin`, one process each); the others
    with the same admin functions in this process, which is much faster (each CLI run pays Python
    start-up and an argon2 hash)."""
    domains = sorted({u.rpartition("@")[2] for u in users})
    items = list(users.items())
    if via_cli:
        for d in domains:
            cli(cfg, data, "domain", "add", d)
        for user, password in items[:via_cli]:
            cli(cfg, data, "user", "add", user, "--password-stdin", input=password + "\n")
        domains = []
    items = items[via_cli:]
    from mailcove.admin.context import open_admin
    from mailcove.admin.domains import add_domain
    from mailcove.admin.users import add_user
    from mailcove.config import load_settings

    settings = load_settings(cfg, data_dir=str(data))

    async def go() -> None:
        async with open_admin(settings) as ctx:
            for d in domains:
                await add_domain(ctx, d)
            for user, password in items:
                await add_user(ctx, user, password)

    run_async(go())


def start_mailcove(
    base: Path,
    users: Mapping[str, str],
    *,
    config: str = PLAIN_CONFIG,
    listeners: Mapping[str, str | None] | None = None,
    env: Mapping[str, str] | None = None,
    before_start: Callable[[Path, Path], None] | None = None,
    users_via_cli: int = 0,
    workers: int | None = None,
) -> ServerProcess:
    """A `mailcove serve` with imap and imaps on free loopback ports (other listeners off unless given).
    before_start(config_path, data_dir) runs after the users exist (bench/imap fills mailboxes there).
    workers: `serve --workers` (0: one per core, the server's default); None: the test suite's
    (mailcove_testing.workers_args)."""
    base.mkdir(parents=True, exist_ok=True)
    data = base / "data"
    data.mkdir(mode=0o700, exist_ok=True)
    cfg = base / "mailcove.toml"
    cfg.write_text(config)
    add_users(cfg, data, users, via_cli=users_via_cli)
    if before_start is not None:
        before_start(cfg, data)
    plan: dict[str, str | None] = {"imap": "127.0.0.1:0", "imaps": "127.0.0.1:0"}
    for name in ("smtp", "submission", "submissions", "pop3", "pop3s", "http"):
        plan[name] = None
    plan.update(listeners or {})
    worker_args = workers_args() if workers is None else ["--workers", str(workers)]
    # --user root: the data dir is under a 0700 root-owned tmp dir, which a server dropped to the
    # `mailcove` account (present once `make install` ran on this machine) could not reach.
    args = ["--config", str(cfg), "--data", str(data), "serve", "--user", "root", *worker_args]
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


# --- servers shared by the IMAP interop tests (re-exported by tests/interop/conftest.py) ----------

PASSWORD = "Interop-Pass-1"
TB_USER = "tb@hamap.local"  # the Thunderbird replay's own user
USERS = {**{f"u{i}@hamap.local": PASSWORD for i in range(20)}, TB_USER: PASSWORD}


def message(n: int, subject: str = "", body: bytes = b"") -> bytes:
    subject = subject or f"interop message {n}"
    return (
        f"From: Sender {n} <sender{n}@example.org>\r\nTo: user@hamap.local\r\nSubject: {subject}\r\n"
        f"Message-ID: <{n}.interop@example.org>\r\nDate: Fri, 27 Nov 2026 10:00:{n % 60:02d} +0000\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    ).encode() + (body or f"Body of message {n}.\r\nSecond line.\r\n".encode())


def cert_of(srv: ServerProcess) -> Path:
    """The self-signed certificate `mailcove serve` made (what `mailcove tls show` describes)."""
    return srv.data_dir / "tls" / "cert.pem"


def shared(tmp: Path, config: str, *, users_via_cli: int = 0) -> Iterator[ServerProcess]:
    srv = start_mailcove(tmp, USERS, config=config, users_via_cli=users_via_cli)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def imap_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Lab mode ([auth] allow_plaintext = true): LOGIN works on the plain imap port."""
    yield from shared(tmp_path_factory.mktemp("imap-interop-lab"), PLAIN_CONFIG, users_via_cli=2)


@pytest.fixture(scope="session")
def imap_strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Defaults: LOGINDISABLED before STARTTLS; imaps with the self-signed certificate."""
    yield from shared(tmp_path_factory.mktemp("imap-interop-strict"), 'hostname = "mx1.hamap.local"\n')


_free_users = iter(u for u in USERS if u != TB_USER)


@pytest.fixture
def user() -> str:
    """A user no other test of this run has touched (the servers are shared by the whole run)."""
    return next(_free_users)
