"""POP3 sessions against a real `mailcove serve`, driven by poplib (stdlib) and raw sockets."""

from __future__ import annotations

import base64
import poplib
import socket
import time

import pytest

from inprocess import InProcessServer, Pop3Client, serve_in_process
from mailcove.proto.pop3.client import ClientConnection
from mailcove.proto.pop3.sasl import plain_message
from mailcove.store.factory import open_store
from mailcove_testing import run_async

from .helpers import LAB, PASSWORD, fill, login, message, no_verify, retr_bytes, settings_of, start_pop3

A = "a@hamap.local"


def raw(srv, listener: str = "pop3") -> socket.socket:
    s = socket.create_connection(srv.address(listener), timeout=30)
    return s


def drop(p: poplib.POP3) -> None:
    """Close the client's connection without QUIT (poplib's file object holds the socket too)."""
    p.file.close()
    p.sock.close()


def relogin(srv, user: str, within: float = 15.0) -> poplib.POP3:
    """Log in right after dropping a session: the server frees the lock when it sees the EOF,
    which on a loaded machine may take a moment, so [IN-USE] is retried for a while."""
    deadline = time.monotonic() + within
    while True:
        try:
            return login(srv, user)
        except poplib.error_proto as exc:
            if b"[IN-USE]" not in exc.args[0] or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def read_replies(s: socket.socket, cl: ClientConnection, n: int) -> list:
    out = []
    while len(out) < n:
        r = cl.next_response()
        if r is not None:
            out.append(r)
            continue
        data = s.recv(65536)
        if not data:
            raise ConnectionError(f"closed after {len(out)} replies")
        cl.receive_data(data)
    return out


# --- logins in every mode ----------------------------------------------------------------------


def test_lab_mode_user_pass_and_every_command(lab, user):
    srv = lab
    msgs = [message(1), message(2, 5000), b"Subject: no final newline\r\n\r\n.x"]
    uids = fill(srv, user, msgs)
    p = poplib.POP3(*srv.address("pop3"), timeout=30)
    assert p.getwelcome().startswith(b"+OK")
    caps = p.capa()
    for cap in ("TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "USER"):
        assert cap in caps
    assert caps["SASL"] == ["PLAIN"]
    assert "STLS" in caps  # TLS is on by default; lab mode only allows plaintext logins besides
    assert p.user(user).startswith(b"+OK")
    assert p.pass_(PASSWORD).startswith(b"+OK")
    assert p.stat() == (3, sum(len(m) for m in msgs))
    _resp, lines, _ = p.list()
    assert lines == [b"%d %d" % (i + 1, len(m)) for i, m in enumerate(msgs)]
    assert p.list(2).split()[1:] == [b"2", str(len(msgs[1])).encode()]
    _resp, lines, _ = p.uidl()
    uidls = [line.split()[1] for line in lines]
    assert len(set(uidls)) == 3 and all(u.endswith(b".%d" % uid) for u, uid in zip(uidls, uids, strict=True))
    assert p.uidl(3).split()[2] == uidls[2]
    assert retr_bytes(p, 1) == msgs[0]
    assert retr_bytes(p, 2) == msgs[1]
    # Not CRLF-terminated: the reply's last line gets its CRLF (the terminator needs a line).
    assert retr_bytes(p, 3) == msgs[2] + b"\r\n"
    _resp, top, _ = p.top(1, 0)
    assert b"\r\n".join(top) + b"\r\n" == msgs[0][: msgs[0].index(b"\r\n\r\n") + 4]
    _resp, top, _ = p.top(1, 2)
    assert top[-2:] == [b"Body of message 1.", b".a line starting with a dot"]
    _resp, top, _ = p.top(2, 10**9)  # more lines than the body has: the whole message
    assert b"".join(line + b"\r\n" for line in top) == msgs[1]
    assert p.noop().startswith(b"+OK")
    assert p.quit().startswith(b"+OK")


def test_plaintext_refused_before_tls_then_stls(strict, user):
    srv = strict
    fill(srv, user, [message(1)])
    p = poplib.POP3(*srv.address("pop3"), timeout=30)
    caps = p.capa()
    assert "STLS" in caps and "USER" not in caps and "SASL" not in caps
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\] Plaintext"):
        p.user(user)
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\] Plaintext"):
        p._shortcmd("AUTH PLAIN " + base64.b64encode(plain_message(user, PASSWORD)).decode())
    assert p.stls(no_verify()).startswith(b"+OK")
    caps = p.capa()
    assert "USER" in caps and caps["SASL"] == ["PLAIN"] and "STLS" not in caps
    with pytest.raises(poplib.error_proto, match="already active"):
        p._shortcmd("STLS")
    p.user(user)
    p.pass_(PASSWORD)
    assert p.stat()[0] == 1
    assert retr_bytes(p, 1) == message(1)
    p.quit()


