"""Session behaviour over a real server: delivery, trace headers, byte-exact storage, unknown
users, relay refusal, AUTH before TLS, VRFY/HELP/EXPN, and 421 at shutdown. One server for all,
stopped at the end."""

from __future__ import annotations

from smtp_lab import LOCAL_MSG, start_lab, strip_trace


def test_session_basics(serve_factory):
    lab = start_lab(serve_factory)
    body = b"From: x@example.org\r\nTo: a@hamap.local\r\nSubject: t\r\n\r\nline\r\n.dot\r\n\r\n8bit \xc3\xa9\xff\r\n"
    with lab.smtp(source="127.0.0.3") as c:
        c.ehlo("client.example")
        assert c.has_extn("pipelining") and c.has_extn("chunking") and c.has_extn("enhancedstatuscodes")
        assert c.has_extn("dsn") and c.has_extn("smtputf8") and c.has_extn("8bitmime") and c.has_extn("starttls")
        assert c.has_extn("size")
        c.sendmail("x@example.org", ["a@hamap.local"], body)
    [stored] = lab.inbox("a@hamap.local")
    trace, rest = strip_trace(stored)
    assert rest == body
    assert trace.startswith(b"Return-Path: <x@example.org>\r\nReceived: from client.example ([127.0.0.3])")
    assert b"for <a@hamap.local>" in trace

    # Unknown user and relay denied at RCPT; the valid recipient still gets the message.
    with lab.smtp(source="127.0.0.3") as c:
        c.ehlo("x")
        c.mail("x@example.org")
        assert c.rcpt("nobody@hamap.local")[0] == 550
        code, msg = c.rcpt("someone@example.net")
        assert (code, msg[:5]) == (550, b"5.7.1")
        assert c.rcpt("b@hamap.local")[0] == 250
        assert c.data(LOCAL_MSG)[0] == 250
    assert len(lab.inbox("b@hamap.local")) == 1

    # Before TLS, AUTH is not announced and is refused with 538; submission needs AUTH.
    c = lab.raw("submission")
    assert b"AUTH" not in c.cmd(b"EHLO x")
    assert c.cmd(b"AUTH PLAIN AGFAaGFtYXAubG9jYWwASXQx").startswith(b"538 5.7.11")
    assert c.cmd(b"MAIL FROM:<a@hamap.local>").startswith(b"530 5.7.0")
    assert c.cmd(b"VRFY a").startswith(b"252") and c.cmd(b"HELP").startswith(b"214")
    assert c.cmd(b"EXPN a").startswith(b"502")
    c.close()

    # Shutdown: an idle session hears 421 4.3.2.
    c = lab.raw()
    c.cmd(b"EHLO x")
    lab.srv.stop()
    assert c.reply().startswith(b"421 4.3.2")
    c.close()
