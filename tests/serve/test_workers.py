"""`mailcove serve --workers N` (net/workers.py): several processes serve the same sockets.

Real `mailcove serve` processes and real clients (imaplib, smtplib, poplib). Which worker serves a
connection is read from the kernel: the socket's inode in /proc/net/tcp, found among the
worker's open files."""

from __future__ import annotations

import contextlib
import imaplib
import json
import os
import poplib
import re
import signal
import smtplib
import socket
import sqlite3
import time
from pathlib import Path

import pytest

from mailcove.config import Settings
from mailcove.directory import shared_checks
from mailcove.net import shared_counts, workers
from mailcove.net.workers import default_count
from mailcove_testing import ServerProcess
from pop3.helpers import add_users

PASSWORD = "It1-Workers"
CONFIG = "[auth]\nallow_plaintext = true\n"


def _two_workers(serve_factory, *users: str, config: str = CONFIG) -> ServerProcess:
    srv = serve_factory(config, extra_args=["--workers", "2"], start=False)
    add_users(srv, dict.fromkeys(users, PASSWORD))
    srv.start()
    assert len(srv.state["workers"]) == 2, srv.state
    return srv


def _inode_of(sock: socket.socket) -> str:
    """The inode of the server's end of this client's TCP connection."""
    client_port = sock.getsockname()[1]
    server_port = sock.getpeername()[1]
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == client_port:
            return fields[9]
    raise AssertionError("connection not found in /proc/net/tcp")


def _serving_pid(srv: ServerProcess, sock: socket.socket) -> int:
    wanted = f"socket:[{_inode_of(sock)}]"
    for pid in srv.state["workers"]:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) == wanted:
                    return pid
            except OSError:
                continue
    raise AssertionError("no worker holds the connection")


def _imap(srv: ServerProcess, user: str) -> imaplib.IMAP4:
    c = imaplib.IMAP4(*srv.address("imap"), timeout=20)
    c.login(user, PASSWORD)
    return c


def _spread(srv: ServerProcess, user: str, n: int = 40) -> dict[int, list[imaplib.IMAP4]]:
    """n IMAP sessions, grouped by the worker that serves each; both workers get some."""
    by_pid: dict[int, list[imaplib.IMAP4]] = {}
    for _ in range(n):
        if len(by_pid) < 2 and sum(map(len, by_pid.values())) >= 20:
            time.sleep(0.05)  # a worker that has just been started may still be opening the store
        c = _imap(srv, user)
        by_pid.setdefault(_serving_pid(srv, c.sock), []).append(c)
        if len(by_pid) == 2 and min(len(v) for v in by_pid.values()) >= 2:
            break
    assert len(by_pid) == 2, f"all {n} sessions went to one worker: {list(by_pid)}"
    return by_pid


def _message(n: int) -> bytes:
    return f"From: s@example.org\r\nTo: a@hamap.local\r\nSubject: w{n}\r\n\r\nbody {n}\r\n".encode()


def test_both_workers_serve_imap_and_pop3_and_see_each_others_mail(serve_factory):
    srv = _two_workers(serve_factory, "a@hamap.local")
    assert "workers      2" in srv.banner
    by_pid = _spread(srv, "a@hamap.local")
    (_pa, sessions_a), (_pb, sessions_b) = by_pid.items()
    a, b = sessions_a[0], sessions_b[0]
    a.select("INBOX")
    # An APPEND in one worker is seen by a session of the other at its next command.
    assert a.append("INBOX", None, None, _message(1))[0] == "OK"
    b.select("INBOX")
    deadline = time.monotonic() + 5
    while True:
        _typ, data = b.uid("SEARCH", "ALL")
        if data[0].split():
            break
        assert time.monotonic() < deadline, "the other worker never saw the APPEND"
        time.sleep(0.05)
    _typ, data = b.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert b"w1" in data[0][1]
    # SMTP (the primary's) delivers into the mailbox both serve.
    with smtplib.SMTP(*srv.address("smtp"), timeout=20) as s:
        s.sendmail("s@example.org", ["a@hamap.local"], _message(2))
    p = poplib.POP3(*srv.address("pop3"), timeout=20)
    p.user("a@hamap.local")
    p.pass_(PASSWORD)
    deadline = time.monotonic() + 5
    while p.stat()[0] < 2:
        p.quit()
        assert time.monotonic() < deadline
        time.sleep(0.1)
        p = poplib.POP3(*srv.address("pop3"), timeout=20)
        p.user("a@hamap.local")
        p.pass_(PASSWORD)
    p.quit()
    for sessions in by_pid.values():
        for c in sessions:
            c.logout()
    assert srv.stop() == 0