def test_implicit_tls_and_auth_plain(strict, user):
    srv = strict
    fill(srv, user, [message(1)])
    # SASL PLAIN with an initial response (RFC 5034).
    p = poplib.POP3_SSL(*srv.address("pop3s"), context=no_verify(), timeout=30)
    assert "STLS" not in p.capa()
    r = p._shortcmd("AUTH PLAIN " + base64.b64encode(plain_message(user, PASSWORD)).decode())
    assert r.startswith(b"+OK")
    assert retr_bytes(p, 1) == message(1)
    p.quit()
    # Without one: "+ " continuation, then the response line.
    p = poplib.POP3_SSL(*srv.address("pop3s"), context=no_verify(), timeout=30)
    p._putcmd("AUTH PLAIN")
    assert p._getline()[0] == b"+ "
    assert p._shortcmd(base64.b64encode(plain_message(user, PASSWORD)).decode()).startswith(b"+OK")
    p.quit()
    # "*" cancels; an authorization identity of someone else is refused; bad base64 is an error.
    p = poplib.POP3_SSL(*srv.address("pop3s"), context=no_verify(), timeout=30)
    p._putcmd("AUTH PLAIN")
    p._getline()
    with pytest.raises(poplib.error_proto, match="cancelled"):
        p._shortcmd("*")
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        p._shortcmd("AUTH PLAIN " + base64.b64encode(plain_message(user, PASSWORD, "b@hamap.local")).decode())
    with pytest.raises(poplib.error_proto, match="base64"):
        p._shortcmd("AUTH PLAIN !!!")
    with pytest.raises(poplib.error_proto, match="Unsupported"):
        p._shortcmd("AUTH CRAM-MD5")
    # Bare AUTH lists the mechanisms (draft-era clients ask this way).
    _resp, lines, _ = p._longcmd("AUTH")
    assert lines == [b"PLAIN"]
    # Logging in as the authorization identity itself is fine.
    r = p._shortcmd("AUTH PLAIN " + base64.b64encode(plain_message(user, PASSWORD, user)).decode())
    assert r.startswith(b"+OK")
    p.quit()
    # USER/PASS over pop3s.
    login(srv, user, tls="implicit").quit()


async def _answered_after(lab: InProcessServer, p: Pop3Client, line: bytes, delay: float) -> bytes:
    """Send `line`; check the server answers it only after `delay` seconds on its clock."""
    made = lab.clock.made
    p.send(line + b"\r\n")
    await lab.clock.waiting(delay, since=made)
    assert p.unread() == b"", f"answered before its {delay} s delay"
    await lab.clock.advance(delay)
    return await p.line()


