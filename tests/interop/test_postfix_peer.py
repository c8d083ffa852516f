"""Postfix from Debian as mailcove's peer, both ways, on loopback:

- receiving: mailcove's queue delivers to a private Postfix (smtpd on a loopback port, virtual(8)
  delivery to a Maildir), found through an MX record served by dnsmasq;
- sending: a private Postfix relays mail injected with its own sendmail(1) into mailcove; what
  mailcove refuses at RCPT (an unknown user) Postfix bounces to its own sender.

The instance is `postfix -c DIR` with its own main.cf/master.cf, queue and data directories
(as bench/smtp does), so the system's Postfix, if any, is never touched."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from interop.postfix_conf import private_master_cf
from mailcove_testing import require_tool, unavailable

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "queue"))

from outbound_testing import Dnsmasq, free_tcp_port, queue_items, send, start_instance, wait_for

pytestmark = pytest.mark.interop  # `make test-interop`: runs a private Postfix from Debian

MSG = b"From: A <a@a.test>\r\nTo: u@pf.test\r\nSubject: to postfix\r\nMessage-ID: <3@a.test>\r\n\r\nhello postfix\r\n"


class PrivatePostfix:
    def __init__(self, domain: str, relayhost: str = "") -> None:
        import tempfile

        # Postfix's daemons run as the postfix user: pytest's 0700 tmp dir is out of their reach
        self.base = Path(tempfile.mkdtemp(prefix="mcpf-", dir="/var/tmp"))  # maillog_file_prefixes: /var
        self.base.chmod(0o755)
        self.domain = domain
        self.port = free_tcp_port()
        self.relayhost = relayhost
        self.mail = self.base / "vmail"

    def start(self) -> PrivatePostfix:
        require_tool("postfix")
        if os.geteuid() != 0:
            unavailable("root (a private Postfix instance)")
        etc, spool, lib = self.base / "etc", self.base / "spool", self.base / "lib"
        for d in (etc, spool, lib, self.mail):
            d.mkdir(parents=True)
        spool.chmod(0o755)
        shutil.chown(lib, "postfix")
        nobody = pwd.getpwnam("nobody")
        shutil.chown(self.mail, nobody.pw_uid, nobody.pw_gid)
        debian = Path("/usr/share/postfix/main.cf.debian")
        main = [ln for ln in debian.read_text().splitlines() if ln.strip() and not ln.startswith("#")] \
            if debian.exists() else []
        main += [
            f"myhostname = mx.{self.domain}",
            "mydomain = pf.local",
            "mydestination =",
            "inet_interfaces = loopback-only",
            "inet_protocols = ipv4",
            "mynetworks = 127.0.0.0/8",
            f"relayhost = {self.relayhost}",
            "alias_maps =",
            "alias_database =",
            "smtp_dns_support_level = disabled",
            "smtpd_tls_security_level = none",
            "smtp_tls_security_level = none",
            f"virtual_mailbox_domains = {self.domain}",
            f"virtual_mailbox_base = {self.mail}",
            f"virtual_mailbox_maps = inline:{{ u@{self.domain}=u/Maildir/ }}",
            f"virtual_uid_maps = static:{nobody.pw_uid}",
            f"virtual_gid_maps = static:{nobody.pw_gid}",
            "virtual_minimum_uid = 1",
            "compatibility_level = 3.6",
            f"queue_directory = {spool}",
            f"data_directory = {lib}",
            f"maillog_file = {self.base / 'maillog'}",
            "queue_run_delay = 1s",
            "minimal_backoff_time = 1s",
            "maximal_backoff_time = 2s",
        ]
        (etc / "main.cf").write_text("\n".join(main) + "\n")
        (etc / "master.cf").write_text(private_master_cf(self.port))
        self.ctl = ["postfix", "-c", str(etc)]
        self.etc = etc
        r = subprocess.run([*self.ctl, "check"], capture_output=True, text=True)
        assert r.returncode == 0, f"postfix check: {r.stdout} {r.stderr}"
        r = subprocess.run([*self.ctl, "start"], capture_output=True, text=True)
        assert r.returncode == 0, f"postfix start failed: {r.stderr}\n{self.log()}"
        wait_for(lambda: _banner(self.port), timeout=20, what="postfix smtpd")
        return self

    def stop(self) -> None:
        if hasattr(self, "ctl"):
            subprocess.run([*self.ctl, "stop"], capture_output=True)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if subprocess.run([*self.ctl, "status"], capture_output=True).returncode != 0:
                    break
                time.sleep(0.1)
        shutil.rmtree(self.base, ignore_errors=True)

    def sendmail(self, sender: str, rcpts: list[str], message: bytes) -> None:
        r = subprocess.run(["/usr/sbin/sendmail", "-C", str(self.etc), "-f", sender, *rcpts], input=message,
                           capture_output=True)
        assert r.returncode == 0, r.stderr

    def maildir(self, user: str = "u") -> list[bytes]:
        new = self.mail / user / "Maildir" / "new"
        return [p.read_bytes() for p in sorted(new.iterdir())] if new.exists() else []

    def log(self) -> str:
        p = self.base / "maillog"
        return p.read_text(errors="replace") if p.exists() else ""


def _banner(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            return s.recv(100).startswith(b"220")
    except OSError:
        return False


def test_mailcove_delivers_to_postfix_by_mx(serve_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pf = PrivatePostfix("pf.test").start()
    dns = Dnsmasq(tmp_path)
    dns.mx("pf.test", "mx.pf.test", 10)
    dns.host("mx.pf.test", "127.0.0.1")
    dns.start()
    try:
        pa = free_tcp_port()
        a = start_instance(serve_factory, "a.test", pa, dns, pf.port)
        send(pa, "a@a.test", ["u@pf.test"], MSG, RET="HDRS", ENVID="env-42")
        [got] = wait_for(lambda: pf.maildir(), what=f"delivery to Postfix\n{pf.log()}")
        assert b"hello postfix" in got and b"Subject: to postfix" in got
        assert b"Return-Path: <a@a.test>" in got
        wait_for(lambda: not queue_items(a), what="empty queue")
        log = pf.log()
        assert "status=sent" in log and "delivered to maildir" in log
    finally:
        dns.stop()
        pf.stop()


def test_postfix_relays_into_mailcove_and_bounces_what_it_refuses(serve_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dns = Dnsmasq(tmp_path)
    dns.start()
    try:
        pa = free_tcp_port()
        pf = PrivatePostfix("pf.test", relayhost=f"[127.0.0.1]:{pa}")
        pf.port = free_tcp_port()
        # mailcove's bounces for pf.test go back to Postfix
        a = start_instance(serve_factory, "a.test", pa, dns, 1,
                           extra=f'[transport]\n"pf.test" = "127.0.0.1:{pf.port}"\n')
        pf.start()
        msg = b"From: u@pf.test\r\nTo: a@a.test\r\nSubject: from postfix\r\n\r\nhello mailcove\r\n"
        pf.sendmail("u@pf.test", ["a@a.test", "nobody@a.test"], msg)
        [got] = wait_for(lambda: a.read_mailbox("a@a.test"), what=f"delivery from Postfix\n{pf.log()}")
        assert b"hello mailcove" in got and b"by mx.a.test (mailcove) with ESMTP" in got
        assert b"from mx.pf.test" in got
        # Postfix rejects nothing at submission; mailcove refused nobody@ at RCPT, so Postfix
        # bounces to u@pf.test itself (its own DSN), delivered into its own virtual mailbox
        bounce = wait_for(lambda: [m for m in pf.maildir() if b"multipart/report" in m], what="Postfix's DSN")
        assert b"nobody@a.test" in bounce[0] and b"5.1.1" in bounce[0]
    finally:
        dns.stop()
        if "pf" in locals():
            pf.stop()
