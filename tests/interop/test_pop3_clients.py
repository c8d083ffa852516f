"""Real POP3 clients from Debian against `mailcove serve`: fetchmail, getmail6 and curl.

Each client fetches into something we can read back (fetchmail through an MDA writing one file
per message, getmail into a Maildir, curl to stdout), and the result is compared with what was
delivered, byte for byte up to the client's own documented changes (fetchmail and getmail store
LF line endings; fetchmail prepends its Received: line).
"""

from __future__ import annotations

import os
import pwd
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from interop.fetchmail_run import fetched, run_fetchmail, strip_received
from mailcove_testing import ServerProcess, require_tool, with_store_backend
from pop3.helpers import LAB, PASSWORD, fill, login, message, shared_server

# Enough for every test run twice (the lab server runs once per store backend).
USERS = {f"c{i}@hamap.local": PASSWORD for i in range(20)}
_next = iter(USERS)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The lab server on each store backend (issue 8: the interop tests prove both)."""
    config = LAB
    if request.param == "postgres":
        cluster = request.getfixturevalue("pg_cluster")
        config = with_store_backend(LAB, "postgres", cluster.dsn(cluster.create_database()))
    with shared_server(tmp_path_factory.mktemp(f"pop3-interop-lab-{request.param}"), config, USERS) as srv:
        yield srv


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with shared_server(tmp_path_factory.mktemp("pop3-interop-strict"), "", USERS) as srv:
        yield srv


@pytest.fixture
def user() -> str:
    return next(_next)


def cert_of(srv: ServerProcess) -> Path:
    return srv.data_dir / "tls" / "cert.pem"


def sample(n: int) -> list[bytes]:
    msgs = [message(i, 400 * i) for i in range(1, n)]
    msgs.append(b"Subject: dots\r\nX-UIDL: imported-uidl-1\r\n\r\n.\r\n..\r\n.leading dot\r\nend\r\n")
    return msgs


def lf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n")


# --- fetchmail ----------------------------------------------------------------------------------


def pop3_fetchmail(tmp: Path, srv: ServerProcess, user: str, mode: str, extra: str = "") -> subprocess.CompletedProcess:
    # fetchmail checks the certificate against the host name it connects to and knows nothing of
    # IP SANs, so it is told the name the self-signed certificate carries.
    verify = f'sslcertck sslcertfile "{cert_of(srv)}" sslcommonname "localhost"'
    if mode == "plain":
        port, tls = srv.port("pop3"), 'sslproto ""'
    elif mode == "stls":
        port, tls = srv.port("pop3"), f'sslproto "TLS1.2+" {verify}'
    else:
        port, tls = srv.port("pop3s"), f"ssl {verify}"
    return run_fetchmail(tmp, port, user, PASSWORD, protocol="POP3 uidl", tls=tls, extra=extra)


@pytest.mark.parametrize("mode", ["plain", "stls", "implicit"])
def test_fetchmail_fetches_and_deletes(lab, strict, user, mode, tmp_path):
    srv = lab if mode == "plain" else strict
    msgs = sample(4)
    fill(srv, user, msgs)
    r = pop3_fetchmail(tmp_path, srv, user, mode)
    assert r.returncode == 0, r.stdout + r.stderr
    got = sorted(strip_received(m) for m in fetched(tmp_path))
    assert got == sorted(lf(m) for m in msgs)
    assert srv.read_mailbox(user) == []  # fetchmail deletes what it fetched (DELE + QUIT)
    if mode == "stls":
        assert "STLS" in r.stderr + r.stdout


def test_fetchmail_keep_uses_uidl(lab, user, tmp_path):
    msgs = sample(3)
    fill(srv := lab, user, msgs)
    r = pop3_fetchmail(tmp_path, srv, user, "plain", "keep")
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(fetched(tmp_path)) == 3
    # A second run knows every UIDL and fetches nothing (exit 1: no mail).
    r = pop3_fetchmail(tmp_path, srv, user, "plain", "keep")
    assert r.returncode == 1, r.stdout + r.stderr
    assert len(fetched(tmp_path)) == 3
    ids = (tmp_path / "fetchids").read_text()
    assert "imported-uidl-1" in ids  # the X-UIDL of "imported" mail is what the client keeps
    fill(srv, user, [message(99)])
    r = pop3_fetchmail(tmp_path, srv, user, "plain", "keep")
    assert r.returncode == 0, r.stdout + r.stderr
    assert strip_received(fetched(tmp_path)[-1]) == lf(message(99))
    assert len(srv.read_mailbox(user)) == 4


# --- getmail6 -----------------------------------------------------------------------------------


def run_getmail(tmp: Path, srv: ServerProcess, user: str, ssl: bool, delete: bool) -> subprocess.CompletedProcess:
    getmail = require_tool("getmail")
    maildir = getmail_maildir(tmp)
    if ssl:
        retriever = (
            "type = SimplePOP3SSLRetriever\n"
            f"port = {srv.port('pop3s')}\nca_certs = {cert_of(srv)}\nssl_hostname = localhost\n"
        )
    else:
        retriever = f"type = SimplePOP3Retriever\nport = {srv.port('pop3')}\n"
    rc = tmp / "getmailrc"
    rc.write_text(
        "[retriever]\n"
        f"{retriever}server = 127.0.0.1\nusername = {user}\npassword = {PASSWORD}\n"
        "[destination]\ntype = Maildir\n"
        f"path = {maildir}/\n"
        # getmail refuses to write a Maildir as root; it then delivers as the user named here.
        + ("user = nobody\n" if os.geteuid() == 0 else "")
        +
        "[options]\nread_all = false\n"
        f"delete = {str(delete).lower()}\n"
        "delivered_to = false\nreceived = false\nverbose = 2\n"
    )
    return subprocess.run(
        [getmail, f"--getmaildir={tmp}", f"--rcfile={rc}"], capture_output=True, text=True, timeout=120
    )


def getmail_maildir(tmp: Path) -> Path:
    """The Maildir getmail delivers to. As root, getmail delivers as nobody, who cannot reach
    pytest's 0700 temp dirs: then the Maildir lives in a 0755 dir of its own, owned by nobody."""
    link = tmp / "Maildir"
    if link.exists():
        return link.resolve()
    if os.geteuid() == 0:
        base = Path(tempfile.mkdtemp(prefix="pop3-getmail-"))
        base.chmod(0o755)
        maildir = base / "Maildir"
    else:
        maildir = tmp / "Maildir-real"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        for d in (maildir, *(maildir / s for s in ("cur", "new", "tmp"))):
            os.chown(d, nobody.pw_uid, nobody.pw_gid)
    link.symlink_to(maildir)
    return maildir