async def test_failed_logins_disconnect_and_share_the_throttle(tmp_path):
    """In process, on a FakeClock: each failure is answered after the shared throttle's delay
    (0.5 s, doubling; the longest once the client is over [auth] max_failures_per_ip), three in
    one session close it, and the next session from the address is refused without a check.
    (Over a real socket: tests/regress/test_login_throttle_race.py.)"""
    async with serve_in_process(tmp_path, LAB + "max_failures_per_ip = 3\n") as lab:
        p = await lab.pop3()
        assert (await p.cmd(b"USER " + A.encode())).startswith(b"+OK")
        assert await _answered_after(lab, p, b"PASS wrong", 0.5) == b"-ERR [AUTH] Authentication failed.\r\n"
        assert b"PASS must follow" in await p.cmd(b"PASS " + PASSWORD.encode())  # USER again first
        assert (await p.cmd(b"USER nobody@hamap.local")).startswith(b"+OK")
        assert (await _answered_after(lab, p, b"PASS " + PASSWORD.encode(), 1.0)).startswith(b"-ERR [AUTH]")
        assert (await p.cmd(b"USER " + A.encode())).startswith(b"+OK")
        assert (await _answered_after(lab, p, b"PASS wrong again", 5.0)).startswith(b"-ERR [AUTH]")
        # Three failures in one session: the server says so and closes.
        assert (await p.line()).startswith(b"-ERR Too many failed logins")
        assert await p.read_all() == b""
        # The [auth] throttle counts failures per IP across sessions (and protocols).
        p = await lab.pop3()
        assert (await p.cmd(b"USER " + A.encode())).startswith(b"+OK")
        # even the right password is not checked now, and the refusal is not delayed
        assert (await p.cmd(b"PASS " + PASSWORD.encode())).startswith(b"-ERR [SYS/TEMP] Too many failed logins")


# --- the maildrop -------------------------------------------------------------------------------


def test_dele_rset_quit_and_dropped_connections(lab, user):
    srv = lab
    msgs = [message(i, 200 * i) for i in range(1, 6)]
    fill(srv, user, msgs)
    total = sum(len(m) for m in msgs)
    p = login(srv, user)
    assert p.dele(1).startswith(b"+OK")
    assert p.stat() == (4, total - len(msgs[0]))
    for cmd in (lambda: p.retr(1), lambda: p.list(1), lambda: p.dele(1), lambda: p.uidl(1), lambda: p.top(1, 0)):
        with pytest.raises(poplib.error_proto, match="Message 1 is deleted"):
            cmd()
    assert len(p.list()[1]) == 4 and len(p.uidl()[1]) == 4
    with pytest.raises(poplib.error_proto, match="No such message 6"):
        p.retr(6)
    with pytest.raises(poplib.error_proto, match="No such message 0"):
        p.list(0)
    assert p.rset().startswith(b"+OK 5 messages")
    assert p.stat() == (5, total)
    p.dele(2)
    p.dele(3)
    drop(p)  # dropped without QUIT: nothing is deleted
    p = relogin(srv, user)  # the lock went with the dropped session
    assert p.stat() == (5, total)
    p.dele(2)
    p.dele(4)
    assert p.quit().startswith(b"+OK Logging out, 2 messages deleted, 3 left")
    assert srv.read_mailbox(user) == [msgs[0], msgs[2], msgs[4]]
    p = login(srv, user)
    assert p.stat() == (3, len(msgs[0]) + len(msgs[2]) + len(msgs[4]))
    assert retr_bytes(p, 2) == msgs[2]
    p.quit()


def test_lock_one_session_per_user(strict, user, user2):
    srv = strict
    fill(srv, user, [message(1)])
    first = login(srv, user, tls="implicit")
    for mode in ("stls", "implicit"):
        with pytest.raises(poplib.error_proto, match=r"-ERR \[IN-USE\]"):
            login(srv, user, tls=mode)
    other = login(srv, user2, tls="stls")  # other users are not affected
    other.quit()
    # user refused login leaves the session in AUTHORIZATION: it can try again once the lock is free.
    second = poplib.POP3(*srv.address("pop3"), timeout=30)
    second.stls(no_verify())
    second.user(user)
    with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
        second.pass_(PASSWORD)
    first.quit()
    second.user(user)
    assert second.pass_(PASSWORD).startswith(b"+OK")
    second.quit()


