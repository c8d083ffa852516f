"""The seed's lab, end to end, from docs/seed-lab.md's own commands.

The block marked `seed-lab:commands` is run line for line; the only change is the LAN
10.0.0.0/24 -> 127.0.0.0/24 (tests use loopback only). The commands use the real paths and the
standard ports, so this needs root (CI is root) and free ports 25/110/143/587/80; the block runs
in a private mount namespace with tmpfs on /etc/mailcove and /var/lib/mailcove, so a real
installation is neither read nor touched. Then, as the lab's Thunderbird would: fetch the
autoconfig file and use the servers it names (mx1.hamap.local resolved to 127.0.0.1, as the
client's hosts file does in the lab): `a` sends to `b` over SMTP, `b` reads over IMAP and POP3, a
LAN client (127.0.0.5) may relay, a client outside it (127.0.1.5) may not."""

from __future__ import annotations

import http.client
import imaplib
import os
import poplib
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailcove_testing import REPO, require_tool

# Runs under the lock every test worker shares (mailcove_testing.host_state_lock): this module
# binds the standard ports 25/110/143/587/80.
pytestmark = pytest.mark.host_state

DOC = REPO / "docs" / "seed-lab.md"
MARK = "<!-- seed-lab:commands"
LAN_DOC, LAN_TEST = "10.0.0.0/24", "127.0.0.0/24"
PATHS = (Path("/etc/mailcove"), Path("/var/lib/mailcove"))
PORTS = (25, 110, 143, 587, 80)
SERVER = "127.0.0.1"  # what mx1.hamap.local and autoconfig.hamap.local resolve to in the lab


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _not_possible(reason: str) -> None:
    if _in_ci():
        pytest.fail(reason)
    pytest.skip(reason)


def doc_commands() -> list[str]:
    """The lines of the first ```sh block after the marker in docs/seed-lab.md."""
    text = DOC.read_text()
    assert MARK in text, f"{DOC} lost its {MARK} marker"
    block = re.search(r"```sh\n(.*?)```", text[text.index(MARK):], re.S)
    assert block is not None
    lines = [ln for ln in block.group(1).splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return lines


def test_doc_keeps_its_promise_of_six_commands() -> None:
    lines = doc_commands()
    assert lines[-1] == "mailcove serve"
    text = DOC.read_text()
    # install (1) + the marked block + the two firewall-cmd lines
    assert 1 + len(lines) + text.count("\n   firewall-cmd ") <= 6, lines
    assert any(LAN_DOC in ln for ln in lines)


@pytest.fixture
def lab() -> Iterator[Path]:
    if os.geteuid() != 0:
        _not_possible("the seed lab uses the standard ports and /etc, /var/lib: it needs root")
    require_tool("unshare")
    for port in PORTS:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("0.0.0.0", port))
            except OSError as exc:
                _not_possible(f"port {port} is busy ({exc.strerror}): the seed lab needs it")
    created = [p for p in PATHS if not p.exists()]
    for p in created:
        p.mkdir(parents=True)  # mount points only; removed again below
    script = ["set -e"]
    for p in PATHS:
        script.append(f"mount -t tmpfs -o mode=0755 tmpfs {p}")
    script += [ln.replace(LAN_DOC, LAN_TEST) for ln in doc_commands()]
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.pop("MAILCOVE_CONFIG", None)
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"seed-lab-{os.getpid()}.out"
    with open(out, "wb") as f:
        proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "bash", "-c", "\n".join(script)],
                                stdout=f, stderr=subprocess.STDOUT, env=env, cwd="/", start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while "\nready\n" not in out.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the lab did not start (exit {proc.poll()}):\n{out.read_text(errors='replace')}")
            time.sleep(0.1)
        yield out
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(60) == 0, out.read_text(errors="replace")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        for p in created:
            shutil.rmtree(p, ignore_errors=True)
        out.unlink(missing_ok=True)


