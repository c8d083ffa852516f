"""A private dnsmasq on a loopback port, serving the MX/A/TXT records of the outbound tests.

    dns = Dnsmasq(tmp_path)
    dns.mx("a.test", "mx.a.test"); dns.host("mx.a.test", "127.0.0.1"); dns.txt("a.test", "v=spf1 ...")
    dns.start()     # dns.server == "127.0.0.1:PORT", for [dns] nameservers
    ...
    dns.stop()

Imported by tests/queue and tests/e2e (tests/e2e adds tests/queue to sys.path)."""

from __future__ import annotations

import getpass
import socket
import subprocess
import time
from pathlib import Path

from mailcove_testing import require_tool


def free_udp_tcp_port() -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")


class Dnsmasq:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.args: list[str] = []
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def mx(self, domain: str, host: str, pref: int = 10) -> None:
        self.args.append(f"--mx-host={domain},{host},{pref}")

    def host(self, name: str, address: str) -> None:
        self.args.append(f"--host-record={name},{address}")

    def txt(self, name: str, *strings: str) -> None:
        # several comma-separated strings make one record (no commas inside them)
        self.args.append("--txt-record=" + name + "," + ",".join(strings))

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Dnsmasq:
        exe = require_tool("dnsmasq")
        self.port = free_udp_tcp_port()
        log = self.workdir / "dnsmasq.log"
        cmd = [
            exe, "--keep-in-foreground", "--no-daemon", f"--port={self.port}", "--listen-address=127.0.0.1",
            "--bind-interfaces", "--no-resolv", "--no-hosts", "--no-poll", "--local=/test/",
            f"--user={getpass.getuser()}", f"--pid-file={self.workdir / 'dnsmasq.pid'}", "--log-facility=-", *self.args,
        ]
        self.proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        import dns.message
        import dns.query

        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dnsmasq exited: {log.read_text()}")
            try:
                dns.query.udp(dns.message.make_query("probe.invalid", "A"), "127.0.0.1", timeout=0.2, port=self.port)
                return self
            except Exception:
                time.sleep(0.05)
        raise RuntimeError("dnsmasq did not answer")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


# --- two mailcove instances, a.test and b.test, finding each other through dnsmasq ------------------

def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(srv: object, *args: str, input: str | None = None) -> str:
    from click.testing import CliRunner

    from mailcove.cli.main import root

    r = CliRunner().invoke(root, ["--config", str(srv.config_path), "--data", str(srv.data_dir), *args],  # type: ignore[attr-defined]
                           input=input, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.output


QUEUE_FAST = (
    "[queue]\nretry_minutes = 0.01\nmax_retry_minutes = 0.02\npoll_interval = 0.1\nlease_seconds = 4.0\n"
    "connect_timeout = 5.0\nreply_timeout = 20.0\n"
)


def start_instance(serve_factory, domain: str, smtp_port: int, dns: Dnsmasq, mx_port: int,  # type: ignore[no-untyped-def]
                   extra: str = "", users: tuple[str, ...] = ("a", "b"), start: bool = True):
    config = (
        f'hostname = "mx.{domain}"\n'
        f"[auth]\nargon2_time_cost = 1\nargon2_memory_kib = 1024\n"
        f'[directory]\npostmaster = "a@{domain}"\n'
        f'[dns]\nnameservers = ["{dns.server}"]\ntimeout = 2.0\n'
        f"{QUEUE_FAST}mx_port = {mx_port}\n{extra}\n"
    )
    srv = serve_factory(config, listeners={"smtp": f"127.0.0.1:{smtp_port}"}, start=False)
    srv.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    cli(srv, "domain", "add", domain)
    for u in users:
        cli(srv, "user", "add", f"{u}@{domain}", "--password-stdin", input="It1\n")
    if start:
        srv.start()
    return srv


def wait_for(predicate, timeout: float = 30.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def send(port: int, sender: str, rcpts: list[str], message: bytes, **mail_options: str) -> None:
    import smtplib

    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.ehlo("client.test")
        opts = [f"{k}={v}" for k, v in mail_options.items()]
        s.sendmail(sender, rcpts, message, mail_options=opts)


def queue_items(srv) -> list:  # type: ignore[no-untyped-def]
    from mailcove.config import load_settings
    from mailcove.store.factory import open_store
    from mailcove_testing import run_async

    async def go() -> list:  # type: ignore[type-arg]
        store = open_store(load_settings(srv.config_path, data_dir=str(srv.data_dir)), watch_changes=False)
        await store.start()
        try:
            return await store.queue_list()
        finally:
            await store.close()

    return run_async(go())


async def inbox(store, user: str = "a@a.test") -> list[bytes]:  # type: ignore[no-untyped-def]
    box = await store.get_mailbox(user, "INBOX")
    return [await store.read_message(box.id, e.uid) for e in await store.index(box.id)]
