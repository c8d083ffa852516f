"""Properties of the POP3 core: input split at every byte, Hypothesis over every (state, input),
byte-stuffing round trips in any chunking, X-UIDL parsing, and the client core paired with the
server core."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mailcove.proto.pop3 import (
    NEED_DATA,
    BadCommand,
    Continue,
    DotStuffer,
    Err,
    Ok,
    ServerConnection,
    State,
    listing,
    stuff,
    unstuff,
)
from mailcove.proto.pop3 import commands as c
from mailcove.proto.pop3.client import ClientConnection
from mailcove.proto.pop3.uidl import find_xuidl, own_uidl, valid_foreign_uidl

SESSION = (
    b"CAPA\r\nUSER a@hamap.local\r\nPASS It1\r\nSTAT\r\nLIST\r\nLIST 2\r\nUIDL\r\nUIDL 1\r\n"
    b"TOP 1 5\r\nRETR 1\r\nDELE 1\r\nNOOP\r\nRSET\r\nBOGUS\r\n\r\nQUIT\r\n"
)


def answer(conn: ServerConnection, ev: object) -> bytes:
    if isinstance(ev, BadCommand):
        return conn.send(Err(ev.reason))
    if isinstance(ev, c.Quit) and conn.state is State.TRANSACTION:
        conn.begin_update()
    return conn.send(Ok())


def run(chunks: list[bytes], **kw: int) -> tuple[list[object], bytes]:
    conn = ServerConnection(**kw)
    evs: list[object] = []
    out = b""
    for chunk in chunks:
        conn.receive_data(chunk)
        while (ev := conn.next_event()) is not NEED_DATA:
            evs.append(ev)
            out += answer(conn, ev)
    return evs, out


def test_split_at_every_byte():
    whole = run([SESSION])
    assert len(whole[0]) == 16 and whole[0][-1] == c.Quit()
    for i in range(len(SESSION) + 1):
        assert run([SESSION[:i], SESSION[i:]]) == whole, i
    for i in range(0, len(SESSION), 7):
        for j in range(i, len(SESSION), 11):
            assert run([SESSION[:i], SESSION[i:j], SESSION[j:]]) == whole
    assert run([bytes([b]) for b in SESSION]) == whole


def test_split_long_line_at_every_byte():
    data = b"CAPA\r\nUSER " + b"x" * 40 + b"\r\nCAPA\r\n"
    whole = run([data], max_line=20)
    assert [type(e) for e in whole[0]] == [c.Capa, BadCommand, c.Capa]
    for i in range(len(data) + 1):
        assert run([data[:i], data[i:]], max_line=20) == whole, i


lines = st.one_of(
    st.sampled_from(
        [
            b"USER a",
            b"PASS b",
            b"STAT",
            b"LIST",
            b"LIST 1",
            b"RETR 1",
            b"DELE 1",
            b"TOP 1 1",
            b"UIDL",
            b"NOOP",
            b"RSET",
            b"CAPA",
            b"STLS",
            b"AUTH PLAIN",
            b"AUTH PLAIN AGEAYg==",
            b"*",
            b"AGEAYg==",
            b"QUIT",
            b"",
        ]
    ),
    st.binary(max_size=60).map(lambda b: b.replace(b"\n", b"")),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    script=st.lists(st.tuples(lines, st.sampled_from(["ok", "err", "continue"])), max_size=40),
    seed=st.integers(0, 2**32),
)
def test_any_input_any_reply_never_breaks_the_core(script, seed):
    """Whatever the client sends and whatever the session answers (within the rules), the core
    yields a command or a BadCommand for every line, in order, and its state only moves along
    the RFC 1939 arrows."""
    rnd = random.Random(seed)
    conn = ServerConnection(max_line=50, max_bad_commands=10)
    data = b"".join(line + rnd.choice([b"\r\n", b"\n"]) for line, _ in script)
    pos = 0
    replies = iter(script)
    allowed = {
        State.AUTHORIZATION: {State.AUTHORIZATION, State.TRANSACTION, State.CLOSED},
        State.TRANSACTION: {State.TRANSACTION, State.UPDATE, State.CLOSED},
        State.UPDATE: {State.CLOSED},
        State.CLOSED: {State.CLOSED},
    }
    while pos < len(data):
        step = rnd.randint(1, 30)
        conn.receive_data(data[pos : pos + step])
        pos += step
        while (ev := conn.next_event()) is not NEED_DATA:
            before = conn.state
            _line, kind = next(replies, (b"", "ok"))
            if isinstance(ev, BadCommand):
                conn.send(Err(ev.reason))
            elif kind == "continue" and isinstance(ev, c.Auth | c.AuthData) and getattr(ev, "mechanism", 1):
                assert conn.send(Continue()) == b"+ \r\n"
            elif kind == "err" or isinstance(ev, c.AuthCancel):
                conn.send(Err("no"))
            else:
                if isinstance(ev, c.Quit) and conn.state is State.TRANSACTION:
                    conn.begin_update()
                conn.send(Ok())
            assert conn.state in allowed[before]
            if isinstance(ev, c.Command) and not isinstance(ev, c.AuthData | c.AuthCancel):
                assert conn.state is State.CLOSED or before in _allowed_states(ev)


def _allowed_states(ev: c.Command) -> frozenset[State]:
    from mailcove.proto.pop3.connection import ALLOWED

    return ALLOWED[type(ev)]


# --- byte-stuffing ------------------------------------------------------------------------------

crlf_text = st.lists(
    st.one_of(st.sampled_from([b".", b"..", b".\r", b"", b" .", b"a.b", b"\x00", b".\xff"]), st.binary(max_size=20)),
    max_size=30,
).map(lambda ls: b"".join(line.replace(b"\r", b"").replace(b"\n", b"") + b"\r\n" for line in ls))


@settings(max_examples=300, deadline=None)
@given(msg=crlf_text, cuts=st.lists(st.integers(0, 2000), max_size=8))
def test_stuffing_round_trips_in_any_chunking(msg, cuts):
    whole = stuff(msg)
    s = DotStuffer()
    points = sorted({min(x, len(msg)) for x in cuts})
    out = b""
    prev = 0
    for p in [*points, len(msg)]:
        out += s.feed(msg[prev:p])
        prev = p
    out += s.end()
    assert out == whole
    assert whole.endswith(b".\r\n")
    body = whole[:-3]
    # No line of the stuffed body is the terminator, every "."-line is doubled, and the client's
    # unstuffing gives the message back exactly.
    assert b"\n.\r\n" not in body and not body.startswith(b".\r\n")
    assert unstuff(body) == msg
    cl = ClientConnection(greeting=False)
    cl.expect(multiline=True)
    cl.receive_data(b"+OK\r\n" + whole)
    assert cl.next_response().body == msg


@given(msg=st.binary(max_size=200))
@example(msg=b"\n")
@example(msg=b"a\r\nb\n")
@example(msg=b"a\r")
def test_any_bytes_are_terminated_and_never_end_early(msg):
    wire = stuff(msg)
    assert wire.endswith(b"\r\n.\r\n") or wire == b".\r\n"
    body = wire[:-3]
    assert b"\n.\r\n" not in body and not body.startswith(b".\r\n")


def test_stuffing_examples():
    assert stuff(b"") == b".\r\n"
    assert stuff(b".\r\n") == b"..\r\n.\r\n"
    assert stuff(b"a\r\n.b\r\n..\r\n") == b"a\r\n..b\r\n...\r\n.\r\n"
    assert stuff(b"no newline") == b"no newline\r\n.\r\n"
    # The terminator always follows a CRLF, even after a bare LF (RFC 1939: CRLF "." CRLF).
    assert stuff(b"bare\n.lf\n") == b"bare\n..lf\n\r\n.\r\n"
    assert stuff(b"\n") == b"\n\r\n.\r\n"
    s = DotStuffer()
    assert s.feed(b"a\r") + s.feed(b"\n") + s.end() == b"a\r\n.\r\n"
    s = DotStuffer()
    assert s.feed(b"a") + s.feed(b"\n") + s.end() == b"a\n\r\n.\r\n"
    s = DotStuffer()
    assert s.feed(b"a\r") + s.feed(b"\n.") + s.feed(b"x\r\n") + s.end() == b"a\r\n..x\r\n.\r\n"
    s = DotStuffer()
    assert s.feed(b"a\r\n") + s.feed(b"") + s.feed(b".x\r\n") + s.end() == b"a\r\n..x\r\n.\r\n"
    assert listing([b"1 2"]) == b"1 2\r\n.\r\n"


# --- UIDL ----------------------------------------------------------------------------------------


def test_own_uidl_and_validity():
    assert own_uidl(1795823147, 1) == b"1795823147.1"
    assert not valid_foreign_uidl(own_uidl(5, 6))
    assert valid_foreign_uidl(b"0a1b2c")
    assert valid_foreign_uidl(b"x" * 70) and not valid_foreign_uidl(b"x" * 71)
    assert not valid_foreign_uidl(b"") and not valid_foreign_uidl(b"a b") and not valid_foreign_uidl(b"\x7f")


def test_find_xuidl():
    assert find_xuidl(b"From: a\r\nX-UIDL: abc123\r\nTo: b\r\n\r\nbody") == b"abc123"
    assert find_xuidl(b"x-uidl:abc\r\n\r\n") == b"abc"
    assert find_xuidl(b"X-UIDL:   abc  \r\n\r\n") == b"abc"
    assert find_xuidl(b"X-UIDL: first\r\nX-UIDL: second\r\n\r\n") == b"first"
    assert find_xuidl(b"From: a\nX-UIDL: lf-only\n\nbody") == b"lf-only"
    assert find_xuidl(b"Subject: x\r\n\r\nX-UIDL: in the body\r\n") is None
    assert find_xuidl(b"Subject: X-UIDL: abc\r\n\r\n") is None
    assert find_xuidl(b"X-UIDL-Other: abc\r\n\r\n") is None
    assert find_xuidl(b"X-UIDL: a\r\n b\r\n\r\n") is None  # folded into "a b": not a UIDL
    assert find_xuidl(b"X-UIDL: 12.34\r\n\r\n") is None  # our own form is never taken from mail
    assert find_xuidl(b"X-UIDL: trunc") is None  # may continue beyond what was read
    assert find_xuidl(b"") is None


@given(st.binary(max_size=300))
def test_find_xuidl_never_raises_and_returns_valid(data):
    v = find_xuidl(data)
    assert v is None or valid_foreign_uidl(v)


# --- client core against server core --------------------------------------------------------------


def test_client_and_server_cores_pipelined():
    server = ServerConnection()
    client = ClientConnection()
    msg = b"Subject: x\r\n\r\n.\r\n..a\r\nend\r\n"
    wire = (
        client.send(b"USER a")
        + client.send(b"PASS b")
        + client.send(b"LIST", multiline=True)
        + client.send(b"RETR 1", multiline=True)
        + client.send(b"RETR 9", multiline=True)
        + client.send(b"QUIT")
    )
    out = Ok("ready").to_bytes()
    server.receive_data(wire)
    while (ev := server.next_event()) is not NEED_DATA:
        if ev == c.List():
            out += server.send(Ok()) + listing([b"1 %d" % len(msg)])
        elif ev == c.Retr(1):
            out += server.send(Ok(f"{len(msg)} octets")) + stuff(msg)
        elif ev == c.Retr(9):
            out += server.send(Err("No such message 9."))
        else:
            out += answer(server, ev)
    got = []
    for i in range(len(out)):  # fed one byte at a time
        client.receive_data(out[i : i + 1])
        while (r := client.next_response()) is not None:
            got.append(r)
    assert [r.ok for r in got] == [True, True, True, True, True, False, True]
    assert got[3].lines == [b"1 %d" % len(msg)]
    assert got[4].body == msg
    assert got[5].text == b"No such message 9."
    assert server.state is State.CLOSED