def test_retr_marks_seen_at_quit_only(lab, user):
    srv = lab
    fill(srv, user, [message(1), message(2), message(3)])
    p = login(srv, user)
    p.retr(1)
    p.top(2, 1)
    drop(p)
    p = relogin(srv, user)
    p.retr(1)
    p.top(2, 1)
    p.retr(3)
    p.dele(3)
    p.quit()
    flags = _flags(srv, user)
    assert flags == [frozenset({"\\Seen"}), frozenset()]


def _flags(srv, user):
    async def go():
        store = open_store(settings_of(srv), watch_changes=False)
        await store.start()
        try:
            box = await store.get_mailbox(user, "INBOX")
            return list((await store.index(box.id)).flags)
        finally:
            await store.close()

    return run_async(go())


def test_uidl_unique_and_stable_across_restart(serve_factory):
    srv = start_pop3(serve_factory)
    fill(srv, A, [message(i) for i in range(1, 6)])
    p = login(srv)
    before = [line.split()[1] for line in p.uidl()[1]]
    assert len(set(before)) == 5
    p.dele(2)
    p.quit()
    srv.restart()
    fill(srv, A, [message(6)])
    p = login(srv)
    after = [line.split()[1] for line in p.uidl()[1]]
    assert after[:4] == [before[0], *before[2:]]
    assert after[4] not in before and len(set(after)) == 5
    p.quit()


def test_imported_mail_keeps_its_x_uidl(lab, user):
    srv = lab
    msgs = [
        message(1, extra_headers=b"X-UIDL: 0a1b2c3d4e5f\r\n"),
        message(2, extra_headers=b"x-uidl:   folded\r\n  part\r\n"),  # folded: not a valid UIDL (space)
        message(3, extra_headers=b"X-UIDL: 0a1b2c3d4e5f\r\n"),  # a duplicate: the older keeps it
        message(4, extra_headers=b"X-UIDL: 12.34\r\n"),  # looks like one of ours: ignored
        message(5, extra_headers=b"X-UIDL: <AAA_bbb-1@old.server>\r\n"),
        message(6),
    ]
    fill(srv, user, msgs)
    p = login(srv, user)
    uidls = [line.split()[1] for line in p.uidl()[1]]
    assert uidls[0] == b"0a1b2c3d4e5f"
    assert uidls[4] == b"<AAA_bbb-1@old.server>"
    for i in (1, 2, 3, 5):
        assert uidls[i].count(b".") == 1 and uidls[i].replace(b".", b"").isdigit()
    assert len(set(uidls)) == 6
    assert retr_bytes(p, 1) == msgs[0]  # the header stays in the message
    p.quit()


def test_deletions_reach_other_sessions_as_expunges(lab, user):
    """IMAP sessions learn of expunges from the store's change bus; a store opened in another
    process (as here) sees the POP3 deletion the same way, through the change log."""
    srv = lab
    uids = fill(srv, user, [message(1), message(2)])

    async def go():
        store = open_store(settings_of(srv), watch_changes=True)
        await store.start()
        try:
            sub = store.changes.subscribe(user)
            p = await _in_thread(lambda: login(srv, user))
            await _in_thread(lambda: p.dele(1))
            await _in_thread(p.quit)
            deadline = time.monotonic() + 10
            seen = []
            while time.monotonic() < deadline:
                await sub.wait(0.5)
                seen += [ch for ch in sub.drain() if ch.kind == "expunge"]
                if seen:
                    break
            return seen
        finally:
            await store.close()

    import asyncio

    async def _in_thread(fn):
        return await asyncio.get_running_loop().run_in_executor(None, fn)

    seen = run_async(go())
    assert seen and seen[0].uids == (uids[0],)


