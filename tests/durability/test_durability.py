"""Acknowledged means durable: kill -9, graceful SIGTERM, and the fsync-before-ack order seen
through strace (a kill -9 alone cannot test fsync: the page cache survives the process)."""

from __future__ import annotations

import os
import secrets
import signal
import threading
import time

import pytest
from fsync_trace import Call, Expectation, check, parse

from mailcove_testing import ServerProcess, require_tool

USERS = ["a@hamap.local", "b@hamap.local"]
# Above [store] inline_max_bytes (128 KiB by default): stored as a blob file.
BIG = 200 * 1024


def make_message(marker: str, size: int = 0) -> bytes:
    head = (
        f"From: sender@example.org\r\nTo: a@hamap.local\r\nSubject: {marker}\r\n"
        f"Message-ID: <{marker}@example.org>\r\n\r\n{marker}\r\n"
    ).encode()
    body = b""
    if size > len(head):
        line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdef\r\n"
        body = line * ((size - len(head)) // len(line) + 1)
    # 8-bit bytes, a NUL and no final CRLF: stored bytes must still come back identical.
    return head + body + b"\xe9t\xe9 \x00 end"


class Sender:
    """Threads delivering through the control socket, recording every acknowledged message."""

    def __init__(self, srv: ServerProcess, threads: int, per_thread: int, big_every: int = 0) -> None:
        self.srv = srv
        self.acked: dict[str, tuple[str, bytes, list[str]]] = {}  # marker -> (reply, message, rcpts)
        self.refused: list[str] = []
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(i, per_thread, big_every), daemon=True) for i in range(threads)
        ]

    def _run(self, i: int, n: int, big_every: int) -> None:
        from mailcove.net.control import ControlClient

        try:
            client = ControlClient(self.srv.control_socket, timeout=60)
        except OSError as exc:
            self.errors.append(exc)
            return
        try:
            for j in range(n):
                if self._stop.is_set():
                    return
                marker = f"MARK{i:03d}x{j:05d}x{secrets.token_hex(6)}"
                big = big_every and j % big_every == 1
                msg = make_message(marker, BIG if big else 600)
                rcpts = USERS if j % 3 == 0 else [USERS[j % 2]]
                try:
                    reply = client.deliver(msg, rcpts)
                except OSError:
                    return  # the server went away mid-request: this one was never acknowledged
                with self._lock:
                    if reply.startswith("OK "):
                        self.acked[marker] = (reply, msg, rcpts)
                    else:
                        self.refused.append(reply)
        finally:
            client.close()

    def start(self) -> Sender:
        for t in self._threads:
            t.start()
        return self

    def join(self, timeout: float = 120) -> None:
        for t in self._threads:
            t.join(timeout)

    def stop(self) -> None:
        self._stop.set()


def verify_acked(srv: ServerProcess, acked: dict[str, tuple[str, bytes, list[str]]]) -> None:
    """Every acknowledged message is in every recipient's INBOX at the UID the ack named, and
    byte-identical; nothing stored is a torn or foreign message."""
    from mailcove.config import load_settings
    from mailcove.store.factory import open_store
    from mailcove_testing import run_async

    async def go() -> None:
        store = open_store(load_settings(srv.config_path, data_dir=str(srv.data_dir)), watch_changes=False)
        await store.start()
        try:
            for marker, (reply, msg, rcpts) in acked.items():
                tokens = reply.split()[1:]
                assert sorted(t.rsplit(":", 2)[0] for t in tokens) == sorted(rcpts), reply
                for token in tokens:
                    _user, mbox, uid = token.rsplit(":", 2)
                    got = await store.read_message(int(mbox), int(uid))
                    assert got == msg, f"{marker}: stored bytes differ ({len(got)} vs {len(msg)})"
            sent = {m for _r, m, _u in acked.values()}
            for user in USERS:
                box = await store.get_mailbox(user, "INBOX")
                for entry in await store.index(box.id):
                    body = await store.read_message(box.id, entry.uid)
                    # Unacknowledged messages may or may not be there, but must be whole.
                    assert body in sent or body.endswith(b"\xe9t\xe9 \x00 end"), f"torn message uid {entry.uid}"
        finally:
            await store.close()

    run_async(go())


