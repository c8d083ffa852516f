"""ImapReceiver framing: literals, continuations, streamed APPEND, limits, modes, STARTTLS/COMPRESS
buffer hand-over, and the same events however the input is split."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from improto_helpers import drive

from mailcove.proto.imap import (
    NEED_DATA,
    AppendData,
    AppendEnd,
    AppendStart,
    AuthLine,
    BadCommand,
    Capability,
    IdleDone,
    ImapReceiver,
    Login,
    NeedContinuation,
    Noop,
    ProtocolViolation,
    Search,
    StartTLS,
)
from mailcove.proto.imap.commands.search import Text


def feed(r: ImapReceiver, data: bytes) -> list[object]:
    r.receive_data(data)
    out = []
    while (e := r.next_event()) is not NEED_DATA:
        out.append(e)
        if isinstance(e, ProtocolViolation):
            break  # returned again on every call
    return out


def test_synchronising_literal_waits_for_continuation() -> None:
    r = ImapReceiver()
    assert feed(r, b"a LOGIN {3}\r\n") == [NeedContinuation("a", 3)]
    assert feed(r, b"bo") == []
    assert feed(r, b"b {2}\r\n") == [NeedContinuation("a", 2)]
    assert feed(r, b"pw\r\nb NOOP\r\n") == [Login(tag="a", username="bob", password="pw"), Noop(tag="b")]


def test_non_synchronising_literal_and_8bit() -> None:
    evs = drive([b"a SEARCH CHARSET UTF-8 SUBJECT {4+}\r\n\xc3\xa4\xc3\xb6\r\n"])
    assert evs == [Search(tag="a", charset="UTF-8", criteria=Text("SUBJECT", "äö"))]
    evs = drive([b'a SEARCH CHARSET UTF-8 SUBJECT "\xc3\xa4"\r\n'])
    assert evs == [Search(tag="a", charset="UTF-8", criteria=Text("SUBJECT", "ä"))]


def test_reject_synchronising_literal() -> None:
    r = ImapReceiver()
    assert feed(r, b"a LOGIN {3}\r\n") == [NeedContinuation("a", 3)]
    r.reject_literal()
    assert feed(r, b"b NOOP\r\n") == [Noop(tag="b")]


def test_literal_over_command_limit() -> None:
    # synchronising: refused at once, the client never sends it
    evs = drive([b"a LOGIN {2000000}\r\nb NOOP\r\n"], max_command=1 << 20)
    assert evs == [BadCommand("a", "Literal too big", "TOOBIG"), Noop(tag="b")]
    # non-synchronising: the client sends it anyway; it is skipped by counting, never buffered
    big = b"x" * 2_000_000
    chunks = [b"a LOGIN {2000000+}\r\n"] + [big[i:i + 65536] for i in range(0, len(big), 65536)] + [
        b" pw\r\nb NOOP\r\n"]
    evs = drive(chunks, check_memory=True)
    assert evs == [BadCommand("a", "Literal too big", "TOOBIG"), Noop(tag="b")]


def test_command_limit_over_several_literals() -> None:
    part = b"{60000+}\r\n" + b"y" * 60000
    cmd = b"a SEARCH " + b" ".join([b"SUBJECT " + part] * 20) + b"\r\nb NOOP\r\n"
    evs = drive([cmd[i:i + 4096] for i in range(0, len(cmd), 4096)], check_memory=True)
    assert isinstance(evs[0], BadCommand) and evs[0].code == "TOOBIG" and evs[0].tag == "a"
    assert evs[1:] == [Noop(tag="b")]


def test_line_too_long_is_fatal_and_bounded() -> None:
    r = ImapReceiver(max_line=1000)
    assert feed(r, b"a NOOP " + b"x" * 900) == []
    ev = feed(r, b"x" * 200)
    assert len(ev) == 1 and isinstance(ev[0], ProtocolViolation)
    assert r.next_event() == ev[0]
    r.receive_data(b"b NOOP\r\n")
    assert r.next_event() == ev[0]
    assert r.buffered == 0
    # a complete line arriving in one piece is measured too
    r = ImapReceiver(max_line=1000)
    assert isinstance(feed(r, b"a NOOP " + b"x" * 2000 + b"\r\n")[0], ProtocolViolation)


def test_line_exactly_at_the_limit() -> None:
    line = b"a NOOP".ljust(1000, b" ")  # 1000 bytes: not a valid NOOP, but not too long either
    for chunks in ([line + b"\r\n"], [line + b"\r", b"\n"], [line, b"\r\n"]):
        evs = drive(chunks, max_line=1000)
        assert len(evs) == 1 and isinstance(evs[0], BadCommand), chunks
    assert isinstance(drive([line + b"x\r\n"], max_line=1000)[0], ProtocolViolation)
    assert isinstance(drive([line + b"x\r"], max_line=1000)[0], ProtocolViolation)


def test_empty_line_and_bare_lf() -> None:
    assert drive([b"\r\na NOOP\nb CAPABILITY\r\n"]) == [BadCommand(None, "Empty command line"), Noop(tag="a"),
                                                        Capability(tag="b")]


def test_append_streamed() -> None:
    r = ImapReceiver()
    evs = feed(r, b'a APPEND INBOX (\\Seen) "17-Jul-1996 02:44:25 -0700" {11}\r\n')
    date = datetime(1996, 7, 17, 2, 44, 25, tzinfo=timezone(timedelta(hours=-7)))
    assert evs == [AppendStart("a", "INBOX", ("\\Seen",), date, 11, 0, False, True), NeedContinuation("a", 11, True)]
    assert feed(r, b"hello") == [AppendData(b"hello")]
    assert feed(r, b" world\r\n") == [AppendData(b" world"), AppendEnd("a", 1)]


def test_append_mailbox_literal_and_literal8() -> None:
    evs = drive([b"a APPEND {5}\r\nDraft ~{3}\r\na\x00b\r\n"])
    assert evs == [NeedContinuation("a", 5), AppendStart("a", "Draft", (), None, 3, 0, True, True),
                   NeedContinuation("a", 3, True), AppendData(b"a\x00b"), AppendEnd("a", 1)]


def test_multiappend() -> None:
    evs = drive([b"a APPEND Saved {3+}\r\none (\\Seen) {3+}\r\ntwo \" 1-Jan-2020 00:00:00 +0000\" {5}\r\nthree\r\n"])
    assert evs == [
        AppendStart("a", "Saved", (), None, 3, 0), AppendData(b"one"),
        AppendStart("a", "Saved", ("\\Seen",), None, 3, 1), AppendData(b"two"),
        AppendStart("a", "Saved", (), datetime(2020, 1, 1, tzinfo=UTC), 5, 2, False, True),
        NeedContinuation("a", 5, True), AppendData(b"three"), AppendEnd("a", 3),
    ]


def test_append_errors() -> None:
    # too big: NO [TOOBIG]; synchronising -> the client does not send it
    evs = drive([b"a APPEND INBOX {100}\r\nb NOOP\r\n"], max_literal=50)
    assert evs == [BadCommand("a", "Message larger than the limit of 50 bytes", "TOOBIG", "NO"), Noop(tag="b")]
    # non-synchronising -> skipped
    evs = drive([b"a APPEND INBOX {100+}\r\n" + b"z" * 100 + b"\r\nb NOOP\r\n"], max_literal=50)
    assert evs == [BadCommand("a", "Message larger than the limit of 50 bytes", "TOOBIG", "NO"), Noop(tag="b")]
    # bad flags before the literal
    evs = drive([b"a APPEND INBOX (\\Bogus) {3+}\r\nabc\r\nb NOOP\r\n"])
    assert [type(e) for e in evs] == [BadCommand, Noop]
    # garbage after a message: BAD instead of AppendEnd (the session drops the messages)
    evs = drive([b"a APPEND INBOX {1+}\r\nx FOO\r\nb NOOP\r\n"])
    assert evs[:2] == [AppendStart("a", "INBOX", (), None, 1, 0), AppendData(b"x")]
    assert isinstance(evs[2], BadCommand) and evs[2].tag == "a"
    assert evs[3:] == [Noop(tag="b")]
    # literal8 outside APPEND
    evs = drive([b"a LOGIN ~{3}\r\nb NOOP\r\n"])
    assert isinstance(evs[0], BadCommand) and evs[1:] == [Noop(tag="b")]
    # invalid mailbox name
    evs = drive([b"a APPEND \"../x\" {1+}\r\nx\r\nb NOOP\r\n"])
    assert isinstance(evs[0], BadCommand) and evs[1:] == [Noop(tag="b")]


def test_reject_append_midway() -> None:
    r = ImapReceiver()
    assert [type(e) for e in feed(r, b"a APPEND INBOX {10+}\r\n12345")] == [AppendStart, AppendData]
    r.reject_literal()  # e.g. over quota: the session answers NO [OVERQUOTA]
    assert feed(r, b"67890 {3+}\r\nabc\r\nb NOOP\r\n") == [Noop(tag="b")]
    # rejected right after AppendStart of a synchronising literal: nothing more is read
    r = ImapReceiver()
    assert [type(e) for e in feed(r, b"a APPEND Nope {10}\r\n")] == [AppendStart, NeedContinuation]
    r.reject_literal()
    assert feed(r, b"b NOOP\r\n") == [Noop(tag="b")]


def test_reject_after_the_last_chunk_of_a_message() -> None:
    r = ImapReceiver()
    assert [type(e) for e in feed(r, b"a APPEND INBOX {3+}\r\nabc")] == [AppendStart, AppendData]
    r.reject_literal()  # the data is complete, but the command goes on: no AppendEnd must follow
    assert feed(r, b" {2+}\r\nde\r\nb NOOP\r\n") == [Noop(tag="b")]
    r = ImapReceiver()
    feed(r, b"a APPEND INBOX {3+}\r\nabc")
    r.reject_literal()
    assert feed(r, b"\r\nb NOOP\r\n") == [Noop(tag="b")]


def test_literal_minus() -> None:
    kw = {"max_nonsync": 4096}
    evs = drive([b"a APPEND INBOX {4096+}\r\n" + b"m" * 4096 + b"\r\n"], **kw)
    assert [type(e) for e in evs] == [AppendStart, AppendData, AppendEnd]
    text = "Non-synchronizing literal larger than 4096 bytes"
    evs = drive([b"a APPEND INBOX {4097+}\r\n" + b"m" * 4097 + b"\r\nb NOOP\r\n"], **kw)
    assert evs == [BadCommand("a", text, "TOOBIG"), Noop(tag="b")]
    evs = drive([b"a APPEND INBOX {1+}\r\nm {5000+}\r\n" + b"m" * 5000 + b"\r\nb NOOP\r\n"], **kw)
    assert evs[-2:] == [BadCommand("a", text, "TOOBIG"), Noop(tag="b")]
    evs = drive([b"a LOGIN {5000+}\r\n" + b"u" * 5000 + b" p\r\nb NOOP\r\n"], **kw)
    assert evs == [BadCommand("a", text, "TOOBIG"), Noop(tag="b")]
    # a synchronising literal of any size is fine
    evs = drive([b"a APPEND INBOX {5000}\r\n" + b"m" * 5000 + b"\r\n"], **kw)
    assert [type(e) for e in evs] == [AppendStart, NeedContinuation, AppendData, AppendEnd]


def test_idle_and_auth_modes() -> None:
    r = ImapReceiver()
    assert feed(r, b"a IDLE\r\n")[0].name == "IDLE"
    r.start_idle()
    assert feed(r, b"done\r\n") == [IdleDone()]
    r.receive_data(b"a IDLE\r\n")
    r.next_event()
    r.start_idle()
    assert feed(r, b"b NOOP\r\n") == [BadCommand(None, "Expected DONE")]
    assert feed(r, b"c AUTHENTICATE PLAIN\r\n")[0].name == "AUTHENTICATE"
    r.start_auth()
    ev = feed(r, b"AGEAYg==\r\n")
    assert ev == [AuthLine(b"AGEAYg==")] and not ev[0].cancelled
    r.start_auth()
    ev = feed(r, b"*\r\n")
    assert ev[0].cancelled


def test_drop_buffer_for_starttls_and_compress() -> None:
    r = ImapReceiver()
    r.receive_data(b"a STARTTLS\r\nb LOGIN injected x\r\n")
    assert r.next_event() == StartTLS(tag="a")
    assert r.drop_buffer() == b"b LOGIN injected x\r\n"
    assert r.next_event() is NEED_DATA
    assert feed(r, b"c NOOP\r\n") == [Noop(tag="c")]


def test_non_synchronising_literal_in_rejected_command_is_skipped() -> None:
    evs = drive([b"a FOO {5+}\r\nb BAR\r\nc NOOP\r\n"])
    assert [type(e) for e in evs] == [BadCommand, Noop]


TRANSCRIPT = (
    b"a1 CAPABILITY\r\n"
    b"a2 LOGIN {3}\r\nbob {6+}\r\nsecret\r\n"
    b"a3 ENABLE IMAP4rev2\r\n"
    b'a4 LIST "" * RETURN (SPECIAL-USE SUBSCRIBED)\r\n'
    b"a5 SELECT INBOX (CONDSTORE)\r\n"
    b"a6 UID FETCH 1:* (FLAGS)\r\n"
    b"a7 IDLE\r\nDONE\r\n"
    b"a8 APPEND INBOX (\\Seen) {12}\r\nFrom: x\r\n\r\nhi ~{4+}\r\n\x00\x01\r\n\r\n"
    b"a9 SEARCH CHARSET UTF-8 TEXT {2}\r\n\xc3\xa4\r\n"
    b"b1 BOGUS\r\n"
    b"b2 AUTHENTICATE PLAIN\r\nAGEAYg==\r\n"
    b"b3 STORE 1:3 +FLAGS.SILENT (\\Deleted)\r\n"
    b"b4 LOGOUT\r\n"
)


def test_split_at_every_byte_gives_the_same_events() -> None:
    whole = drive([TRANSCRIPT])
    assert len(whole) > 15 and not any(isinstance(e, ProtocolViolation) for e in whole)
    for i in range(len(TRANSCRIPT) + 1):
        assert drive([TRANSCRIPT[:i], TRANSCRIPT[i:]]) == whole, i
    assert drive([TRANSCRIPT[i:i + 1] for i in range(len(TRANSCRIPT))]) == whole
    for step in (2, 3, 7, 13):
        assert drive([TRANSCRIPT[i:i + step] for i in range(0, len(TRANSCRIPT), step)]) == whole
