"""The seed's lab for SMTP tests: a real `mailcove serve` with domain hamap.local, users a and b
(password It1), made through the admin CLI as an administrator would.

    lab = start_lab(serve_factory, auth="allow_plaintext = true")
    host, port = lab.srv.address("smtp")
    lab.inbox("a@hamap.local")        # stored messages, byte for byte

Imported by tests/smtp, tests/interop/test_smtp_* and tests/regress/test_smtp_* (which put this
folder on sys.path)."""

from __future__ import annotations

import shutil
import smtplib
import socket
import ssl
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from mailcove.cli.main import root
from mailcove_testing import ServerProcess, run_async

PASSWORD = "It1"
LOCAL_MSG = b"From: a@hamap.local\r\nTo: b@hamap.local\r\nSubject: hi\r\n\r\nhello\r\n"


@dataclass
class Lab:
    srv: ServerProcess
    submit_socket: Path

    def cli(self, *args: str, input: str | None = None) -> Any:
        r = CliRunner().invoke(
            root, ["--config", str(self.srv.config_path), "--data", str(self.srv.data_dir), *args], input=input,
            catch_exceptions=False,
        )
        assert r.exit_code == 0, r.output
        return r

    def inbox(self, user: str, mailbox: str = "INBOX") -> list[bytes]:
        return self.srv.read_mailbox(user, mailbox)

    def queue(self) -> list[Any]:
        from mailcove.config import load_settings
        from mailcove.store.factory import open_store

        async def go() -> tuple[list[Any], list[bytes]]:
            store = open_store(load_settings(self.srv.config_path, data_dir=str(self.srv.data_dir)),
                               watch_changes=False)
            await store.start()
            try:
                items = await store.queue_list()
                return items, [await store.queue_read(i.id) for i in items]
            finally:
                await store.close()

        items, bodies = run_async(go())
        return list(zip(items, bodies, strict=True))

    def smtp(self, listener: str = "smtp", *, source: str | None = None, timeout: float = 30) -> smtplib.SMTP:
        host, port = self.srv.address(listener)
        kwargs: dict[str, Any] = {"timeout": timeout}
        if source:
            kwargs["source_address"] = (source, 0)
        if listener == "submissions":
            return smtplib.SMTP_SSL(host, port, context=insecure_context(), **kwargs)
        return smtplib.SMTP(host, port, **kwargs)

    def raw(self, listener: str = "smtp", *, source: str | None = None) -> RawClient:
        host, port = self.srv.address(listener)
        return RawClient(host, port, source)


class RawClient:
    """A socket speaking bytes, for pipelining, smuggling and limit tests."""

    def __init__(self, host: str, port: int, source: str | None = None, timeout: float = 20) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.buf = b""
        self.greeting = self.reply()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> bytes:
        """One whole reply (multi-line joined), or b"" at EOF."""
        lines = []
        while True:
            while b"\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return b"".join(lines) + self.buf
                self.buf += chunk
            line, _, self.buf = self.buf.partition(b"\n")
            lines.append(line + b"\n")
            if len(line) < 4 or line[3:4] != b"-":
                return b"".join(lines)

    def cmd(self, line: bytes) -> bytes:
        self.send(line + b"\r\n")
        return self.reply()

    def replies(self, n: int) -> list[bytes]:
        return [self.reply() for _ in range(n)]

    def close(self) -> None:
        self.sock.close()


def insecure_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def start_lab(
    serve_factory: Callable[..., ServerProcess],
    *,
    auth: str = "",
    smtp: str = "",
    extra: str = "",
    directory: str = "",
    listeners: dict[str, str | None] | None = None,
    users: Sequence[str] = ("a", "b"),
    setup: Callable[[Lab], None] | None = None,
) -> Lab:
    sock_dir = Path(tempfile.mkdtemp(prefix="mcs"))  # short: sun_path holds 108 bytes
    sock_dir.chmod(0o755)  # other local users reach the submit socket, as in production
    sock = sock_dir / "submit.sock"
    if "[queue]" not in extra:
        # The outbound queue runner would try to deliver (and bounce) what the tests inspect.
        extra += "\n[queue]\nhold = true\n"
    if "[mailauth]" not in extra:
        # Clients here connect from 127.0.0.x addresses that may not relay, which the inbound
        # SPF/DKIM/DMARC checks would look up in the machine's DNS: these tests are about the
        # session, tests/e2e/test_outbound_inbound_checks.py about the checks.
        extra += "\n[mailauth]\nenabled = false\n"
    config = (
        f"[auth]\nargon2_time_cost = 1\nargon2_memory_kib = 1024\n{auth}\n"
        f'[directory]\npostmaster = "a@hamap.local"\n{directory}\n'
        f'[smtp]\nsubmit_socket = "{sock}"\n{smtp}\n{extra}\n'
    )
    srv = serve_factory(config, listeners=listeners, start=False)
    srv.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    lab = Lab(srv, sock)
    lab.cli("domain", "add", "hamap.local")
    for u in users:
        lab.cli("user", "add", f"{u}@hamap.local", "--password-stdin", input=f"{PASSWORD}\n")
    if setup is not None:
        setup(lab)
    srv.start()
    import atexit

    atexit.register(shutil.rmtree, sock_dir, True)
    return lab


def strip_trace(stored: bytes) -> tuple[bytes, bytes]:
    """Split a stored message into (trace headers we prepended, what the client sent)."""
    pos = 0
    if stored.startswith(b"Return-Path:"):
        pos = stored.index(b"\r\n", pos) + 2
    if stored.startswith(b"Authentication-Results:", pos):  # the inbound checks' field (issue 6)
        pos = stored.index(b"\r\n", pos)
        while stored[pos + 2 : pos + 3] == b"\t":
            pos = stored.index(b"\r\n", pos + 2)
        pos += 2
    assert stored.startswith(b"Received: ", pos), stored[:200]
    # Our Received: is one field: its continuation lines start with a tab.
    end = stored.index(b"\r\n", pos)
    while stored[end + 2 : end + 3] == b"\t":
        end = stored.index(b"\r\n", end + 2)
    return stored[: end + 2], stored[end + 2 :]
