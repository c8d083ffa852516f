"""The POP3 core on wire strings: command parsing, the state table, replies, STLS, SASL."""

from __future__ import annotations

import base64

import pytest

from mailcove.proto.pop3 import (
    NEED_DATA,
    Auth,
    AuthCancel,
    AuthData,
    BadCommand,
    Capa,
    Continue,
    Dele,
    Err,
    List,
    Noop,
    Ok,
    Pass,
    ProtocolUsageError,
    Quit,
    Retr,
    Rset,
    ServerConnection,
    Stat,
    State,
    Stls,
    Top,
    Uidl,
    User,
    capabilities,
    listing,
    parse_command,
)
from mailcove.proto.pop3.commands import CommandError, parse_auth_response
from mailcove.proto.pop3.sasl import SaslError, parse_plain, plain_message

PARSED = [
    (b"USER a@hamap.local", User("a@hamap.local")),
    (b"user a", User("a")),
    (b"USER a  ", User("a")),
    (b"PASS It1", Pass("It1")),
    (b"PASS with spaces ", Pass("with spaces ")),
    (b"PASS", Pass("")),
    (b"PASS p\xc3\xa4ss", Pass("päss")),
    (b"STAT", Stat()),
    (b"stat", Stat()),
    (b"LIST", List()),
    (b"LIST 7", List(7)),
    (b"LIST 0", List(0)),
    (b"LIST 0007", List(7)),
    (b"RETR 1", Retr(1)),
    (b"DELE 9999999999", Dele(9999999999)),
    (b"NOOP", Noop()),
    (b"RSET", Rset()),
    (b"QUIT", Quit()),
    (b"TOP 3 0", Top(3, 0)),
    (b"TOP 3 10", Top(3, 10)),
    (b"UIDL", Uidl()),
    (b"UIDL 2", Uidl(2)),
    (b"CAPA", Capa()),
    (b"STLS", Stls()),
    (b"AUTH", Auth()),
    (b"AUTH PLAIN", Auth("PLAIN")),
    (b"auth plain =", Auth("PLAIN", b"")),
    (b"AUTH PLAIN " + base64.b64encode(b"\0a\0b"), Auth("PLAIN", b"\0a\0b")),
    (b"AUTH SCRAM-SHA-256", Auth("SCRAM-SHA-256")),
]

ERRORS = [
    (b"", "Empty command"),
    (b"   ", "Empty command"),
    (b" STAT", "Command must start with a keyword"),
    (b"HELO x", "Unknown command HELO"),
    (b"APOP a b", "Unknown command APOP"),
    (b"LAST", "Unknown command LAST"),
    (b"\x00\x01", "NUL in command"),
    (b"STAT\x00", "NUL in command"),
    (b"ST\x01T", "Unknown command command"),
    (b"USER a\x00b", "NUL in command"),
    (b"\xff", "Invalid UTF-8"),
    (b"USER", "USER needs a user name"),
    (b"STAT 1", "STAT takes no arguments"),
    (b"NOOP x", "NOOP takes no arguments"),
    (b"QUIT now", "QUIT takes no arguments"),
    (b"LIST x", "Invalid message number"),
    (b"LIST -1", "Invalid message number"),
    (b"LIST +1", "Invalid message number"),
    (b"LIST 1 2", "LIST takes at most one argument"),
    (b"LIST \xd9\xa1", "Invalid message number"),  # ARABIC-INDIC DIGIT ONE: isdigit() but not ASCII
    (b"RETR", "Missing message number"),
    (b"RETR 12345678901", "Invalid message number"),
    (b"RETR 1 2", "RETR takes one argument"),
    (b"DELE", "Missing message number"),
    (b"TOP 1", "TOP takes a message number and a line count"),
    (b"TOP 1 2 3", "TOP takes a message number and a line count"),
    (b"TOP 1 x", "Invalid line count"),
    (b"UIDL a", "Invalid message number"),
    (b"AUTH PLAIN !!!", "Invalid base64 data"),
    (b"AUTH PLAIN YQ", "Invalid base64 data"),  # missing padding
    (b"AUTH PLAIN a b", "AUTH takes a mechanism and at most one initial response"),
    (b"AUTH PL@IN", "Invalid SASL mechanism name"),
]


