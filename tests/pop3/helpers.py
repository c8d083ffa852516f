"""Shared by the POP3 session tests (tests/pop3) and the POP3 interop tests (tests/interop):
a real `mailcove serve` with only the POP3 listeners, users with passwords, and fast filling of
a maildrop through the store API."""

from __future__ import annotations

import asyncio
import contextlib
import os
import poplib
import shutil
import ssl
import sys
import tempfile
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from mailcove_testing import LISTENERS, REPO, ServerProcess, run_async, workers_args

LAB = "[auth]\nallow_plaintext = true\n"
PASSWORD = "It1"
USERS = {"a@hamap.local": PASSWORD, "b@hamap.local": PASSWORD}
# Only the POP3 listeners: other protocols are other people's work in progress.
POP3_ONLY: dict[str, str | None] = {
    "smtp": None,
    "submission": None,
    "submissions": None,
    "imap": None,
    "imaps": None,
    "http": None,
}


def settings_of(srv: ServerProcess) -> Any:
    from mailcove.config import load_settings

    return load_settings(srv.config_path, data_dir=str(srv.data_dir))


def add_users(srv: ServerProcess, users: Mapping[str, str]) -> None:
    from mailcove.admin.context import open_admin
    from mailcove.admin.domains import add_domain, list_domains
    from mailcove.admin.users import add_user

    async def go() -> None:
        async with open_admin(settings_of(srv)) as ctx:
            domains = {u.split("@", 1)[1] for u in users}
            known = {d.name for d in await list_domains(ctx)}
            for d in sorted(domains - known):
                await add_domain(ctx, d)
            for user, password in users.items():
                await add_user(ctx, user, password)

    srv.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    run_async(go())


_cert_cache: list[Path] = []


def reuse_certificate(data_dir: Path) -> None:
    """Put one self-signed certificate (made once per test process) where `serve` looks for its
    own, so each server start skips generating an RSA key."""
    from mailcove.net.tls import generate_self_signed, self_signed_paths

    if not _cert_cache:
        d = Path(tempfile.mkdtemp(prefix="pop3-cert-"))
        generate_self_signed("mx1.hamap.local", d / "cert.pem", d / "key.pem")
        _cert_cache.append(d)
    cert, key = self_signed_paths(data_dir)
    cert.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    shutil.copyfile(_cert_cache[0] / "cert.pem", cert)
    shutil.copyfile(_cert_cache[0] / "key.pem", key)
    os.chmod(key, 0o600)


def start_pop3(
    serve_factory: Callable[..., ServerProcess],
    config: str = LAB,
    users: Mapping[str, str] = USERS,
    *,
    listeners: Mapping[str, str | None] | None = None,
    **kwargs: Any,
) -> ServerProcess:
    plan = dict(POP3_ONLY)
    plan.update(listeners or {})
    srv = serve_factory(config, listeners=plan, start=False, **kwargs)
    add_users(srv, users)
    reuse_certificate(srv.data_dir)
    return srv.start()


@contextlib.contextmanager
def shared_server(base: Path, config: str = LAB, users: Mapping[str, str] = USERS) -> Iterator[ServerProcess]:
    """A server for a whole test module (the `serve_factory` fixture is per test, and a start
    costs seconds on a loaded machine). Built the way serve_factory builds one, POP3 only."""
    base.mkdir(parents=True, exist_ok=True)
    data = base / "data"
    cfg = base / "mailcove.toml"
    text = 'hostname = "mx1.hamap.local"\n' + config
    cfg.write_text(text)
    tls_on = tomllib.loads(text).get("tls", {}).get("enabled", True)
    args = ["--config", str(cfg), "--data", str(data), "serve", *workers_args()]
    for name in LISTENERS:
        addr = POP3_ONLY.get(name, "127.0.0.1:0")
        if name == "pop3s" and not tls_on:
            addr = None
        args += ["--listen", f"{name}={addr or ''}"]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), str(REPO / "src"), env.get("PYTHONPATH", "")) if p)
    env.pop("MAILCOVE_CONFIG", None)
    srv = ServerProcess(
        data, cfg, [sys.executable, "-m", "mailcove", *args], base / "stdout.txt", base / "stderr.txt", env
    )
    add_users(srv, users)
    reuse_certificate(data)
    try:
        yield srv.start()
    finally:
        srv.kill()


def message(n: int, size: int = 0, extra_headers: bytes = b"") -> bytes:
    head = (
        b"From: Sender <sender@example.org>\r\nTo: a@hamap.local\r\n"
        b"Subject: message %d\r\nMessage-ID: <%d.pop3test@example.org>\r\n"
        b"Date: Fri, 27 Nov 2026 10:00:00 +0000\r\n" % (n, n)
    ) + extra_headers + b"\r\n"
    body = b"Body of message %d.\r\n.a line starting with a dot\r\n..two dots\r\n" % n
    pad = size - len(head) - len(body) - 2
    if pad > 0:
        # Padding lines, cut to size, still ending in CRLF: POP3 cannot carry a missing final CRLF.
        line = b"The quick brown fox jumps over the lazy dog again and again and again.\r\n"
        body += (line * (pad // len(line) + 1))[:pad] + b"\r\n"
    return head + body


def fill(srv: ServerProcess, user: str, messages: Sequence[bytes], batch: int = 500) -> list[int]:
    """Deliver through the store API in concurrent batches (group commit): 10,000 in seconds."""
    from mailcove.store.api import DeliveryTarget
    from mailcove.store.factory import open_store

    async def go() -> list[int]:
        store = open_store(settings_of(srv), watch_changes=False)
        await store.start()
        uids: list[int] = []
        try:
            target = [DeliveryTarget(user)]
            if len(messages) <= 64:
                # In order: concurrent deliveries get UIDs in commit order, which only the SQLite
                # store's single writer makes the call order. Tests compare small maildrops by position.
                for m in messages:
                    uids.append((await store.deliver(m, target))[0].uid)
                return uids
            for i in range(0, len(messages), batch):
                results = await asyncio.gather(*(store.deliver(m, target) for m in messages[i : i + batch]))
                uids.extend(r[0].uid for r in results)
        finally:
            await store.close()
        return uids

    return run_async(go())


def no_verify() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def login(srv: ServerProcess, user: str = "a@hamap.local", password: str = PASSWORD, *, tls: str = "") -> poplib.POP3:
    """tls: "" plain, "stls", or "implicit" (pop3s)."""
    if tls == "implicit":
        host, port = srv.address("pop3s")
        p: poplib.POP3 = poplib.POP3_SSL(host, port, context=no_verify(), timeout=30)
    else:
        host, port = srv.address("pop3")
        p = poplib.POP3(host, port, timeout=30)
        if tls == "stls":
            p.stls(no_verify())
    p.user(user)
    p.pass_(password)
    return p


def retr_bytes(p: poplib.POP3, n: int) -> bytes:
    """RETR through poplib, joined back with CRLF (poplib strips line endings and unstuffs)."""
    _resp, lines, _octets = p.retr(n)
    return b"".join(line + b"\r\n" for line in lines)