def _autoconfig(host_header: str, path: str) -> ET.Element:
    conn = http.client.HTTPConnection(SERVER, 80, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": host_header})
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    assert resp.status == 200, (resp.status, body[:300])
    return ET.fromstring(body)


def _server(root: ET.Element, tag: str, kind: str) -> dict[str, str]:
    for el in root.iter(tag):
        if el.get("type") == kind:
            return {child.tag: (child.text or "") for child in el}
    raise AssertionError(f"no {tag} of type {kind} in the autoconfig answer")


def test_seed_lab_end_to_end(lab: Path) -> None:
    banner = lab.read_text()
    assert "serving mx1.hamap.local" in banner and "LAB MODE" in banner, banner

    # Thunderbird: with ?emailaddress= on autoconfig.DOMAIN, and without it (Thunderbird for
    # Android) on the domain's .well-known path
    cfg = _autoconfig("autoconfig.hamap.local", "/mail/config-v1.1.xml?emailaddress=a%40hamap.local")
    again = _autoconfig("hamap.local", "/.well-known/autoconfig/mail/config-v1.1.xml")
    imap, pop3, smtp = (_server(cfg, "incomingServer", "imap"), _server(cfg, "incomingServer", "pop3"),
                        _server(cfg, "outgoingServer", "smtp"))
    generic = _server(again, "incomingServer", "imap")
    assert generic["username"] == "%EMAILADDRESS%"
    assert {**generic, "username": ""} == {**imap, "username": ""}
    for s in (imap, pop3, smtp):
        assert s["hostname"] == "mx1.hamap.local", s
        assert s["socketType"] == "plain" and s["authentication"] == "password-cleartext", s  # the seed's lab
        assert s["username"] == "a@hamap.local", s
    assert (imap["port"], pop3["port"]) == ("143", "110")

    # a sends to b through the server autoconfig named
    msg = (b"From: a@hamap.local\r\nTo: b@hamap.local\r\nSubject: seed lab\r\n"
           b"Message-ID: <seed-lab-1@hamap.local>\r\n\r\nHello b, from a.\r\n")
    with smtplib.SMTP(SERVER, int(smtp["port"]), timeout=30) as c:
        c.ehlo("client.hamap.local")
        c.login("a@hamap.local", "It1")
        assert c.sendmail("a@hamap.local", ["b@hamap.local"], msg) == {}

    # b reads it over IMAP ...
    with imaplib.IMAP4(SERVER, int(imap["port"]), timeout=30) as c:
        c.login("b@hamap.local", "It1")
        c.select("INBOX")
        deadline = time.monotonic() + 10
        while True:
            typ, found = c.search(None, "HEADER", "Message-ID", "seed-lab-1@hamap.local")
            if found[0] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
            c.noop()
        assert typ == "OK" and found[0], "b's INBOX does not have a's message"
        typ, data = c.fetch(found[0].split()[-1], "(BODY.PEEK[])")
        stored = data[0][1]  # type: ignore[index]
        assert stored.endswith(msg), stored[:400]

    # ... and over POP3: the same bytes
    c3 = poplib.POP3(SERVER, int(pop3["port"]), timeout=30)
    try:
        c3.user("b@hamap.local")
        c3.pass_("It1")
        count, _size = c3.stat()
        assert count >= 1
        lines = c3.retr(count)[1]
        assert b"\r\n".join(lines) + b"\r\n" == stored
    finally:
        c3.quit()

    # relay: a LAN client (127.0.0.5, inside 127.0.0.0/24) may relay without logging in;
    # a client outside it (127.0.1.5) may only send to hamap.local
    with smtplib.SMTP(SERVER, 25, timeout=30, source_address=("127.0.0.5", 0)) as c:
        c.ehlo("pc.hamap.local")
        assert c.mail("x@hamap.local")[0] == 250
        code, text = c.rcpt("someone@example.org")
        assert code == 250, text
        c.rset()
    with smtplib.SMTP(SERVER, 25, timeout=30, source_address=("127.0.1.5", 0)) as c:
        c.ehlo("stranger.example.net")
        assert c.mail("x@example.net")[0] == 250
        code, text = c.rcpt("someone@example.org")
        assert code == 550 and b"5.7.1" in text, (code, text)
        code, text = c.rcpt("b@hamap.local")
        assert code == 250, (code, text)
        c.rset()