@pytest.mark.parametrize(("line", "command"), PARSED)
def test_parse(line, command):
    assert parse_command(line) == command


@pytest.mark.parametrize(("line", "reason"), ERRORS)
def test_parse_errors(line, reason):
    with pytest.raises(CommandError) as info:
        parse_command(line)
    assert str(info.value).startswith(reason)


def test_auth_responses():
    assert parse_auth_response(b"*") == AuthCancel()
    assert parse_auth_response(base64.b64encode(b"\0u\0p")) == AuthData(b"\0u\0p")
    assert parse_auth_response(b"") == AuthData(b"")
    with pytest.raises(CommandError):
        parse_auth_response(b"not base64!")


def test_sasl_plain():
    assert parse_plain(plain_message("u@x", "pw")).authcid == "u@x"
    creds = parse_plain(b"admin\0u\0p w")
    assert (creds.authzid, creds.authcid, creds.password) == ("admin", "u", "p w")
    for bad in (b"", b"u\0p", b"\0\0p", b"\0u\0", b"a\0b\0c\0d", b"\0\xff\0p", b"\0u\0" + b"x" * 9000):
        with pytest.raises(SaslError):
            parse_plain(bad)


# --- replies ------------------------------------------------------------------------------------


def test_reply_bytes():
    assert Ok().to_bytes() == b"+OK\r\n"
    assert Ok("2 320").to_bytes() == b"+OK 2 320\r\n"
    assert Err("Authentication failed.", "AUTH").to_bytes() == b"-ERR [AUTH] Authentication failed.\r\n"
    assert Err("", "IN-USE").to_bytes() == b"-ERR [IN-USE]\r\n"
    assert Continue().to_bytes() == b"+ \r\n"
    assert Continue(b"abc").to_bytes() == b"+ YWJj\r\n"
    # A reply text can never forge a second line.
    assert Err("a\r\n+OK b").to_bytes() == b"-ERR a  +OK b\r\n"
    assert len(Err("x" * 5000).to_bytes()) < 512


def test_listing_and_capabilities():
    assert listing([]) == b".\r\n"
    assert listing([b"1 100", b"2 200"]) == b"1 100\r\n2 200\r\n.\r\n"
    caps = capabilities(user=True, sasl=["PLAIN"], stls=True)
    for cap in (b"CAPA", b"TOP", b"UIDL", b"RESP-CODES", b"AUTH-RESP-CODE", b"PIPELINING", b"USER", b"SASL PLAIN",
                b"STLS"):
        assert cap in caps
    bare = capabilities(user=False, sasl=[], stls=False, implementation=None)
    assert b"USER" not in bare and not any(c.startswith(b"SASL") for c in bare) and b"STLS" not in bare


# --- the connection -----------------------------------------------------------------------------


def events(conn: ServerConnection, data: bytes = b"") -> list:
    conn.receive_data(data)
    out = []
    while (ev := conn.next_event()) is not NEED_DATA:
        out.append(ev)
        conn.send(Err("test") if isinstance(ev, BadCommand) else Ok())
    return out


def logged_in() -> ServerConnection:
    conn = ServerConnection()
    conn.receive_data(b"USER a\r\nPASS b\r\n")
    for _ in range(2):
        conn.next_event()
        conn.send(Ok())
    assert conn.state is State.TRANSACTION
    return conn