def test_message_expunged_elsewhere_during_the_session(lab, user):
    srv = lab
    uids = fill(srv, user, [message(1), message(2)])
    p = login(srv, user)

    async def expunge():
        store = open_store(settings_of(srv), watch_changes=False)
        await store.start()
        try:
            box = await store.get_mailbox(user, "INBOX")
            await store.expunge(box.id, [uids[0]])
        finally:
            await store.close()

    run_async(expunge())
    with pytest.raises(poplib.error_proto, match=r"\[SYS/PERM\] Message 1 was removed"):
        p.retr(1)
    with pytest.raises(poplib.error_proto, match=r"removed"):
        p.top(1, 0)
    assert retr_bytes(p, 2) == message(2)
    p.dele(1)  # deleting what is already gone is harmless at QUIT
    assert p.quit().startswith(b"+OK")


# --- exact bytes ---------------------------------------------------------------------------------


def test_retr_is_byte_exact(lab, user):
    from mailcove.pop3.session import CHUNK

    srv = lab
    big = bytearray(message(1, 3 * CHUNK + 777))
    # Lines starting with "." exactly at and around the chunk boundaries.
    for k in (1, 2, 3):
        for off in (-2, -1, 0):
            pos = k * CHUNK + off
            big[pos - 2 : pos + 1] = b"\r\n."
    msgs = [
        bytes(big),
        b"Subject: dots\r\n\r\n.\r\n..\r\n...\r\n.\r\n\r\n.end\r\n",
        b"Subject: 8bit\r\n\r\n" + bytes(range(256)).replace(b"\n", b"").replace(b"\r", b"") + b"\r\n",
        b"Subject: empty body\r\n\r\n",
        b".starts with a dot: no header at all\r\n",
    ]
    fill(srv, user, msgs)
    p = login(srv, user)
    stat_total = p.stat()[1]
    assert stat_total == sum(len(m) for m in msgs)
    for i, m in enumerate(msgs, 1):
        assert int(p.list(i).split()[2]) == len(m)
        resp, lines, _ = p.retr(i)
        assert resp == b"+OK %d octets" % len(m)
        assert b"".join(line + b"\r\n" for line in lines) == m, i
    p.quit()
    # The same over raw bytes, checking the wire form and the client core's unstuffing.
    s = raw(srv)
    cl = ClientConnection()
    s.sendall(cl.send(b"USER " + user.encode()) + cl.send(b"PASS " + PASSWORD.encode()))
    read_replies(s, cl, 3)
    for i in range(1, len(msgs) + 1):
        s.sendall(cl.send(b"RETR %d" % i, multiline=True))
        (r,) = read_replies(s, cl, 1)
        assert r.ok and r.body == msgs[i - 1]
    s.close()


def test_bare_lf_message_is_not_cut_short(lab, user):
    """user stored message with bare LF (delivered raw) is stuffed after every LF: a "." line after
    a bare LF cannot end the reply early, and LIST counts the bytes RETR sends."""
    srv = lab
    m = b"Subject: lf\n\n.\r\n.\nafter\n"
    fill(srv, user, [m])
    p = login(srv, user)
    resp, lines, _ = p.retr(1)
    assert int(resp.split()[1]) == len(m) == int(p.list(1).split()[2])
    # The last line ends with a bare LF, so the terminator gets its own CRLF first (CRLF "." CRLF,
    # RFC 1939 section 3): a line-splitting client sees one empty line more.
    assert b"\n".join(lines) == m.replace(b"\r", b"")
    p.quit()


# --- pipelining, bad input ----------------------------------------------------------------------