def test_recent_goes_to_one_session_across_workers(serve_factory):
    """RFC 3501 2.3.2: \\Recent in exactly one session, whichever worker serves it."""
    srv = _two_workers(serve_factory, "a@hamap.local")
    assert srv.deliver(_message(1), ["a@hamap.local"]).startswith("OK")
    by_pid = _spread(srv, "a@hamap.local")
    recent = []
    for sessions in by_pid.values():
        for c in sessions:
            c.select("INBOX")
            recent.append(int(c.response("RECENT")[1][0]))
    assert sorted(recent) == [0] * (len(recent) - 1) + [1], recent
    srv.stop()


def test_idle_in_one_worker_hears_an_append_in_the_other(serve_factory):
    srv = _two_workers(serve_factory, "a@hamap.local")
    by_pid = _spread(srv, "a@hamap.local")
    (_, sessions_a), (_, sessions_b) = by_pid.items()
    idler, writer = sessions_a[0], sessions_b[0]
    idler.select("INBOX")
    idler.send(b"i1 IDLE\r\n")
    assert idler.readline().startswith(b"+")
    writer.append("INBOX", None, None, _message(1))
    idler.sock.settimeout(5)
    assert re.match(rb"\* 1 EXISTS", idler.readline())
    idler.send(b"DONE\r\n")
    srv.stop()


def test_noop_in_one_worker_shows_at_once_what_the_other_just_did(serve_factory):
    """A client polling with NOOP sees another session's STORE, APPEND and EXPUNGE as soon as
    they were answered, though that session is in another process (store.catch_up), not at the
    change poller's next look up to 100 ms later."""
    srv = _two_workers(serve_factory, "a@hamap.local")
    for n in (1, 2):
        assert srv.deliver(_message(n), ["a@hamap.local"]).startswith("OK")
    by_pid = _spread(srv, "a@hamap.local")
    (_, sessions_a), (_, sessions_b) = by_pid.items()
    poller, writer = sessions_a[0], sessions_b[0]
    poller.select("INBOX")
    writer.select("INBOX")
    for round_ in range(5):
        assert writer.store("1", "+FLAGS", f"(k{round_})")[0] == "OK"
        poller.noop()
        fetched = poller.response("FETCH")[1]
        assert any(f"k{round_}".encode() in (x or b"") for x in fetched), (round_, fetched)
    assert writer.append("INBOX", None, None, _message(3))[0] == "OK"
    poller.noop()
    assert poller.response("EXISTS")[1][-1] == b"3"
    writer.store("2", "+FLAGS.SILENT", "(\\Deleted)")
    assert writer.expunge()[0] == "OK"
    poller.noop()
    assert poller.response("EXPUNGE")[1] == [b"2"]
    for sessions in by_pid.values():
        for c in sessions:
            c.logout()
    srv.stop()


def test_the_default_is_one_worker_per_core(serve_factory):
    """[server] workers defaults to 0, and 0 starts a worker per core (test servers always pass
    --workers, 1 unless MAILCOVE_TEST_WORKERS says otherwise: here the default's value)."""
    assert Settings().server.workers == 0
    srv = serve_factory(CONFIG, extra_args=["--workers", "0"])
    cores = default_count()
    assert len(srv.state["workers"]) == (cores if cores > 1 else 0), srv.state
    assert srv.stop() == 0


def test_one_per_core_stops_at_what_the_shared_files_hold(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(200)))
    assert default_count() == workers.MAX_DEFAULT_COUNT
    assert min(shared_counts.MAX_WORKERS, shared_checks.MAX_WORKERS) >= workers.MAX_DEFAULT_COUNT
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2})
    assert default_count() == 3


def test_failed_logins_spread_over_both_workers_share_one_allowance(serve_factory):
    """[auth] max_failures_per_ip is the server's (directory/shared_throttle.py): three failures,
    two in one worker and one in the other, and the next login is refused in either, even with
    the right password. Counted per worker, each would still have allowed it."""
    srv = _two_workers(serve_factory, "a@hamap.local",
                       config=CONFIG + "max_failures_per_ip = 3\nfailure_window_seconds = 600\n")
    by_pid: dict[int, list[imaplib.IMAP4]] = {}
    for _ in range(200):  # connections, not logins: none is counted until one fails
        c = imaplib.IMAP4(*srv.address("imap"), timeout=20)
        by_pid.setdefault(_serving_pid(srv, c.sock), []).append(c)
        if len(by_pid) == 2 and min(len(v) for v in by_pid.values()) >= 2:
            break
        if len(by_pid) < 2 and sum(map(len, by_pid.values())) >= 20:
            time.sleep(0.05)  # a worker that has just been started may still be opening the store
    assert len(by_pid) == 2 and min(len(v) for v in by_pid.values()) >= 2, list(by_pid)
    (a1, a2, *_), (b1, b2, *_) = by_pid.values()
    for c in (a1, b1, a2):
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            c.login("a@hamap.local", "wrong")
    with pytest.raises(imaplib.IMAP4.error):
        b2.login("a@hamap.local", PASSWORD)
    assert "throttled" in srv.logs()
    for sessions in by_pid.values():
        for c in sessions:
            with contextlib.suppress(Exception):
                c.logout()
    srv.stop()