# (state, line) -> the command or the BadCommand reason
STATE_TABLE = [
    ("AUTHORIZATION", b"STAT", "STAT is not allowed in the AUTHORIZATION state"),
    ("AUTHORIZATION", b"LIST", "LIST is not allowed"),
    ("AUTHORIZATION", b"RETR 1", "RETR is not allowed"),
    ("AUTHORIZATION", b"DELE 1", "DELE is not allowed"),
    ("AUTHORIZATION", b"NOOP", "NOOP is not allowed"),
    ("AUTHORIZATION", b"RSET", "RSET is not allowed"),
    ("AUTHORIZATION", b"TOP 1 1", "TOP is not allowed"),
    ("AUTHORIZATION", b"UIDL", "UIDL is not allowed"),
    ("AUTHORIZATION", b"PASS x", "PASS must follow a successful USER"),
    ("AUTHORIZATION", b"CAPA", Capa()),
    ("AUTHORIZATION", b"STLS", Stls()),
    ("AUTHORIZATION", b"QUIT", Quit()),
    ("AUTHORIZATION", b"USER a", User("a")),
    ("AUTHORIZATION", b"AUTH PLAIN", Auth("PLAIN")),
    ("TRANSACTION", b"USER a", "USER is not allowed in the TRANSACTION state"),
    ("TRANSACTION", b"PASS a", "PASS is not allowed"),
    ("TRANSACTION", b"AUTH PLAIN", "AUTH is not allowed"),
    ("TRANSACTION", b"STLS", "STLS is not allowed"),
    ("TRANSACTION", b"CAPA", Capa()),
    ("TRANSACTION", b"STAT", Stat()),
    ("TRANSACTION", b"LIST 1", List(1)),
    ("TRANSACTION", b"RETR 1", Retr(1)),
    ("TRANSACTION", b"DELE 1", Dele(1)),
    ("TRANSACTION", b"NOOP", Noop()),
    ("TRANSACTION", b"RSET", Rset()),
    ("TRANSACTION", b"TOP 1 0", Top(1, 0)),
    ("TRANSACTION", b"UIDL", Uidl()),
    ("TRANSACTION", b"QUIT", Quit()),
]


@pytest.mark.parametrize(("state", "line", "expected"), STATE_TABLE)
def test_state_table(state, line, expected):
    conn = ServerConnection() if state == "AUTHORIZATION" else logged_in()
    conn.receive_data(line + b"\r\n")
    ev = conn.next_event()
    if isinstance(expected, str):
        assert isinstance(ev, BadCommand) and ev.reason.startswith(expected)
    else:
        assert ev == expected


def test_user_then_pass_and_a_failed_pass_needs_user_again():
    conn = ServerConnection()
    conn.receive_data(b"USER a\r\n")
    assert conn.next_event() == User("a")
    conn.send(Ok())
    assert conn.user == "a"
    conn.receive_data(b"PASS wrong\r\nPASS again\r\n")
    assert conn.next_event() == Pass("wrong")
    conn.send(Err("no", "AUTH"))
    assert conn.state is State.AUTHORIZATION and conn.user is None
    ev = conn.next_event()
    assert isinstance(ev, BadCommand) and "USER" in ev.reason
    # A refused USER (plaintext not allowed) does not enable PASS either.
    conn.send(Err("x"))
    conn.receive_data(b"USER a\r\nPASS b\r\n")
    conn.next_event()
    conn.send(Err("plaintext"))
    assert isinstance(conn.next_event(), BadCommand)


def test_sasl_exchange():
    conn = ServerConnection()
    conn.receive_data(b"AUTH PLAIN\r\n")
    assert conn.next_event() == Auth("PLAIN")
    assert conn.send(Continue()) == b"+ \r\n"
    conn.receive_data(base64.b64encode(b"\0a\0b") + b"\r\n")
    assert conn.next_event() == AuthData(b"\0a\0b")
    conn.send(Ok())
    assert conn.state is State.TRANSACTION


