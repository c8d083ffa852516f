"""IMAP session test support: a real `mailcove serve` (one per test run, fresh users per test)
and a raw client whose every received byte goes through the strict response parser of
proto/imap/client.py.

    def test_x(imap):                 # lab mode (plaintext login allowed)
        c = imap.client()             # logged in as imap.a
        untagged, done = c.cmd("SELECT INBOX")
        assert done.status == "OK"

tests/imap/conftest.py re-exports the fixtures; tests/regress imports this module by path, as the
SMTP regressions import smtp_lab.
"""

from __future__ import annotations

import imaplib
import itertools
import os
import socket
import ssl
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mailcove.proto.imap.client import Continuation, ResponseParser, Tagged, Untagged
from mailcove_testing import LISTENERS, REPO, ServerProcess, run_async, workers_args

PASSWORD = "It1"
USERS = ("a@hamap.local", "b@hamap.local")
LAB = "[auth]\nallow_plaintext = true\n"
ONLY_IMAP = {n: None for n in ("smtp", "submission", "submissions", "pop3", "pop3s", "http")}


def add_users(srv: ServerProcess, users: tuple[str, ...] = USERS, quota: dict[str, int] | None = None, *,
              with_domain: bool = True) -> None:
    from mailcove.admin.context import open_admin
    from mailcove.admin.domains import add_domain
    from mailcove.admin.users import add_user
    from mailcove.config import load_settings

    settings = load_settings(srv.config_path, data_dir=str(srv.data_dir))

    async def go() -> None:
        async with open_admin(settings) as ctx:
            if with_domain:
                await add_domain(ctx, "hamap.local")
            for u in users:
                await add_user(ctx, u, PASSWORD, quota_bytes=(quota or {}).get(u))

    run_async(go())


