"""Failed logins are logged for fail2ban, and contrib/fail2ban/ bans on them.

A real `mailcove serve` writes its log to a file; real clients fail to log in over SMTP AUTH
(smtplib), IMAP LOGIN and AUTHENTICATE (imaplib) and POP3 USER/PASS and AUTH (poplib), each from
its own loopback address, and log in successfully once each from another. Debian's
`fail2ban-regex`, with the shipped filter installed into a copy of /etc/fail2ban, must then find
exactly the failures, with the client's address and the attempted name, in the log as written
and in the form the systemd journal hands to fail2ban; `fail2ban-client --test` must accept the
shipped jail. (The web listener has no login, so HTTP writes no such line.)"""

from __future__ import annotations

import base64
import imaplib
import poplib
import shutil
import smtplib
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mailcove_testing import REPO, ServerProcess, require_tool, unavailable
from pop3.helpers import add_users

CONTRIB = REPO / "contrib" / "fail2ban"
PASSWORD = "It1"
GOOD_IP = "127.0.0.9"
# a name that tries to forge another address into the line
FORGED = 'x" rip=203.0.113.66 user="y'


def _bound(source: str) -> Callable[..., socket.socket]:
    def create(self: Any, timeout: float | None = None) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout, source_address=(source, 0))

    return create


def imap_from(source: str, host: str, port: int) -> imaplib.IMAP4:
    cls = type("IMAP4From", (imaplib.IMAP4,), {"_create_socket": _bound(source)})
    return cls(host, port, timeout=30)  # type: ignore[no-any-return]


def pop3_from(source: str, host: str, port: int) -> poplib.POP3:
    cls = type("POP3From", (poplib.POP3,), {"_create_socket": _bound(source)})
    return cls(host, port, timeout=30)  # type: ignore[no-any-return]


def fail2ban_conf(tmp_path: Path) -> Path:
    """A copy of Debian's /etc/fail2ban with mailcove's filter and jail installed as the docs say,
    and Debian's own sshd jail (it needs a log this machine may not have) left out."""
    if not Path("/etc/fail2ban/filter.d/common.conf").exists():
        unavailable("Debian's /etc/fail2ban (package fail2ban)")
    conf = tmp_path / "fail2ban"
    shutil.copytree("/etc/fail2ban", conf)
    (conf / "jail.d" / "defaults-debian.conf").unlink(missing_ok=True)
    shutil.copy(CONTRIB / "filter.d" / "mailcove.conf", conf / "filter.d")
    shutil.copy(CONTRIB / "jail.d" / "mailcove.conf", conf / "jail.d")
    return conf


def regex_hits(conf: Path, log: Path, filt: str = "mailcove") -> list[tuple[str, str]]:
    r = subprocess.run([require_tool("fail2ban-regex"), "--config", str(conf), "-o", "<ip> <F-USER>", str(log), filt],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, (r.stdout, r.stderr)
    return [tuple(line.split(" ", 1)) for line in r.stdout.splitlines() if line.strip()]  # type: ignore[misc]


def fail_everywhere(srv: ServerProcess) -> list[tuple[str, str]]:
    """Failed logins over every protocol; returns the (address, name) fail2ban must report."""
    host, smtp_port = srv.address("submission")
    with smtplib.SMTP(host, smtp_port, timeout=30, source_address=("127.0.0.2", 0)) as c:
        c.ehlo("client.test")
        c.user, c.password = "a@hamap.local", "wrong"
        with pytest.raises(smtplib.SMTPAuthenticationError):
            c.auth("PLAIN", c.auth_plain)
        c.user = "nobody@hamap.local"
        with pytest.raises(smtplib.SMTPAuthenticationError):
            c.auth("LOGIN", c.auth_login)
    imap_port = srv.port("imap")
    c = imap_from("127.0.0.3", host, imap_port)
    with pytest.raises(imaplib.IMAP4.error):
        c.login("nobody@hamap.local", "It1")
    with pytest.raises(imaplib.IMAP4.error):
        c.authenticate("PLAIN", lambda _: b"\0a@hamap.local\0wrong")
    with pytest.raises(imaplib.IMAP4.error):
        c.login(c._quote(FORGED), "x")  # imaplib sends the name as it is: quoted here
    c.logout()
    pop3_port = srv.port("pop3")
    p = pop3_from("127.0.0.4", host, pop3_port)
    p.user("b@hamap.local")
    with pytest.raises(poplib.error_proto):
        p.pass_("wrong")
    with pytest.raises(poplib.error_proto):
        p._shortcmd("AUTH PLAIN " + base64.b64encode(b"\0b@hamap.local\0nope").decode())
    p.quit()
    return [("127.0.0.2", "a@hamap.local"), ("127.0.0.2", "nobody@hamap.local"),
            ("127.0.0.3", "nobody@hamap.local"), ("127.0.0.3", "a@hamap.local"),
            ("127.0.0.3", FORGED.replace('"', '\\"')),
            ("127.0.0.4", "b@hamap.local"), ("127.0.0.4", "b@hamap.local")]


def succeed_everywhere(srv: ServerProcess) -> None:
    host, smtp_port = srv.address("submission")
    with smtplib.SMTP(host, smtp_port, timeout=30, source_address=(GOOD_IP, 0)) as c:
        c.ehlo("client.test")
        c.login("a@hamap.local", PASSWORD)
    c = imap_from(GOOD_IP, host, srv.port("imap"))
    c.login("a@hamap.local", PASSWORD)
    c.logout()
    p = pop3_from(GOOD_IP, host, srv.port("pop3"))
    p.user("b@hamap.local")
    p.pass_(PASSWORD)
    p.quit()


def test_failed_logins_are_found_by_the_shipped_filter(serve_factory: Any, tmp_path: Path) -> None:
    require_tool("fail2ban-regex")
    conf = fail2ban_conf(tmp_path)
    log = tmp_path / "mailcove.log"
    config = f'[auth]\nallow_plaintext = true\n[tls]\nenabled = false\n[log]\nfile = "{log}"\n'
    srv = serve_factory(config, start=False, listeners={"http": None})
    add_users(srv, {"a@hamap.local": PASSWORD, "b@hamap.local": PASSWORD})
    srv.start()
    succeed_everywhere(srv)
    expected = fail_everywhere(srv)
    succeed_everywhere(srv)
    srv.stop()
    text = log.read_text()
    assert "auth failed: service=submission rip=127.0.0.2 " in text, text
    assert "auth failed: service=imap rip=127.0.0.3 " in text, text
    assert "auth failed: service=pop3 rip=127.0.0.4 " in text, text

    # the log file as mailcove wrote it
    assert regex_hits(conf, log) == expected

    # the same lines as the journal gives them to fail2ban ("host ident[pid]: message", the
    # entry's time in front): what the shipped jail reads under the systemd unit
    journal = tmp_path / "journal.log"
    journal.write_text("".join(f"{line[:23]} mx1 mailcove[{srv.pid}]: {line}\n" for line in text.splitlines()))
    assert regex_hits(conf, journal, "mailcove[logtype=journal]") == expected

    r = subprocess.run([require_tool("fail2ban-client"), "-c", str(conf), "--test"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and "OK: configuration test is successful" in r.stdout + r.stderr, (r.stdout, r.stderr)