def test_sasl_cancel_and_bad_response_end_the_exchange():
    conn = ServerConnection()
    conn.receive_data(b"AUTH PLAIN\r\n")
    conn.next_event()
    conn.send(Continue())
    conn.receive_data(b"*\r\nSTAT\r\n")
    assert conn.next_event() == AuthCancel()
    with pytest.raises(ProtocolUsageError):
        conn.send(Ok())  # a cancelled exchange cannot log anyone in
    conn2 = ServerConnection()
    conn2.receive_data(b"AUTH PLAIN\r\n")
    conn2.next_event()
    conn2.send(Continue())
    conn2.receive_data(b"%%%\r\nCAPA\r\n")
    assert isinstance(conn2.next_event(), BadCommand)
    conn2.send(Err("bad"))
    assert conn2.next_event() == Capa()  # back to commands


def test_bare_auth_logs_nobody_in():
    conn = ServerConnection()
    assert events(conn, b"AUTH\r\n") == [Auth()]
    assert conn.state is State.AUTHORIZATION


def test_stls_drops_pipelined_input():
    conn = ServerConnection()
    conn.receive_data(b"STLS\r\nUSER a\r\nPASS b\r\n")
    assert conn.next_event() == Stls()
    conn.send(Ok("go"))
    assert conn.next_event() is NEED_DATA and conn.buffered == 0
    # A refused STLS keeps the input (nothing was switched).
    conn = ServerConnection()
    conn.receive_data(b"STLS\r\nCAPA\r\n")
    conn.next_event()
    conn.send(Err("no TLS"))
    assert conn.next_event() == Capa()


def test_quit_closes_and_update_state():
    conn = ServerConnection()
    assert events(conn, b"QUIT\r\nSTAT\r\n") == [Quit()]
    assert conn.state is State.CLOSED
    conn = logged_in()
    conn.receive_data(b"QUIT\r\n")
    assert conn.next_event() == Quit()
    conn.begin_update()
    assert conn.state is State.UPDATE
    conn.send(Ok())
    assert conn.state is State.CLOSED
    conn.receive_data(b"STAT\r\n")
    assert conn.next_event() is NEED_DATA
    with pytest.raises(ProtocolUsageError):
        ServerConnection().begin_update()


def test_usage_errors():
    conn = ServerConnection()
    with pytest.raises(ProtocolUsageError):
        conn.send(Ok())  # nothing to answer
    conn.receive_data(b"CAPA\r\nCAPA\r\n")
    conn.next_event()
    with pytest.raises(ProtocolUsageError):
        conn.next_event()  # the first one has no reply yet
    with pytest.raises(ProtocolUsageError):
        conn.send(Continue())  # a continuation answers only AUTH
    conn = ServerConnection()
    conn.receive_data(b"HELO\r\n")
    conn.next_event()
    with pytest.raises(ProtocolUsageError):
        conn.send(Ok())  # a bad command is answered with -ERR


def test_line_endings_and_limits():
    conn = ServerConnection(max_line=20)
    assert events(conn, b"CAPA\nCAPA\r\n") == [Capa(), Capa()]
    # Over the limit with its end in view, and without: reported once, the rest skipped.
    out = events(conn, b"USER " + b"x" * 30 + b"\r\nCAPA\r\n")
    assert [type(e) for e in out] == [BadCommand, Capa]
    out = events(conn, b"USER " + b"y" * 30)
    assert [e.reason for e in out] == ["Line too long"]
    out = events(conn, b"y" * 100)
    assert out == []
    out = events(conn, b"yyy\r\nCAPA\r\n")
    assert out == [Capa()]
    assert conn.bad_commands == 2


def test_too_many_bad_commands_is_fatal():
    conn = ServerConnection(max_bad_commands=3)
    conn.receive_data(b"A\r\nB\r\nC\r\nCAPA\r\n")
    reasons = []
    for _ in range(3):
        ev = conn.next_event()
        reasons.append(ev.fatal)
        conn.send(Err(ev.reason))
    assert reasons == [False, False, True]
    assert conn.state is State.CLOSED
    assert conn.next_event() is NEED_DATA
