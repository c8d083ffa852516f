"""The sans-IO SMTP core: bytes in -> events out, as tables; every input split at every byte;
Hypothesis over (state, input); a client core paired with the server core."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailcove.proto.smtp import (
    NEED_DATA,
    Auth,
    AuthResponse,
    Bdat,
    ChunkEnd,
    ClientConnection,
    Data,
    DataChunk,
    DataEnd,
    DotDecoder,
    Ehlo,
    Helo,
    Mail,
    Noop,
    Quit,
    Rcpt,
    Rejected,
    Reply,
    Rset,
    ServerConnection,
    StartTls,
    State,
    dot_stuff,
)
from mailcove.proto.smtp import replies as R
from mailcove.proto.smtp.params import parse_mail, parse_rcpt, unquote_local
from mailcove.proto.smtp.sasl import Challenge, Credentials, SaslFailure, server_mechanism

EXT = frozenset({"SIZE", "8BITMIME", "SMTPUTF8", "PIPELINING", "CHUNKING", "DSN", "ENHANCEDSTATUSCODES",
                 "STARTTLS", "AUTH"})


def new(**kw) -> ServerConnection:
    kw.setdefault("extensions", EXT)
    kw.setdefault("max_size", 10_000)
    kw.setdefault("max_recipients", 3)
    c = ServerConnection(**kw)
    c.send(Reply(220, "", "mx ESMTP"))
    return c


def accept_all(ev) -> Reply | None:
    """A policy that says yes to everything the core lets through."""
    if isinstance(ev, Rejected):
        return ev.reply
    if isinstance(ev, Data):
        return R.START_DATA
    if isinstance(ev, DataChunk | Bdat):
        return None
    if isinstance(ev, Quit):
        return R.BYE
    if isinstance(ev, StartTls):
        return R.READY_TLS
    if isinstance(ev, Auth | AuthResponse):
        return R.AUTH_OK
    return R.OK


def drive(conn: ServerConnection, data: bytes, policy=accept_all) -> tuple[list, bytes]:
    events, out = [], b""
    conn.receive_data(data)
    while True:
        ev = conn.next_event()
        if ev is NEED_DATA:
            return events, out
        events.append(ev)
        reply = policy(ev)
        if reply is not None:
            out += conn.send(reply)


def drive_split(data: bytes, cuts: list[int], policy=accept_all, **kw) -> tuple[list, bytes]:
    conn = new(**kw)
    events, out, last = [], b"", 0
    for cut in [*cuts, len(data)]:
        ev, o = drive(conn, data[last:cut], policy)
        events += ev
        out += o
        last = cut
    return merge_chunks(events), out


def merge_chunks(events: list) -> list:
    """DataChunk boundaries depend on how input was split; their concatenation does not."""
    out: list = []
    for ev in events:
        if isinstance(ev, DataChunk) and out and isinstance(out[-1], DataChunk):
            out[-1] = DataChunk(out[-1].data + ev.data)
        elif not (isinstance(ev, DataChunk) and not ev.data):
            out.append(ev)
    return out


# --- tables: wire bytes -> events --------------------------------------------------------------

TABLE = [
    (b"EHLO client.example\r\n", [Ehlo("client.example")]),
    (b"HELO x\r\n", [Helo("x")]),
    (b"ehlo x\n", [Ehlo("x")]),  # bare LF ends a command line (not the data)
    (b"NOOP\r\n", [Noop()]),
    (b"EHLO x\r\nMAIL FROM:<a@b.example> SIZE=100 BODY=8BITMIME\r\n",
     [Ehlo("x"), Mail("a@b.example", 100, "8BITMIME")]),
    (b"EHLO x\r\nMAIL FROM:<> RET=FULL ENVID=a+2Bb\r\n", [Ehlo("x"), Mail("", None, None, False, "FULL", "a+b")]),
    (b"EHLO x\r\nMAIL FROM: <a@b.example>\r\n", [Ehlo("x"), Mail("a@b.example")]),
    (b"EHLO x\r\nMAIL FROM:a@b.example\r\n", [Ehlo("x"), Mail("a@b.example")]),
    (b"EHLO x\r\nMAIL FROM:<@r1,@r2:a@b.example>\r\n", [Ehlo("x"), Mail("a@b.example")]),
    (b"EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example> NOTIFY=FAILURE ORCPT=rfc822;c+40d\r\n",
     [Ehlo("x"), Mail("a@b.example"), Rcpt("c@d.example", ("FAILURE",), "rfc822;c@d")]),
    (b"MAIL FROM:<a@b.example>\r\n", [Rejected(R.NEED_HELO, "MAIL")]),
    (b"EHLO x\r\nRCPT TO:<a@b.example>\r\n", [Ehlo("x"), Rejected(R.NEED_MAIL, "RCPT")]),
    (b"EHLO x\r\nDATA\r\n", [Ehlo("x"), Rejected(R.NEED_MAIL, "DATA")]),
    (b"EHLO x\r\nMAIL FROM:<>\r\nDATA\r\n", [Ehlo("x"), Mail(""), Rejected(R.NO_VALID_RCPT, "DATA")]),
    (b"EHLO x\r\nMAIL FROM:<>\r\nMAIL FROM:<>\r\n", [Ehlo("x"), Mail(""), Rejected(R.NESTED_MAIL, "MAIL")]),
    (b"EHLO x\r\nMAIL FROM:<a@b.example> SIZE=10001\r\n", [Ehlo("x"), Rejected(R.TOO_BIG, "MAIL")]),
    (b"EHLO x\r\nMAIL FROM:<a@b.example> FOO=1\r\n", [Ehlo("x"), Rejected(R.PARAM_NOT_IMPLEMENTED, "MAIL")]),
    (b"HELO x\r\nMAIL FROM:<a@b.example> SIZE=1\r\n", [Helo("x"), Rejected(R.PARAM_NOT_IMPLEMENTED, "MAIL")]),
    (b"EHLO x\r\nMAIL FROM:<j\xc3\xb6rg@b.example>\r\n", [Ehlo("x"), Rejected(R.NEED_SMTPUTF8, "MAIL")]),
    (b"EHLO x\r\nMAIL FROM:<j\xc3\xb6rg@b.example> SMTPUTF8\r\n", [Ehlo("x"), Mail("jörg@b.example", smtputf8=True)]),
    (b"EHLO x\r\nMAIL FROM:<a@b@c>\r\n", [Ehlo("x"), Rejected(R.BAD_SENDER_SYNTAX, "MAIL")]),
    (b"EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<postmaster>\r\n",
     [Ehlo("x"), Mail("a@b.example"), Rcpt("postmaster")]),
    (b"EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<remote!user>\r\n",
     [Ehlo("x"), Mail("a@b.example"), Rejected(R.BAD_RCPT_SYNTAX, "RCPT")]),
    (b"EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<\"u@r\"@l.example>\r\n",
     [Ehlo("x"), Mail("a@b.example"), Rcpt('"u@r"@l.example')]),
    (b"EXPN list\r\n", [Rejected(R.NOT_IMPLEMENTED, "EXPN")]),
    (b"FOO\r\n", [Rejected(R.UNKNOWN_COMMAND, "FOO")]),
    (b"EHLO\r\n", [Rejected(Reply(501, "5.5.4", "Syntax: EHLO hostname"), "EHLO")]),
    (b"RSET x\r\n", [Rejected(R.SYNTAX_ERROR, "RSET")]),
    (b"EHLO x\r\nSTARTTLS\r\n", [Ehlo("x"), StartTls()]),
    (b"STARTTLS\r\n", [Rejected(R.NEED_HELO, "STARTTLS")]),
    (b"EHLO x\r\nAUTH plain AGEAYg==\r\n", [Ehlo("x"), Auth("PLAIN", "AGEAYg==")]),
    (b"EHLO x\r\nMAIL FROM:<>\r\nAUTH PLAIN\r\n", [Ehlo("x"), Mail(""), Rejected(R.AUTH_NOT_IN_TXN, "AUTH")]),
    (b"NOOP " + b"x" * 600 + b"\r\nNOOP\r\n", [Rejected(R.LINE_TOO_LONG), Noop()]),
    (b"\xff\xfe\r\n", [Rejected(R.SYNTAX_ERROR)]),
    (b"QUIT\r\nNOOP\r\n", [Quit()]),  # nothing is read after QUIT
]


@pytest.mark.parametrize("data,expected", TABLE, ids=[repr(t[0][:40]) for t in TABLE])
def test_table(data, expected):
    events, _ = drive(new(), data)
    assert events == expected


MESSAGE = b"Subject: t\r\n\r\nline\r\n.dot\r\n..two\r\n.\r\n"
FULL = (b"EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n" + dot_stuff(MESSAGE)
        + b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nBDAT 5\r\nSubjeBDAT 4 LAST\r\nct\r\n"
        + b"RSET\r\nQUIT\r\n")
FULL_EVENTS = [Ehlo("x"), Mail("a@b.example"), Rcpt("c@d.example"), Data(), DataChunk(MESSAGE),
               DataEnd(len(MESSAGE)), Mail("a@b.example"), Rcpt("c@d.example"), Bdat(5, False),
               DataChunk(b"Subje"), ChunkEnd(5, False), Bdat(4, True), DataChunk(b"ct\r\n"), ChunkEnd(9, True),
               Rset(), Quit()]


def test_full_session_pipelined_in_one_write():
    events, out = drive(new(), FULL)
    assert merge_chunks(events) == FULL_EVENTS
    assert out.count(b"\r\n") == len([e for e in FULL_EVENTS if not isinstance(e, DataChunk | Bdat)])


def test_full_session_split_at_every_byte():
    for i in range(len(FULL) + 1):
        events, _ = drive_split(FULL, [i])
        assert events == FULL_EVENTS, i


def test_full_session_one_byte_at_a_time():
    events, _ = drive_split(FULL, list(range(1, len(FULL))))
    assert events == FULL_EVENTS


def test_refused_rcpt_leaves_no_recipient_and_data_is_refused():
    def policy(ev):
        return Reply(550, "5.1.1", "no") if isinstance(ev, Rcpt) else accept_all(ev)

    events, _out = drive(new(), b"EHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<a@b.example>\r\nDATA\r\nbody\r\n.\r\n", policy)
    assert events[-3:] == [Rejected(R.NO_VALID_RCPT, "DATA"), Rejected(R.UNKNOWN_COMMAND, "BODY"),
                           Rejected(R.UNKNOWN_COMMAND, ".")]


def test_refused_bdat_still_consumes_its_bytes():
    events, _ = drive(new(), b"EHLO x\r\nMAIL FROM:<>\r\nBDAT 6\r\nQUIT\r\nNOOP\r\n")
    assert events[-2:] == [Rejected(R.NO_VALID_RCPT, "BDAT"), Noop()]


def test_size_limit_during_data_stops_chunks():
    conn = new(max_size=100)
    events, _ = drive(conn, b"EHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<a@b.example>\r\nDATA\r\n" + b"x" * 1000
                      + b"\r\n.\r\nNOOP\r\n")
    chunks = [e for e in events if isinstance(e, DataChunk)]
    assert sum(len(c.data) for c in chunks) <= 100
    assert DataEnd(1002, True) in events and events[-1] == Noop()


def test_recipient_limit():
    events, _ = drive(new(), b"EHLO x\r\nMAIL FROM:<>\r\n" + b"RCPT TO:<a@b.example>\r\n" * 4)
    assert events[-1] == Rejected(R.TOO_MANY_RCPTS, "RCPT")


def test_starttls_discards_pipelined_input_and_resets():
    conn = new()
    events, _out = drive(conn, b"EHLO x\r\nSTARTTLS\r\nMAIL FROM:<evil@x.example>\r\n")
    assert events == [Ehlo("x"), StartTls()] and conn.state is State.TLS
    conn.receive_data(b"more plaintext\r\n")  # ignored until the handshake is done
    conn.start_tls()
    assert conn.state is State.INIT and conn.tls and conn.buffered == 0
    events, _ = drive(conn, b"MAIL FROM:<a@b.example>\r\n")
    assert events == [Rejected(R.NEED_HELO, "MAIL")]


def test_auth_exchange_and_long_auth_line():
    conn = new()

    def policy(ev):
        if isinstance(ev, Auth):
            return Reply(334, "", "")
        return accept_all(ev)

    resp = base64.b64encode(b"\0user\0" + b"p" * 3000)
    events, _out = drive(conn, b"EHLO x\r\nAUTH PLAIN\r\n" + resp + b"\r\nMAIL FROM:<>\r\n", policy)
    assert events == [Ehlo("x"), Auth("PLAIN"), AuthResponse(resp.decode()), Mail("")]
    assert conn.authenticated


@given(st.lists(st.sampled_from([
    b"EHLO x\r\n", b"HELO x\r\n", b"MAIL FROM:<a@b.example>\r\n", b"MAIL FROM:<>\r\n", b"RCPT TO:<c@d.example>\r\n",
    b"DATA\r\n", b"body\r\n", b".\r\n", b"\n.\n", b"\r.\r", b"BDAT 3\r\n", b"BDAT 0 LAST\r\n", b"abc", b"RSET\r\n",
    b"NOOP\r\n", b"STARTTLS\r\n", b"AUTH PLAIN\r\n", b"AUTH LOGIN dXNlcg==\r\n", b"*\r\n", b"QUIT\r\n",
    b"x" * 700, b"\r\n", b"\xff", b"VRFY a\r\n", b"BDAT x\r\n",
]), max_size=25), st.data())
@settings(max_examples=300, deadline=None)
def test_any_state_any_input(chunks, data):
    """Whatever the client sends, in whatever state, the core either produces events or asks for
    more data; every command event gets exactly one reply; chunking the input never changes the
    result; and it never raises."""
    blob = b"".join(chunks)
    replies = data.draw(st.sampled_from(["yes", "no"]))

    def policy(ev):
        r = accept_all(ev)
        if replies == "no" and r is not None and not isinstance(ev, Rejected | Quit):
            return Reply(550, "5.0.0", "no")
        if isinstance(ev, StartTls):
            return Reply(454, "4.7.0", "no TLS here")  # keep reading in plaintext
        return r

    whole, out1 = drive_split(blob, [], policy)
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(blob)), max_size=5))))
    split, out2 = drive_split(blob, cuts, policy)
    assert whole == split and out1 == out2


@given(st.binary(max_size=300), st.lists(st.integers(0, 400), max_size=6))
@settings(max_examples=300, deadline=None)
def test_dot_roundtrip(message, cuts):
    """dot_stuff then DotDecoder gives back the message (line ends made CRLF), however split."""
    wire = dot_stuff(message) + b"TAIL"
    d, out, rest, last = DotDecoder(), b"", None, 0
    for cut in [*sorted(c for c in cuts if c <= len(wire)), len(wire)]:
        part = wire[last:cut]
        last = cut
        if rest is not None:
            rest += part
            continue
        o, r = d.feed(part)
        out += o
        rest = r
    expected = message.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    if expected and not expected.endswith(b"\r\n"):
        expected += b"\r\n"
    assert out == expected and rest == b"TAIL"


@pytest.mark.parametrize("fake", [b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\r.\r\n", b"\r\n.\r"])
def test_only_crlf_dot_crlf_ends_data(fake):
    d = DotDecoder()
    out, rest = d.feed(b"a" + fake + b"b")
    assert rest is None
    out2, rest = d.feed(b"\r\n.\r\n")
    assert out + out2 == b"a" + fake + b"b\r\n" and rest == b""


def test_client_pairs_with_server():
    server = new()
    client = ClientConnection()
    client.receive_data(Reply(220, "", "mx ESMTP").to_bytes())
    assert client.next_event().reply.code == 220
    wire = client.command("EHLO", "c.example")
    _, out = drive(server, wire, lambda ev: Reply(250, "", "mx", ("PIPELINING", "SIZE 10000")))
    client.receive_data(out)
    ev = client.next_event()
    assert ev.reply.code == 250 and ev.lines == ("mx", "PIPELINING", "SIZE 10000")
    msg = b".starts with a dot\r\nno final newline"
    wire = client.command("MAIL", "FROM:<a@b.example>") + client.command("RCPT", "TO:<c@d.example>")
    wire += client.command("DATA")
    got = []

    def policy(ev):
        got.append(ev)
        return accept_all(ev)

    _, out = drive(server, wire + client.data(msg), policy)
    client.receive_data(out)
    codes = []
    while (ev := client.next_event()) is not NEED_DATA:
        codes.append((ev.reply.code, ev.reply.enhanced))
    assert codes == [(250, "2.0.0")] * 2 + [(354, "")] + [(250, "2.0.0")]
    assert b"".join(e.data for e in got if isinstance(e, DataChunk)) == msg + b"\r\n"
    with pytest.raises(ValueError):
        client.command("MAIL", "FROM:<a@b>\r\nRCPT TO:<x@y>")


def test_reply_serialisation_never_breaks_lines():
    assert Reply(550, "5.1.1", "<a\r\n250 ok>").to_bytes() == b"550 5.1.1 <a  250 ok>\r\n"
    assert Reply(250, "", "mx", ("A", "B")).to_bytes() == b"250-mx\r\n250-A\r\n250 B\r\n"


def test_params_directly():
    assert parse_mail("FROM:<a@b.example> BODY=BINARYMIME", max_size=0, extensions=EXT) == R.SYNTAX_ERROR
    assert parse_rcpt("TO:<a@b.example> NOTIFY=NEVER,SUCCESS", smtputf8=False, extensions=EXT) == R.SYNTAX_ERROR
    assert parse_rcpt("TO:<a@[192.0.2.1]>", smtputf8=False, extensions=EXT) == Rcpt("a@[192.0.2.1]")
    assert parse_rcpt("TO:<a@b.example", smtputf8=False, extensions=EXT) == R.SYNTAX_ERROR
    assert parse_rcpt("TO:<" + "a" * 65 + "@b.example>", smtputf8=False, extensions=EXT) == R.BAD_RCPT_SYNTAX


def test_sasl_machines():
    plain = server_mechanism("PLAIN")
    assert plain.start(None) == Challenge(b"")
    assert plain.step(base64.b64encode(b"\0u\0p").decode()) == Credentials("u", "p")
    assert server_mechanism("PLAIN").start(base64.b64encode(b"other\0u\0p").decode()) == SaslFailure("authzid")
    assert server_mechanism("PLAIN").start("!!!") == SaslFailure("malformed")
    login = server_mechanism("LOGIN")
    assert login.start(None) == Challenge(b"Username:")
    assert login.step(base64.b64encode(b"u").decode()) == Challenge(b"Password:")
    assert login.step(base64.b64encode(b"p").decode()) == Credentials("u", "p")
    assert server_mechanism("LOGIN").start(None) and server_mechanism("LOGIN").step("*") == SaslFailure("cancelled")
    assert server_mechanism("CRAM-MD5") is None


def test_unreadable_auth_response_ends_the_exchange():
    conn = new()

    def policy(ev):
        return Reply(334, "", "") if isinstance(ev, Auth) else accept_all(ev)

    events, _ = drive(conn, b"EHLO x\r\nAUTH PLAIN\r\n" + b"A" * 20000 + b"\r\nNOOP\r\n", policy)
    assert events == [Ehlo("x"), Auth("PLAIN"), Rejected(R.LINE_TOO_LONG), Noop()]
    assert conn.state is State.READY and not conn.authenticated


def test_unquote_local():
    assert unquote_local('"a.b"@d.example') == "a.b@d.example"
    assert unquote_local('"user@remote"@local') == '"user@remote"@local'
    assert unquote_local('"a b"@d') == '"a b"@d'
    assert unquote_local('"a\\b"@d') == '"a\\b"@d'
    assert unquote_local("plain@d") == "plain@d"