def maildir_messages(tmp: Path) -> list[bytes]:
    """The stored messages, without the Return-Path: line getmail puts first (POP3 carries no
    envelope sender, so it writes `<unknown>`)."""
    out = []
    for p in (tmp / "Maildir" / "new").iterdir():
        data = p.read_bytes()
        assert data.startswith(b"Return-Path: <unknown>\n"), data[:100]
        out.append(data.split(b"\n", 1)[1])
    return sorted(out)


@pytest.mark.parametrize("ssl", [False, True], ids=["plain", "pop3s"])
def test_getmail_into_a_maildir(lab, strict, user, ssl, tmp_path):
    srv = strict if ssl else lab
    msgs = sample(4)
    fill(srv, user, msgs)
    r = run_getmail(tmp_path, srv, user, ssl, delete=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert maildir_messages(tmp_path) == sorted(lf(m) for m in msgs)
    # read_all = false: the next run recognises every UIDL and fetches nothing new.
    r = run_getmail(tmp_path, srv, user, ssl, delete=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(maildir_messages(tmp_path)) == 4
    fill(srv, user, [message(77)])
    r = run_getmail(tmp_path, srv, user, ssl, delete=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert lf(message(77)) in maildir_messages(tmp_path) and len(maildir_messages(tmp_path)) == 5
    # With delete = true getmail deletes what it fetched and what it had seen before (DELE +
    # QUIT): the maildrop is empty.
    assert srv.read_mailbox(user) == []


# --- curl ---------------------------------------------------------------------------------------


def curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([require_tool("curl"), "-sS", "--max-time", "60", *args], capture_output=True, timeout=90)


def test_curl_list_retr_uidl_dele(lab, user):
    msgs = sample(3)
    fill(srv := lab, user, msgs)
    base = f"pop3://127.0.0.1:{srv.port('pop3')}"
    auth = ["-u", f"{user}:{PASSWORD}"]
    r = curl(*auth, base + "/")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"".join(b"%d %d\r\n" % (i, len(m)) for i, m in enumerate(msgs, 1))
    for i, m in enumerate(msgs, 1):
        r = curl(*auth, f"{base}/{i}")
        assert r.returncode == 0 and r.stdout == m, (i, r.stderr)
    r = curl(*auth, "-X", "UIDL", base + "/")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 3 and b"imported-uidl-1" in r.stdout
    r = curl(*auth, "-X", "TOP 1 0", base + "/")
    assert r.returncode == 0 and r.stdout == msgs[0][: msgs[0].index(b"\r\n\r\n") + 4]
    r = curl(*auth, "-X", "DELE 1", "-I", base + "/")  # -I: no transfer, then QUIT
    assert r.returncode == 0, r.stderr
    assert srv.read_mailbox(user) == msgs[1:]
    r = curl("-u", f"{user}:wrong", base + "/")
    assert r.returncode == 67  # CURLE_LOGIN_DENIED


def test_curl_stls_pop3s_and_sasl_plain(strict, user):
    msgs = sample(2)
    fill(srv := strict, user, msgs)
    auth = ["-u", f"{user}:{PASSWORD}", "--cacert", str(cert_of(srv))]
    # STLS, required; curl then logs in with SASL PLAIN (it prefers AUTH when CAPA lists SASL).
    r = curl(*auth, "--ssl-reqd", f"pop3://localhost:{srv.port('pop3')}/1", "--resolve",
             f"localhost:{srv.port('pop3')}:127.0.0.1")
    assert r.returncode == 0 and r.stdout == msgs[0], r.stderr
    # Implicit TLS, SASL PLAIN with the initial response on the AUTH line.
    url = f"pop3s://localhost:{srv.port('pop3s')}"
    resolve = ["--resolve", f"localhost:{srv.port('pop3s')}:127.0.0.1"]
    r = curl(*auth, *resolve, "--sasl-ir", "--login-options", "AUTH=PLAIN", url + "/2")
    assert r.returncode == 0 and r.stdout == msgs[1], r.stderr
    # Without TLS the server offers no way to send a password, and curl gives up.
    r = curl("-u", f"{user}:{PASSWORD}", f"pop3://127.0.0.1:{srv.port('pop3')}/")
    assert r.returncode != 0
    p = login(srv, user, tls="implicit")
    assert p.stat()[0] == 2
    p.quit()