def test_kill_9_loses_no_acknowledged_message(serve_factory):
    srv = serve_factory(accounts=USERS)
    sender = Sender(srv, threads=24, per_thread=100_000, big_every=25).start()
    deadline = time.monotonic() + 20
    while len(sender.acked) < 400 and time.monotonic() < deadline:
        time.sleep(0.05)
    srv.kill()  # SIGKILL, mid-stream: most threads have a request in flight
    sender.stop()
    sender.join()
    assert not sender.errors, sender.errors
    assert not sender.refused, sender.refused[:3]
    acked = dict(sender.acked)
    assert len(acked) >= 100, f"only {len(acked)} deliveries acknowledged before the kill:\n{srv.logs()}"
    assert any(len(m) > BIG for _r, m, _u in acked.values()), "no blob-sized message was acknowledged"
    srv.start()  # the same data dir: recovery, a stale control.sock, orphan blobs
    reply = srv.deliver(make_message("after-restart"), USERS[:1])
    assert reply.startswith("OK "), reply
    verify_acked(srv, acked)
    assert srv.stop() == 0


def test_sigterm_finishes_deliveries_in_flight(serve_factory):
    srv = serve_factory("[server]\nshutdown_timeout = 20\n", accounts=USERS)
    sender = Sender(srv, threads=16, per_thread=100_000, big_every=10).start()
    while len(sender.acked) < 100:
        time.sleep(0.02)
    srv.signal(signal.SIGTERM)
    status = srv.wait(60)
    sender.stop()
    sender.join()
    assert status == 0, srv.logs()
    assert not sender.errors
    # Requests that arrived after shutdown began are refused with a temporary error, never lost.
    assert all(r.startswith("ERR 421 ") for r in sender.refused), sender.refused[:3]
    acked = dict(sender.acked)
    srv.start()
    verify_acked(srv, acked)
    srv.stop()


def test_control_socket_bad_input_gets_clear_errors_and_server_keeps_running(serve_factory):
    import socket

    srv = serve_factory("[server]\nmax_message_bytes = 1000\nmax_recipients = 3\n", accounts=USERS)

    def raw(request: bytes) -> bytes:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(str(srv.control_socket))
            s.sendall(request)
            s.shutdown(socket.SHUT_WR)
            out = b""
            while chunk := s.recv(4096):
                out += chunk
            return out

    assert raw(b"HELO\r\n").startswith(b"ERR 500 5.5.1 ")
    assert raw(b"DELIVER x a@hamap.local\r\n").startswith(b"ERR 501 ")
    assert raw(b"DELIVER 10\r\n").startswith(b"ERR 501 ")
    assert raw(b"DELIVER 5000 a@hamap.local\r\n").startswith(b"ERR 552 5.3.4 ")
    assert raw(b"DELIVER 5 a@x b@x c@x d@x\r\nhello").startswith(b"ERR 452 4.5.3 ")
    assert raw(b"DELIVER " + b"9" * 70_000 + b"\r\n").startswith(b"ERR 500 5.5.2 ")
    assert raw(b"DELIVER 100 a@hamap.local\r\nshort") == b""  # truncated body: nothing stored, no crash
    # Unknown account: refused, and the same connection still works afterwards.
    out = raw(b"DELIVER 5 nobody@hamap.local\r\nhelloDELIVER 5 a@hamap.local\r\nworldPING\r\n")
    lines = out.split(b"\r\n")
    assert lines[0].startswith(b"ERR 550 5.1.1 "), out
    assert lines[1].startswith(b"OK a@hamap.local:"), out
    assert lines[2] == b"OK pong"
    assert srv.proc is not None and srv.proc.poll() is None
    assert srv.read_mailbox("a@hamap.local") == [b"world"]


# ---- the fsync order, through strace ----------------------------------------------------------

STRACE_CALLS = "fsync,fdatasync,write,writev,pwrite64,pwritev,pwritev2,sendto,sendmsg,rename,renameat,renameat2"


