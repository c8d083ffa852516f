"""Every limit, with its reply code: size, recipients, line length, body line length, errors,
connections, timeouts, failed AUTH, sending rates, quota, disk, mail loops."""

from __future__ import annotations

import base64

from smtp_lab import PASSWORD, start_lab, strip_trace

from inprocess import InProcessServer, SmtpClient, serve_in_process

SMALL = """max_message_bytes = 20000
max_recipients = 3
max_errors = 6
"""


def test_size_recipients_lines_and_errors(serve_factory):
    lab = start_lab(serve_factory, smtp=SMALL)
    c = lab.raw()
    ehlo = c.cmd(b"EHLO x")
    assert b"250-SIZE 20000\r\n" in ehlo
    # Declared size too big: refused at MAIL.
    assert c.cmd(b"MAIL FROM:<x@example.org> SIZE=20001").startswith(b"552 5.3.4")
    # Recipients: the fourth gets 452 4.5.3.
    c.cmd(b"MAIL FROM:<x@example.org> SIZE=100")
    for _ in range(3):
        assert c.cmd(b"RCPT TO:<a@hamap.local>").startswith(b"250")
    assert c.cmd(b"RCPT TO:<b@hamap.local>").startswith(b"452 4.5.3")
    # Real size too big: 552 after the data, nothing stored, the session goes on.
    assert c.cmd(b"DATA").startswith(b"354")
    c.send(b"Subject: big\r\n\r\n" + b"x" * 30000 + b"\r\n.\r\n")
    assert c.reply().startswith(b"552 5.3.4")
    # A body line far longer than 998 octets is accepted (real mail has them).
    c.cmd(b"MAIL FROM:<x@example.org>")
    c.cmd(b"RCPT TO:<a@hamap.local>")
    c.cmd(b"DATA")
    body = b"Subject: long\r\n\r\n" + b"y" * 15000 + b"\r\n"
    c.send(body + b".\r\n")
    assert c.reply().startswith(b"250")
    # Command line: 512 octets with CRLF is fine, 513 is not.
    assert c.cmd(b"NOOP " + b"a" * 505).startswith(b"250")
    assert c.cmd(b"NOOP " + b"a" * 506).startswith(b"500 5.5.2")
    assert c.cmd(b"NOOP " + b"a" * 100_000).startswith(b"500 5.5.2")  # no memory growth, one reply
    assert c.cmd(b"NOOP").startswith(b"250")
    # Errors: the sixth error closes the session with 421.
    # Errors so far: 552, 452, 500, 500. The fifth is answered, the sixth closes with 421.
    assert c.cmd(b"BOGUS").startswith(b"500 5.5.1")
    assert c.cmd(b"BOGUS").startswith(b"421 4.7.0")
    assert c.reply() == b""  # closed
    c.close()
    [stored] = lab.inbox("a@hamap.local")
    assert strip_trace(stored)[1] == body


async def test_connections_and_timeouts(tmp_path) -> None:
    """In process, on a FakeClock: command_timeout and data_timeout cut exactly when they pass
    (not a second before), and the caps let the slots go when they do. (The same limits over
    real sockets: tests/regress/test_connection_caps.py, test_slow_client_deadlines.py.)"""
    config = "[smtp]\nmax_connections_per_ip = 2\nmax_connections = 3\ncommand_timeout = 60\ndata_timeout = 60\n"
    async with serve_in_process(tmp_path, config) as lab:
        a = await lab.smtp("127.0.0.2")
        b = await lab.smtp("127.0.0.2")
        assert a.greeting.startswith(b"220") and b.greeting.startswith(b"220")
        third = await lab.smtp("127.0.0.2")
        assert third.greeting.startswith(b"421 4.7.0")
        assert await third.reply() == b""  # closed
        other = await lab.smtp("127.0.0.3")  # another client is not affected
        assert other.greeting.startswith(b"220")
        fourth = await lab.smtp("127.0.0.4")  # but the total is reached
        assert fourth.greeting.startswith(b"421 4.7.0")
        # Idle past command_timeout: 421 4.4.2 and closed; a second before, nothing.
        await lab.clock.advance(59)
        assert [c.unread() for c in (a, b, other)] == [b"", b"", b""]
        await lab.clock.advance(2)
        for c in (a, b, other):
            assert (await c.reply()).startswith(b"421 4.4.2")
            assert await c.reply() == b""
        # Slots are free again; a stalled DATA also times out.
        c = await lab.smtp("127.0.0.2")
        assert c.greeting.startswith(b"220")
        await c.cmd(b"EHLO x")
        await c.cmd(b"MAIL FROM:<x@example.org>")
        await c.cmd(b"RCPT TO:<a@hamap.local>")
        assert (await c.cmd(b"DATA")).startswith(b"354")
        c.send(b"Subject: partial\r\n")
        await lab.clock.advance(59)
        assert c.unread() == b""
        await lab.clock.advance(2)
        assert (await c.reply()).startswith(b"421 4.4.2")
        assert await lab.inbox("a@hamap.local") == []