class Client:
    """A line-level IMAP client: sends exactly what the test writes, parses every response
    strictly (a grammar error fails the test)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(10)
        self.parser = ResponseParser()
        self.n = 0
        self.greeting = self.read_one()

    # --- raw ---------------------------------------------------------------------------------
    def send(self, data: bytes | str) -> None:
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def read_one(self, timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            r = self.parser.next_response()
            if r is not None:
                return r
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no response")
            self.sock.settimeout(left)
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("server closed the connection")
            self.parser.receive_data(data)

    def poll(self, timeout: float) -> list[Any]:
        """Every response that arrives within `timeout` seconds (nothing sent)."""
        out = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return out
            try:
                out.append(self.read_one(left))
            except (TimeoutError, ConnectionError):
                return out

    # --- commands ----------------------------------------------------------------------------
    def tag(self) -> str:
        self.n += 1
        return f"t{self.n}"

    def cmd(self, text: str | bytes) -> tuple[list[Untagged], Tagged]:
        tag = self.tag()
        line = (text.encode() if isinstance(text, str) else text)
        self.send(tag.encode() + b" " + line + b"\r\n")
        return self.until(tag)

    def until(self, tag: str) -> tuple[list[Untagged], Tagged]:
        untagged: list[Untagged] = []
        while True:
            r = self.read_one()
            if isinstance(r, Tagged):
                assert r.tag == tag, f"unexpected tag {r.tag} (waiting for {tag})"
                return untagged, r
            if isinstance(r, Continuation):
                raise AssertionError(f"unexpected continuation {r}")
            untagged.append(r)

    def ok(self, text: str | bytes) -> list[Untagged]:
        untagged, done = self.cmd(text)
        assert done.status == "OK", f"{text!r}: {done}"
        return untagged

    def login(self, user: str = USERS[0], password: str = PASSWORD) -> None:
        self.ok(f'LOGIN "{user}" "{password}"')

    def continuation(self) -> Continuation:
        r = self.read_one()
        assert isinstance(r, Continuation), r
        return r

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def kinds(responses: list[Any]) -> list[tuple[str, int | None]]:
    return [(r.kind, r.number) for r in responses if isinstance(r, Untagged)]


def fetches(responses: list[Any]) -> dict[int, dict[str, Any]]:
    return {r.number: r.data for r in responses if isinstance(r, Untagged) and r.kind == "FETCH"}


def message(subject: str = "hello", body: str = "body text", *, sender: str = "alice@example.com",
            msgid: str | None = None, extra: str = "", date: str = "Fri, 27 Nov 2026 10:00:00 +0000") -> bytes:
    mid = msgid or f"<{subject.replace(' ', '.')}@example.com>"
    return (f"From: Alice <{sender}>\r\nTo: a@hamap.local\r\nSubject: {subject}\r\nDate: {date}\r\n"
            f"Message-ID: {mid}\r\n{extra}\r\n{body}\r\n").encode()


@dataclass
class ImapServer:
    srv: ServerProcess
    _clients: list[Any]
    users: tuple[str, str] = USERS

    @property
    def a(self) -> str:
        return self.users[0]

    @property
    def b(self) -> str:
        return self.users[1]

    def close_clients(self) -> None:
        for c in self._clients:
            try:
                c.close() if isinstance(c, Client) else c.shutdown()
            except Exception:
                pass

    @property
    def host_port(self) -> tuple[str, int]:
        return self.srv.address("imap")

    def raw(self, listener: str = "imap") -> Client:
        host, port = self.srv.address(listener)
        sock = socket.create_connection((host, port))
        if listener == "imaps":
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            sock = ctx.wrap_socket(sock)
        c = Client(sock)
        self._clients.append(c)
        return c

    def client(self, user: str | None = None, select: str | None = None) -> Client:
        c = self.raw()
        user = user or self.a
        # A user made a moment ago is visible once the server's directory reloads (<= 0.5 s).
        deadline = time.monotonic() + 5
        while True:
            _, done = c.cmd(f'LOGIN "{user}" "{PASSWORD}"')
            if done.status == "OK" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert done.status == "OK", done
        if select:
            c.ok(f"SELECT {select}")
        return c

    def imaplib(self, user: str | None = None) -> imaplib.IMAP4:
        self.client(user).close()  # waits until the new user can log in
        host, port = self.host_port
        m = imaplib.IMAP4(host, port)
        m.login(user or self.a, PASSWORD)
        self._clients.append(m)
        return m

    def deliver(self, msg: bytes, user: str | None = None) -> str:
        reply = self.srv.deliver(msg, [user or self.a])
        assert reply.startswith("OK"), reply
        return reply


def _make_server(base: Path, config: str) -> ServerProcess:
    """A `mailcove serve` like the serve_factory fixture's, but shared by many tests: starting a
    server costs seconds on a loaded 2-core machine, a fresh pair of users per test ~0.1 s."""
    base.mkdir(parents=True, exist_ok=True)
    data = base / "data"
    cfg = base / "mailcove.toml"
    # Every test logs in from 127.0.0.1, and a user made a moment ago fails to log in until the
    # directory reloads: the shared per-IP login throttle must not count that against the run.
    extra = "max_failures_per_ip = 1000000\n"
    config = config.replace("[auth]\n", "[auth]\n" + extra) if "[auth]\n" in config else config + "[auth]\n" + extra
    # The per-IP throttle still delays each failed answer (up to 5 s once a few tests' deliberate
    # failures are in its window), so the race above must not happen at all: the directory
    # checks for changes at every login (a PRAGMA data_version read) instead of every 0.1 s.
    config += "[directory]\nreload_interval = 0\n"
    cfg.write_text('hostname = "mx1.hamap.local"\n' + config)
    args = ["--config", str(cfg), "--data", str(data), "serve", *workers_args()]
    for name in LISTENERS:
        addr = "127.0.0.1:0" if name in ("imap", "imaps") else ""
        args += ["--listen", f"{name}={addr}"]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), str(REPO / "src"), env.get("PYTHONPATH", "")) if p)
    env.pop("MAILCOVE_CONFIG", None)
    srv = ServerProcess(data, cfg, [sys.executable, "-m", "mailcove", *args], base / "stdout.txt",
                        base / "stderr.txt", env)
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    return srv


_counter = itertools.count(1)


@pytest.fixture(scope="session")
def imap_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for every IMAP test of the run (each test gets users of its own)."""
    srv = _make_server(tmp_path_factory.mktemp("imapsrv"), LAB)
    add_users(srv, ("seed@hamap.local",))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def imap(imap_module: ServerProcess) -> Iterator[ImapServer]:
    """Fresh users a<n>@ and b<n>@hamap.local on the module's server: tests never share mail."""
    n = next(_counter)
    users = (f"a{n}@hamap.local", f"b{n}@hamap.local")
    add_users(imap_module, users, with_domain=False)
    box = ImapServer(imap_module, [], users)
    yield box
    box.close_clients()


@pytest.fixture
def imap_factory(tmp_path: Path) -> Iterator[Callable[..., ImapServer]]:
    """A server of its own (another configuration)."""
    made: list[ImapServer] = []
    started: list[ServerProcess] = []

    def make(config: str = LAB, quota: dict[str, int] | None = None, name: str = "own") -> ImapServer:
        srv = _make_server(tmp_path / f"{name}{len(started)}", config)
        add_users(srv, USERS, quota)
        srv.start()
        started.append(srv)
        box = ImapServer(srv, [], USERS)
        made.append(box)
        return box

    yield make
    for box in made:
        box.close_clients()
    for srv in started:
        srv.kill()