def test_a_dead_worker_is_restarted_and_the_other_keeps_serving(serve_factory):
    srv = _two_workers(serve_factory, "a@hamap.local")
    by_pid = _spread(srv, "a@hamap.local")
    primary, secondary = srv.state["workers"]
    survivor = by_pid[primary][0]
    victim = by_pid[secondary][0]
    os.kill(secondary, signal.SIGKILL)
    # The dead worker's clients lose their connection; the primary's session goes on.
    with pytest.raises((imaplib.IMAP4.abort, OSError)):
        victim.noop()
        victim.noop()
    assert survivor.noop()[0] == "OK"
    deadline = time.monotonic() + 15
    while True:
        srv.state = json.loads((srv.data_dir / "serve.json").read_text())
        pids = srv.state["workers"]
        if len(pids) == 2 and secondary not in pids:
            break
        assert time.monotonic() < deadline, f"worker not restarted: {pids}\n{srv.logs()}"
        time.sleep(0.1)
    assert "restarting it" in srv.logs()
    # New connections are served again by two workers, once the new one has opened the store.
    again = _spread(srv, "a@hamap.local", n=400)
    assert set(again) == set(srv.state["workers"])
    assert srv.stop() == 0


def test_kill_9_of_the_server_stops_every_worker_and_loses_no_acknowledged_append(serve_factory):
    srv = _two_workers(serve_factory, "a@hamap.local")
    workers = list(srv.state["workers"])
    by_pid = _spread(srv, "a@hamap.local")
    acked = []
    for n, c in enumerate(c for sessions in by_pid.values() for c in sessions):
        if c.append("INBOX", None, None, _message(n))[0] == "OK":
            acked.append(n)
    srv.kill()
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid) for pid in workers):
        assert time.monotonic() < deadline, "a worker outlived kill -9 of the server"
        time.sleep(0.05)
    srv.start()
    subjects = b"".join(srv.read_mailbox("a@hamap.local"))
    for n in acked:
        assert b"Subject: w%d\r\n" % n in subjects
    srv.stop()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0].lower()
    except (OSError, IndexError):
        return "zombie"


def test_a_worker_that_cannot_start_stops_the_server_with_its_reason(serve_factory):
    """The store cannot be opened (mail.db is a directory): with workers, the supervisor says so
    in one line and exits 1, as a one-process server does."""
    srv = serve_factory(CONFIG, extra_args=["--workers", "2"], start=False)
    srv.data_dir.mkdir(mode=0o700, parents=True)
    (srv.data_dir / "mail.db").mkdir()
    r = srv.run_to_exit()
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 1 and len(lines) == 1, r.stderr
    assert lines[0].startswith("mailcove: cannot open the store"), lines
    assert not (srv.data_dir / "control.sock").exists()


def test_the_full_text_index_is_built_by_a_worker_that_does_not_serve_smtp(serve_factory):
    """Indexing costs about twice a delivery's CPU: in the SMTP worker it took that from the
    deliveries. The store's `text-index` lease names the indexing process (host:pid:token)."""
    srv = _two_workers(serve_factory, "a@hamap.local")
    primary, secondary = srv.state["workers"]
    with smtplib.SMTP(*srv.address("smtp"), timeout=20) as s:
        for n in range(5):
            s.sendmail("x@example.org", ["a@hamap.local"], _message(n))
    db = sqlite3.connect(f"file:{srv.data_dir / 'mail.db'}?mode=ro", uri=True)
    try:
        deadline = time.monotonic() + 30
        while db.execute("SELECT count(*) FROM blobs WHERE indexed = 0").fetchone()[0]:
            assert time.monotonic() < deadline, srv.logs()
            time.sleep(0.1)
        (owner,) = db.execute("SELECT owner FROM leases WHERE name = 'text-index'").fetchone()
    finally:
        db.close()
    assert int(owner.split(":")[1]) == secondary != primary
    assert srv.stop() == 0