async def _answered_after(lab: InProcessServer, c: SmtpClient, line: bytes, delay: float) -> bytes:
    """Send `line`; check the server answers it only after `delay` seconds on its clock."""
    made = lab.clock.made
    c.send(line + b"\r\n")
    await lab.clock.waiting(delay, since=made)
    assert c.unread() == b"", f"answered before its {delay} s delay"
    await lab.clock.advance(delay)
    return await c.reply()


async def test_auth_failures_and_sending_limits(tmp_path) -> None:
    """In process, on a FakeClock: each failed AUTH is answered after the throttle's delay (0.5 s,
    doubling, the maximum once the client is over its limit), the client is refused until its
    failures leave the window, and the hourly sending limits free up after an hour. (Over real
    sockets: tests/regress/test_login_throttle_race.py, test_smtp_srs_forgery.py's rate.)"""
    config = ("[auth]\nallow_plaintext = true\nmax_failures_per_ip = 3\nfailure_window_seconds = 300\n"
              "[smtp]\nmax_auth_failures = 2\nsend_messages_per_hour = 2\nsend_recipients_per_hour = 3\n")
    async with serve_in_process(tmp_path, config) as lab:
        bad = b"AUTH PLAIN " + base64.b64encode(b"\0a@hamap.local\0nope")
        good = b"AUTH PLAIN " + base64.b64encode(b"\0a@hamap.local\0" + PASSWORD.encode())
        c = await lab.smtp("127.0.0.2")
        await c.cmd(b"EHLO x")
        assert (await _answered_after(lab, c, bad, 0.5)).startswith(b"535 5.7.8")
        assert (await _answered_after(lab, c, bad, 1.0)).startswith(b"421 4.7.0")  # per-session limit
        assert await c.reply() == b""
        c = await lab.smtp("127.0.0.2")
        await c.cmd(b"EHLO x")
        # The third failure from 127.0.0.2 reaches [auth] max_failures_per_ip: the longest delay.
        assert (await _answered_after(lab, c, bad, 5.0)).startswith(b"535")
        # Now the shared throttle refuses even the right password, at once.
        assert (await c.cmd(good)).startswith(b"454 4.7.0")
        c.close()
        # Until the failures leave the window (300 s after the first of them).
        await lab.clock.advance(300 - 0.5 - 1.0 - 5.0 - 0.001)
        c = await lab.smtp("127.0.0.2")
        await c.cmd(b"EHLO x")
        assert (await c.cmd(good)).startswith(b"454 4.7.0")
        c.close()
        await lab.clock.advance(0.002)
        c = await lab.smtp("127.0.0.2")
        await c.cmd(b"EHLO x")
        assert (await c.cmd(good)).startswith(b"235 2.7.0")
        c.close()
        # Another address logs in; its sending limits: 3 recipients and 2 messages an hour.
        c = await lab.smtp("127.0.0.3")
        await c.cmd(b"EHLO x")
        assert (await c.cmd(good)).startswith(b"235 2.7.0")
        msg = b"From: a@hamap.local\r\nSubject: s\r\n\r\nx\r\n.\r\n"
        c.send(b"MAIL FROM:<a@hamap.local>\r\nRCPT TO:<b@hamap.local>\r\nRCPT TO:<x@example.net>\r\nDATA\r\n")
        assert [r[:3] for r in await c.replies(4)] == [b"250", b"250", b"250", b"354"]
        c.send(msg)
        assert (await c.reply()).startswith(b"250")
        c.send(b"MAIL FROM:<a@hamap.local>\r\nRCPT TO:<b@hamap.local>\r\nRCPT TO:<y@example.net>\r\n")
        assert [r[:9] for r in await c.replies(3)] == [b"250 2.1.0", b"250 2.1.5", b"451 4.7.1"]
        c.send(b"DATA\r\n" + msg)
        assert [r[:3] for r in await c.replies(2)] == [b"354", b"250"]
        assert (await c.cmd(b"MAIL FROM:<a@hamap.local>")).startswith(b"451 4.7.1")  # 2 messages this hour
        c.close()
        # An hour later (the first message's minute has left the window) the user may send again.
        await lab.clock.advance(3600)
        c = await lab.smtp("127.0.0.3")
        await c.cmd(b"EHLO x")
        assert (await c.cmd(good)).startswith(b"235 2.7.0")
        assert (await c.cmd(b"MAIL FROM:<a@hamap.local>")).startswith(b"250")
        assert (await c.cmd(b"RCPT TO:<b@hamap.local>")).startswith(b"250")


