"""`mailcove serve` started as root drops to [server] user after binding; admin commands run as
root leave nothing root-owned in the service user's data dir; READY=1 reaches systemd."""

from __future__ import annotations

import imaplib
import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from deploy_support import ServiceUser, python_visible_wrap

from mailcove_testing import REPO

# Runs under the lock every test worker shares (mailcove_testing.host_state_lock): this module
# creates the fixed service user mailcove-t5.
pytestmark = pytest.mark.host_state

MESSAGE = b"From: x@example.org\r\nTo: a@hamap.local\r\nSubject: drop\r\n\r\nhello\r\n"


def _status(pid: int) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Uid", "Gid", "Groups"):
            out[key] = [int(v) for v in value.split()]
    return out


def _root_owned(d: Path) -> list[str]:
    return [str(p) for p in [d, *d.rglob("*")] if p.lstat().st_uid == 0]


def _cli(
    data: Path, *args: str, stdin: bytes = b"", wrap: list[str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    env.pop("MAILCOVE_CONFIG", None)
    return subprocess.run([*(wrap or []), sys.executable, "-m", "mailcove", "--data", str(data), *args], input=stdin,
                          capture_output=True, env=env, cwd=REPO, timeout=60)


def test_serve_as_root_drops_to_the_user_after_binding(serve_factory, service_user: ServiceUser, reachable_dir):
    data = reachable_dir / "data"
    wrap = python_visible_wrap(service_user, reachable_dir)
    logfile = reachable_dir / "mailcove.log"
    submit = reachable_dir / "run" / "submit.sock"  # its directory does not exist yet
    config = (f'[auth]\nallow_plaintext = true\n[log]\nfile = "{logfile}"\n'
              f'[smtp]\nsubmit_socket = "{submit}"\n')
    srv = serve_factory(config, data_dir=data, extra_args=["--user", service_user.name], wrap=wrap)
    status = _status(srv.pid)
    assert status["Uid"] == [service_user.uid] * 4, status
    assert status["Gid"] == [service_user.gid] * 4, status
    # supplementary groups come from the group database (shadow membership for system users)
    assert service_user.supplementary_gid in status["Groups"], status
    assert 0 not in status["Groups"], status
    assert f"user         {service_user.name} (dropped from root after binding)" in srv.banner

    # everything the server needs is the user's: the data dir, the self-signed pair read as
    # root before the drop, the control socket (a root client still delivers through it)
    r = _cli(data, "domain", "add", "hamap.local")
    assert r.returncode == 0, r.stderr
    r = _cli(data, "user", "add", "a@hamap.local", "--password-stdin", stdin=b"It1\n")
    assert r.returncode == 0, r.stderr
    assert srv.deliver(MESSAGE, ["a@hamap.local"]).startswith("OK")
    assert _root_owned(data) == []
    # a backup run as root beside the unprivileged server leaves nothing root-owned behind
    # (backup.hold, SQLite side files) and the server goes on delivering
    r = _cli(data, "backup", str(reachable_dir / "bk"))
    assert r.returncode == 0, r.stderr
    assert srv.deliver(MESSAGE, ["a@hamap.local"]).startswith("OK")
    assert _root_owned(data) == []
    # the log file this start created, and the submit socket's new directory, are the user's
    assert logfile.stat().st_uid == service_user.uid
    assert submit.parent.stat().st_uid == service_user.uid and submit.stat().st_uid == service_user.uid

    # SIGHUP re-reads the TLS pair as the unprivileged user; TLS still works afterwards
    srv.reload()
    deadline = time.monotonic() + 10
    while "TLS reload" not in logfile.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    log_text = logfile.read_text()
    assert "TLS reloaded" in log_text and "TLS reload failed" not in log_text, log_text
    host, port = srv.address("imaps")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with imaplib.IMAP4_SSL(host, port, ssl_context=ctx) as imap:
        imap.login("a@hamap.local", "It1")
        imap.select("INBOX")
        typ, data_ = imap.fetch("1:2", "(BODY.PEEK[])")
        assert typ == "OK" and data_[0][1] == MESSAGE  # type: ignore[index]
    assert srv.stop() == 0
    assert not (data / "control.sock").exists()

    # admin commands as root while the server is down: they become the data dir's owner, so the
    # SQLite files they create (-wal, -shm) and new blobs belong to the user, not to root.
    # With `wrap` the user can read this Python and the command drops; without it (only where
    # Python lives under /root) it stays root and hands its files over at exit.
    r = _cli(data, "user", "add", "b@hamap.local", "--password-stdin", stdin=b"It1\n", wrap=wrap)
    assert r.returncode == 0, r.stderr
    r = _cli(data, "deliver", "--to", "b@hamap.local", stdin=MESSAGE)
    assert r.returncode == 0, r.stderr
    assert _root_owned(data) == []
    srv.start()
    assert _status(srv.pid)["Uid"][0] == service_user.uid


def test_data_dir_of_another_user_is_refused_in_one_line(serve_factory, service_user: ServiceUser, reachable_dir):
    data = reachable_dir / "data"
    data.mkdir(mode=0o700)
    os.chown(data, 65534, 65534)  # nobody's, mode 0700: the service user cannot write it
    srv = serve_factory(data_dir=data, extra_args=["--user", service_user.name], start=False)
    r = srv.run_to_exit()
    assert r.returncode == 2, r
    err = r.stderr.strip()
    assert "\n" not in err, err
    assert "belongs to nobody" in err and f"chown -R {service_user.name}:" in err, err
    # nothing listened, nothing was left behind
    assert not (data / "control.sock").exists()


def test_unreachable_data_dir_and_unknown_user_are_refused(serve_factory, service_user: ServiceUser, tmp_path):
    srv = serve_factory(data_dir=tmp_path / "data", extra_args=["--user", service_user.name], start=False)
    r = srv.run_to_exit()
    assert r.returncode == 2 and "cannot reach" in r.stderr, r.stderr
    srv = serve_factory(data_dir=tmp_path / "data2", extra_args=["--user", "no-such-user-mc"], start=False)
    r = srv.run_to_exit()
    assert r.returncode == 2 and "no such user 'no-such-user-mc'" in r.stderr, r.stderr


def test_ready_notification_reaches_notify_socket(serve_factory, tmp_path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(30)
    try:
        srv = serve_factory(env={"NOTIFY_SOCKET": str(path)})
        assert b"READY=1" in sock.recv(4096)
        srv.stop()
        assert sock.recv(4096) == b"STOPPING=1"
    finally:
        sock.close()


def test_root_owned_dir_that_is_not_a_data_dir_is_not_given_away(serve_factory, service_user: ServiceUser,
                                                                reachable_dir):
    data = reachable_dir / "not-mail"
    data.mkdir(mode=0o755)
    (data / "precious.txt").write_text("root's")
    srv = serve_factory(data_dir=data, extra_args=["--user", service_user.name], start=False)
    r = srv.run_to_exit()
    assert r.returncode == 2 and "does not look like a mailcove data dir" in r.stderr, r.stderr
    assert (data / "precious.txt").stat().st_uid == 0
