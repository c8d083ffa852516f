"""CAPABILITY: what is advertised before and after TLS and login, in lab mode and not."""

from __future__ import annotations

import base64
import socket
import ssl

from imap_lab import PASSWORD, Client


def _caps(c: Client) -> list[str]:
    return next(r for r in c.ok("CAPABILITY") if r.kind == "CAPABILITY").data


def test_secure_default_before_and_after_starttls(imap_factory):
    box = imap_factory("")  # the default: no plaintext login before TLS
    c = box.raw()
    caps = _caps(c)
    assert "LOGINDISABLED" in caps and "STARTTLS" in caps
    assert not any(x.startswith("AUTH=") for x in caps)
    _, done = c.cmd(f'LOGIN "{box.a}" "{PASSWORD}"')
    assert done.status == "NO" and done.code == "PRIVACYREQUIRED"
    _, done = c.cmd("AUTHENTICATE PLAIN " + base64.b64encode(f"\0{box.a}\0{PASSWORD}".encode()).decode())
    assert done.status == "NO"
    # STARTTLS; a command pipelined behind it is discarded, never run (CVE-2011-0411 class)
    c.send(b"s1 STARTTLS\r\ns2 NOOP\r\n")
    r = c.read_one()
    assert r.tag == "s1" and r.status == "OK"
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    tls = Client.__new__(Client)
    tls.sock = ctx.wrap_socket(c.sock)
    tls.sock.settimeout(10)
    from mailcove.proto.imap.client import ResponseParser

    tls.parser = ResponseParser()
    tls.n = 100
    caps = _caps(tls)  # no s2 response arrives before this
    assert "STARTTLS" not in caps and "LOGINDISABLED" not in caps and "AUTH=PLAIN" in caps
    tls.ok(f'LOGIN "{box.a}" "{PASSWORD}"')
    caps = _caps(tls)
    assert "IMAP4rev2" in caps and "APPENDLIMIT=67108864" in caps and "COMPRESS=DEFLATE" in caps


def test_imaps_is_tls_from_the_start(imap_factory):
    box = imap_factory("")
    c = box.raw("imaps")
    assert c.greeting.code == "CAPABILITY"
    assert "AUTH=PLAIN" in c.greeting.code_data and "STARTTLS" not in c.greeting.code_data
    resp = base64.b64encode(f"\0{box.a}\0{PASSWORD}".encode()).decode()
    _, done = c.cmd(f"AUTHENTICATE PLAIN {resp}")
    assert done.status == "OK" and done.code == "CAPABILITY"


def test_lab_mode_allows_plaintext(imap):
    c = imap.raw()
    caps = _caps(c)
    assert "AUTH=PLAIN" in caps and "LOGINDISABLED" not in caps and "STARTTLS" in caps


def test_authenticate_without_initial_response_and_cancel(imap):
    imap.client().close()
    c = imap.raw()
    c.send(b"a1 AUTHENTICATE PLAIN\r\n")
    c.continuation()
    c.send(b"*\r\n")
    r = c.read_one()
    assert r.tag == "a1" and r.status == "BAD"
    c.send(b"a2 AUTHENTICATE PLAIN\r\n")
    c.continuation()
    c.send(base64.b64encode(f"\0{imap.a}\0wrong".encode()) + b"\r\n")
    r = c.read_one()
    assert r.tag == "a2" and r.status == "NO" and r.code == "AUTHENTICATIONFAILED"
    c.send(b"a3 AUTHENTICATE PLAIN\r\n")
    c.continuation()
    c.send(base64.b64encode(f"\0{imap.a}\0{PASSWORD}".encode()) + b"\r\n")
    r = c.read_one()
    assert r.tag == "a3" and r.status == "OK"


def test_commands_need_the_right_state(imap):
    c = imap.raw()
    for cmd in ("SELECT INBOX", "FETCH 1 FLAGS", "LIST \"\" *"):
        _, done = c.cmd(cmd)
        assert done.status == "BAD"
    imap.client().close()
    c.login(imap.a)
    _, done = c.cmd("FETCH 1 FLAGS")
    assert done.status == "BAD"
    _, done = c.cmd(f'LOGIN "{imap.a}" "{PASSWORD}"')
    assert done.status == "BAD"


def test_unsolicited_greeting_is_strict(imap):
    host, port = imap.host_port
    s = socket.create_connection((host, port))
    c = Client(s)
    assert c.greeting.kind == "OK"
    c.close()