def test_quota_disk_and_loops(serve_factory):
    lab = start_lab(serve_factory, setup=lambda lab: lab.cli("user", "quota", "b@hamap.local", "--messages", "1"))
    c = lab.raw()
    c.cmd(b"EHLO x")
    msg = b"Subject: q\r\n\r\nx\r\n.\r\n"
    c.send(b"MAIL FROM:<x@example.org>\r\nRCPT TO:<b@hamap.local>\r\nDATA\r\n" + msg)
    assert [r[:3] for r in c.replies(4)] == [b"250", b"250", b"354", b"250"]
    c.send(b"MAIL FROM:<x@example.org>\r\nRCPT TO:<b@hamap.local>\r\n")
    assert [r[:9] for r in c.replies(2)] == [b"250 2.1.0", b"452 4.2.2"]
    c.cmd(b"RSET")
    # Two local recipients, one of them full: the one reply after DATA is temporary for both.
    c.send(b"MAIL FROM:<x@example.org>\r\nRCPT TO:<a@hamap.local>\r\n")
    c.replies(2)
    r = c.cmd(b"RCPT TO:<b@hamap.local>")
    assert r.startswith(b"452 4.2.2")
    # Loop: 101 Received headers.
    loop = b"Received: from x by y; Thu, 1 Jan 2026 00:00:00 +0000\r\n" * 101 + b"Subject: loop\r\n\r\nx\r\n"
    c.send(b"DATA\r\n" + loop + b".\r\n")
    assert [r[:9] for r in c.replies(2)] == [b"354 End d", b"554 5.4.6"]
    ok = b"Received: from x by y; Thu, 1 Jan 2026 00:00:00 +0000\r\n" * 100 + b"Subject: fine\r\n\r\nx\r\n"
    c.send(b"MAIL FROM:<x@example.org>\r\nRCPT TO:<a@hamap.local>\r\nDATA\r\n" + ok + b".\r\n")
    assert [r[:3] for r in c.replies(4)] == [b"250", b"250", b"354", b"250"]
    c.close()
    assert len(lab.inbox("b@hamap.local")) == 1
    assert strip_trace(lab.inbox("a@hamap.local")[0])[1] == ok


def test_store_refusal_after_data_is_temporary_for_all(serve_factory):
    """Free space below the floor: 452 4.3.1 after DATA, for every recipient, nothing stored."""
    lab = start_lab(serve_factory, extra="[store]\nmin_free_bytes = 1000000000000000\n")
    c = lab.raw()
    c.cmd(b"EHLO x")
    c.send(b"MAIL FROM:<x@example.org>\r\nRCPT TO:<a@hamap.local>\r\nRCPT TO:<b@hamap.local>\r\nDATA\r\n"
           b"Subject: d\r\n\r\nx\r\n.\r\n")
    assert [r[:9] for r in c.replies(5)] == [b"250 2.1.0", b"250 2.1.5", b"250 2.1.5", b"354 End d", b"452 4.3.1"]
    c.close()
    assert lab.inbox("a@hamap.local") == [] and lab.inbox("b@hamap.local") == []


def test_quota_after_data_when_two_sessions_race(serve_factory):
    """Quota checked at RCPT can still be passed by a parallel delivery; then the store's check
    at commit refuses and the reply after DATA is 452 4.2.2 (temporary), not an acceptance."""
    lab = start_lab(serve_factory, setup=lambda lab: lab.cli("user", "quota", "b@hamap.local", "--messages", "1"))
    c1, c2 = lab.raw(), lab.raw()
    for c in (c1, c2):
        c.cmd(b"EHLO x")
        c.send(b"MAIL FROM:<x@example.org>\r\nRCPT TO:<a@hamap.local>\r\nRCPT TO:<b@hamap.local>\r\nDATA\r\n")
        assert [r[:3] for r in c.replies(4)] == [b"250", b"250", b"250", b"354"]
    c1.send(b"Subject: 1\r\n\r\nx\r\n.\r\n")
    assert c1.reply().startswith(b"250")
    c2.send(b"Subject: 2\r\n\r\nx\r\n.\r\n")
    assert c2.reply().startswith(b"452 4.2.2")
    assert len(lab.inbox("a@hamap.local")) == 1  # all or nothing: a did not get the second