def test_pipelined_commands_in_one_write(lab, user):
    srv = lab
    msgs = [message(i, 300) for i in range(1, 11)]
    fill(srv, user, msgs)
    s = raw(srv)
    cl = ClientConnection()
    wire = b"".join(
        [
            cl.send(b"CAPA", multiline=True),
            cl.send(b"USER " + user.encode()),
            cl.send(b"PASS " + PASSWORD.encode()),
            cl.send(b"STAT"),
            cl.send(b"LIST", multiline=True),
            cl.send(b"UIDL", multiline=True),
            *[cl.send(b"RETR %d" % i, multiline=True) for i in range(1, 11)],
            cl.send(b"DELE 3"),
            cl.send(b"BOGUS"),
            cl.send(b"TOP 4 0", multiline=True),
            cl.send(b"QUIT"),
        ]
    )
    s.sendall(wire)
    replies = read_replies(s, cl, cl.waiting)
    assert b"PIPELINING" in replies[1].lines
    assert replies[4].text == b"10 %d" % sum(len(m) for m in msgs)
    assert len(replies[5].lines) == 10 and len(replies[6].lines) == 10
    assert [r.body for r in replies[7:17]] == msgs
    assert replies[17].ok and not replies[18].ok and replies[18].text.startswith(b"Unknown command")
    assert replies[19].body == msgs[3][: msgs[3].index(b"\r\n\r\n") + 4]
    assert replies[20].ok and replies[20].text.startswith(b"Logging out, 1 messages deleted")
    assert s.recv(10) == b""
    assert len(srv.read_mailbox(user)) == 9


def test_pipelined_bytes_after_stls_are_dropped(strict, user):
    srv = strict
    fill(srv, user, [message(1)])
    s = raw(srv)
    assert s.recv(1000).startswith(b"+OK")
    # USER/PASS/DELE/QUIT sent in plaintext right behind STLS must never be executed.
    s.sendall(b"STLS\r\nUSER %s\r\nPASS It1\r\nDELE 1\r\nQUIT\r\n" % user.encode())
    buf = b""
    while not buf.endswith(b"\r\n"):
        buf += s.recv(1000)
    assert buf == b"+OK Begin TLS negotiation now.\r\n"
    tls = no_verify().wrap_socket(s, server_hostname="localhost")
    tls.sendall(b"CAPA\r\n")
    got = b""
    while not got.endswith(b"\r\n.\r\n"):
        got += tls.recv(4096)
    assert got.startswith(b"+OK Capability") and b"USER" in got  # no stale replies before it
    tls.close()
    p = login(srv, user, tls="stls")
    assert p.stat()[0] == 1
    p.quit()


def test_bad_input_gets_reasons_then_a_polite_disconnect(lab, user):
    srv = lab
    fill(srv, user, [message(1)])
    s = raw(srv)
    cl = ClientConnection()
    read_replies(s, cl, 1)
    before = [
        (b"STAT", b"STAT is not allowed in the AUTHORIZATION state"),
        (b"RETR 1", b"RETR is not allowed"),
        (b"PASS x", b"PASS must follow a successful USER"),
        (b"HELO", b"Unknown command HELO"),
        (b"", b"Empty command"),
        (b"X" * 9000, b"Line too long"),
        (b"USER", b"USER needs a user name"),
        (b"\xff\xfe", b"Invalid UTF-8"),
    ]
    for line, reason in before:
        s.sendall(cl.send(line))
        (r,) = read_replies(s, cl, 1)
        assert not r.ok and r.text.startswith(reason), (line, r)
    s.sendall(cl.send(b"USER " + user.encode()) + cl.send(b"PASS " + PASSWORD.encode()))
    assert all(r.ok for r in read_replies(s, cl, 2))
    after = [
        (b"RETR", b"Missing message number"),
        (b"RETR x", b"Invalid message number"),
        (b"LIST 1 2", b"LIST takes at most one argument"),
        (b"TOP 1", b"TOP takes a message number and a line count"),
    ]
    for line, reason in after:
        s.sendall(cl.send(line))
        (r,) = read_replies(s, cl, 1)
        assert not r.ok and r.text.startswith(reason), (line, r)
    for _ in range(7):
        s.sendall(cl.send(b"NOOP now"))
        (r,) = read_replies(s, cl, 1)
        assert not r.ok and r.text == b"NOOP takes no arguments"
    # The 20th bad command closes the session (nothing deleted: no QUIT).
    s.sendall(cl.send(b"DELE 1") + cl.send(b"STLS"))
    ok, last = read_replies(s, cl, 2)
    assert ok.ok and not last.ok and b"Too many bad commands" in last.text
    assert s.recv(10) == b""
    # The server carries on.
    p = login(srv, user)
    assert p.stat()[0] == 1
    p.quit()


