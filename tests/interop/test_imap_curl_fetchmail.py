"""curl (imap://, imaps://, STARTTLS) and fetchmail (IMAP) from Debian against `mailcove serve`.

curl: LIST, FETCH of one message by UID (byte for byte), SEARCH, EXAMINE. fetchmail: fetches every
message through an MDA writing one file each, and deletes them on the server (STORE \\Deleted +
EXPUNGE), over plain IMAP, STARTTLS and implicit TLS with the certificate pinned by file.
"""

from __future__ import annotations

import hashlib
import json
import socket
import ssl
import subprocess
from pathlib import Path

import pytest

from interop.fetchmail_run import run_fetchmail, strip_received
from interop.imap_servers import PASSWORD, cert_of, cli, message
from mailcove_testing import ServerProcess, require_tool


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    tool = require_tool("curl")
    r = subprocess.run([tool, "-sS", "--max-time", "30", *args], capture_output=True, timeout=60)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r


def fill(srv: ServerProcess, who: str, msgs: list[bytes]) -> None:
    for m in msgs:
        assert srv.deliver(m, [who]).startswith("OK")


def test_curl_list_fetch_search(imap_lab: ServerProcess, user: str) -> None:
    srv = imap_lab
    msgs = [message(1), message(2, "find me please"), message(3)]
    fill(srv, user, msgs)
    host, port = srv.address("imap")
    base = f"imap://{host}:{port}"
    auth = ["--user", f"{user}:{PASSWORD}"]
    listing = curl(*auth, f"{base}/").stdout.decode()
    names = [line.rsplit(" ", 1)[-1].strip('"') for line in listing.splitlines()]
    assert "INBOX" in names and "Sent" in names, listing
    for uid, m in enumerate(msgs, start=1):
        assert curl(*auth, f"{base}/INBOX;UID={uid}").stdout == m
    assert curl(*auth, f"{base}/INBOX;UID=2;SECTION=HEADER.FIELDS%20(SUBJECT)").stdout == (
        b"Subject: find me please\r\n\r\n"
    )
    found = curl(*auth, f"{base}/INBOX?SUBJECT%20%22find%20me%22").stdout.decode()
    assert found.split() == ["*", "SEARCH", "2"], found
    examined = curl(*auth, "-X", "EXAMINE INBOX", f"{base}/").stdout.decode()
    assert "* 3 EXISTS" in examined, examined


@pytest.mark.parametrize("mode", ["starttls", "imaps"])
def test_curl_tls(imap_strict: ServerProcess, user: str, mode: str) -> None:
    srv = imap_strict
    fill(srv, user, [message(7)])
    host = "127.0.0.1"
    tls = ["--cacert", str(cert_of(srv)), "--resolve", f"mx1.hamap.local:{srv.port('imaps')}:{host}",
           "--resolve", f"mx1.hamap.local:{srv.port('imap')}:{host}"]
    if mode == "starttls":
        url = f"imap://mx1.hamap.local:{srv.port('imap')}/INBOX;UID=1"
        tls.append("--ssl-reqd")
    else:
        url = f"imaps://mx1.hamap.local:{srv.port('imaps')}/INBOX;UID=1"
    r = curl("--user", f"{user}:{PASSWORD}", *tls, url)
    assert r.stdout == message(7)


def test_imaps_certificate_is_the_one_tls_show_describes(imap_strict: ServerProcess) -> None:
    """Pinning by `mailcove tls show`: the SHA-256 fingerprint it prints is the certificate that the
    imaps listener presents (what a client told to pin it would compare)."""
    srv = imap_strict
    shown = json.loads(cli(srv.config_path, srv.data_dir, "tls", "show", "--json").stdout)
    text = json.dumps(shown).lower()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(srv.address("imaps"), timeout=10) as raw, ctx.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    digest = hashlib.sha256(der).hexdigest()
    assert digest in text.replace(":", ""), (digest, shown)


def test_curl_plain_login_refused_without_tls(imap_strict: ServerProcess, user: str) -> None:
    """Default config: LOGINDISABLED before STARTTLS, so curl cannot log in over plain IMAP."""
    tool = require_tool("curl")
    host, port = imap_strict.address("imap")
    r = subprocess.run(
        [tool, "-sS", "--max-time", "30", "--user", f"{user}:{PASSWORD}", f"imap://{host}:{port}/"],
        capture_output=True,
        timeout=60,
    )
    assert r.returncode != 0


def imap_fetchmail(tmp: Path, srv: ServerProcess, who: str, mode: str) -> subprocess.CompletedProcess[str]:
    pin = f'sslcertck sslcertfile "{cert_of(srv)}" sslcommonname "mx1.hamap.local"'
    if mode == "plain":
        port, tls = srv.port("imap"), 'sslproto ""'
    elif mode == "starttls":
        port, tls = srv.port("imap"), f'sslproto "TLS1.2+" {pin}'
    else:
        port, tls = srv.port("imaps"), f"ssl {pin}"
    return run_fetchmail(tmp, port, who, PASSWORD, protocol="IMAP", tls=tls)


@pytest.mark.parametrize("mode", ["plain", "starttls", "imaps"])
def test_fetchmail_imap(imap_lab: ServerProcess, imap_strict: ServerProcess, user: str, mode: str,
                        tmp_path: Path) -> None:
    srv = imap_lab if mode == "plain" else imap_strict
    msgs = [message(i, body=b"line\r\n" * i) for i in range(1, 4)]
    fill(srv, user, msgs)
    r = imap_fetchmail(tmp_path, srv, user, mode)
    assert r.returncode == 0, r.stdout + r.stderr
    got = sorted(strip_received(p.read_bytes()) for p in (tmp_path / "out").iterdir())
    assert got == sorted(m.replace(b"\r\n", b"\n") for m in msgs)  # fetchmail's MDA gets LF line ends
    assert srv.read_mailbox(user) == []  # fetched messages are deleted: STORE \Deleted, EXPUNGE
    if mode == "starttls":
        assert "STARTTLS" in r.stdout + r.stderr
