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