async def test_idle_sessions_are_closed_and_no_stls_without_tls(tmp_path):
    """In process, on a FakeClock: idle_timeout cuts an idle session exactly when it passes, and a
    client that stops reading is cut idle_timeout after the server's writes began to wait, its
    maildrop lock released. (Over a real socket: tests/regress/test_slow_client_deadlines.py.)"""
    async with serve_in_process(tmp_path, LAB + "[pop3]\nidle_timeout = 30\n") as lab:
        p = await lab.pop3()
        assert (await p.cmd(b"CAPA")).startswith(b"+OK")
        assert b"STLS\r\n" not in b"".join(await p.multiline())
        assert await p.cmd(b"STLS") == b"-ERR TLS is not available.\r\n"
        assert (await p.cmd(b"QUIT")).startswith(b"+OK")
        s = await lab.pop3()
        await lab.clock.advance(29.9)
        assert s.unread() == b""
        await lab.clock.advance(0.1)
        assert await s.read_all() == b"-ERR Disconnected for inactivity.\r\n"
        # A client that sends commands but never reads the replies is cut off too (the server waits
        # for it at most idle_timeout), and its maildrop lock is released.
        await lab.deliver(A, message(1, 2_000_000))
        s = await lab.pop3()
        s.reading = False
        made = lab.clock.made
        s.send(b"USER %s\r\nPASS %s\r\n" % (A.encode(), PASSWORD.encode()) + b"RETR 1\r\n" * 30)
        await lab.clock.waiting(30, since=made)  # the server's write waits for the client
        await lab.clock.advance(29.9)
        assert not s.task.done()
        await lab.clock.advance(0.1)
        await s.task
        p = await lab.pop3()
        assert (await p.login()).startswith(b"+OK")
        assert (await p.cmd(b"STAT")).startswith(b"+OK 1 ")


def test_shutdown_mid_session_deletes_nothing(serve_factory):
    srv = start_pop3(serve_factory)
    fill(srv, A, [message(1)])
    p = login(srv)
    p.dele(1)
    srv.stop()
    assert p._getline()[0] == b"-ERR [SYS/TEMP] Server shutting down."
    assert srv.read_mailbox(A) == [message(1)]


# --- a big maildrop -----------------------------------------------------------------------------


def test_ten_thousand_messages(lab, user):
    srv = lab
    msgs = [message(i) for i in range(10_000)]
    fill(srv, user, msgs, batch=1000)
    p = login(srv, user)
    assert p.stat() == (10_000, sum(len(m) for m in msgs))
    _r, lines, _ = p.list()
    assert len(lines) == 10_000 and lines[-1] == b"10000 %d" % len(msgs[-1])
    _r, lines, _ = p.uidl()
    assert len({line.split()[1] for line in lines}) == 10_000
    for n in (1, 5000, 10_000):
        assert retr_bytes(p, n) == msgs[n - 1]
    for n in range(1, 10_001, 2):
        p._putcmd(f"DELE {n}")
    for _ in range(5000):
        assert p._getresp().startswith(b"+OK")
    assert p.stat()[0] == 5000
    p.quit()
    p = login(srv, user)
    assert p.stat()[0] == 5000
    assert retr_bytes(p, 1) == msgs[1]
    p.quit()