def test_every_ack_follows_the_fsync_that_covers_it(serve_factory, tmp_path):
    strace = require_tool("strace")
    trace = tmp_path / "trace.txt"
    wrap = [strace, "-f", "-ttt", "-T", "-y", "-s", "4096", "-o", str(trace), "-e", f"trace={STRACE_CALLS}"]
    srv = serve_factory(accounts=USERS, wrap=wrap)
    expectations: list[Expectation] = []
    lock = threading.Lock()

    def client(i: int) -> None:
        from mailcove.net.control import ControlClient

        with ControlClient(srv.control_socket, timeout=120) as c:
            for j in range(12):
                marker = f"FSYNCMARK{i:02d}x{j:03d}x{secrets.token_hex(6)}"
                big = j % 6 == 5
                reply = c.deliver(make_message(marker, BIG if big else 700), USERS[: 1 + j % 2])
                assert reply.startswith("OK "), reply
                with lock:
                    expectations.append(Expectation(marker, reply, big))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert len(expectations) == 72
    assert srv.stop() == 0
    calls = parse(trace.read_text(errors="replace"))
    problems = check(calls, str(srv.data_dir), expectations)
    assert not problems, "\n".join(problems[:10])

    # The checker must be able to fail: without the WAL fsyncs every inline message fails,
    # and without the directory fsyncs every blob fails.
    wal = os.path.realpath(srv.data_dir / "mail.db-wal")
    no_wal_sync = [c for c in calls if not (c.name in ("fsync", "fdatasync") and c.path == wal)]
    failed = check(no_wal_sync, str(srv.data_dir), expectations)
    assert len(failed) == len(expectations)
    blobs = os.path.realpath(srv.data_dir / "blobs")
    no_dir_sync = [
        c for c in calls if not (c.name in ("fsync", "fdatasync") and os.path.dirname(c.path) == blobs)
    ]
    failed = check(no_dir_sync, str(srv.data_dir), expectations)
    assert {p.split(":")[0] for p in failed} == {e.marker for e in expectations if e.blob}
    # Acks written before the sync that covers them (the fsync delayed until after each ack).
    late = [_shift_syncs_after_acks(c, calls) for c in calls]
    assert len(check(late, str(srv.data_dir), expectations)) == len(expectations)


def _shift_syncs_after_acks(call: Call, calls: list[Call]) -> Call:
    if call.name not in ("fsync", "fdatasync"):
        return call
    last = max(c.end for c in calls)
    return Call(call.pid, call.name, last + 1, last + 2, call.ret, call.args, call.path, call.strings)


def test_checker_on_handwritten_traces(tmp_path):
    d = str(tmp_path)
    wal = f"{d}/mail.db-wal"
    good = f"""\
100 1.000000 pwrite64(7<{wal}>, "xx MARK1 yy"..., 4096, 0) = 4096 <0.000010>
100 1.000100 fdatasync(7<{wal}> <unfinished ...>
200 1.000150 write(9<socket:[1]>, "OK a:1:1\\r\\n", 10) = 10 <0.000005>
100 1.000300 <... fdatasync resumed>) = 0 <0.000200>
200 1.000400 sendto(9<socket:[1]>, "OK a:1:2\\r\\n", 10, 0, NULL, 0) = 10 <0.000005>
"""
    calls = parse(good)
    assert [c.name for c in calls] == ["pwrite64", "fdatasync", "write", "sendto"]
    # ack 1 was written while the fsync was still running: rejected; ack 2 after it: accepted.
    probs = check(calls, d, [Expectation("MARK1", "OK a:1:1", False), Expectation("MARK1", "OK a:1:2", False)])
    assert len(probs) == 1 and "WAL fsync" in probs[0]
    missing = good.replace("fdatasync", "fstat")
    assert len(check(parse(missing), d, [Expectation("MARK1", "OK a:1:2", False)])) == 1
    wrong_file = good.replace(f"fdatasync(7<{wal}>", f"fdatasync(8<{d}/mail.db>")
    assert len(check(parse(wrong_file), d, [Expectation("MARK1", "OK a:1:2", False)])) == 1
    failed_sync = good.replace(") = 0 <0.000200>", ") = -1 EIO (Input/output error) <0.000200>")
    assert len(check(parse(failed_sync), d, [Expectation("MARK1", "OK a:1:2", False)])) == 1
    blob = f"""\
100 1.0 write(5<{d}/tmp/x.tmp>, "MARK2 data", 10) = 10 <0.000001>
100 1.1 fsync(6<{d}/tmp/x.tmp>) = 0 <0.000001>
100 1.2 rename("{d}/tmp/x.tmp", "{d}/blobs/ab/abcd") = 0 <0.000001>
100 1.3 fsync(6<{d}/blobs/ab>) = 0 <0.000001>
101 1.4 fdatasync(7<{wal}>) = 0 <0.000001>
102 1.5 write(9<socket:[2]>, "OK a:1:3\\r\\n", 10) = 10 <0.000001>
"""
    exp = [Expectation("MARK2", "OK a:1:3", True)]
    assert check(parse(blob), d, exp) == []
    for line in blob.splitlines()[1:5]:
        assert len(check(parse(blob.replace(line + "\n", "")), d, exp)) == 1, line


def test_strace_missing_fails_under_ci(monkeypatch):
    from mailcove_testing import require_tool as req

    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        req("no-such-tool-mailcove-test")

