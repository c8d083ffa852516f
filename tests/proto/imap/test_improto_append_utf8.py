"""ImapReceiver: APPEND's RFC 6855 §4 form ``UTF8 (~{n}...)``, alone and in MULTIAPPEND (RFC 3502),
with synchronising and non-synchronising literal8, the ")" after the literal, BAD for the malformed
variants, and the same events however the input is split."""

from __future__ import annotations

from datetime import UTC, datetime

from improto_helpers import drive

from mailcove.proto.imap import (
    NEED_DATA,
    AppendData,
    AppendEnd,
    AppendStart,
    BadCommand,
    ImapReceiver,
    NeedContinuation,
    Noop,
    ProtocolViolation,
)

MSG = "From: a@hamap.local\r\nSubject: Grüße\r\n\r\nhéllo\r\n".encode()
N = len(MSG)


def feed(r: ImapReceiver, data: bytes) -> list[object]:
    r.receive_data(data)
    out = []
    while (e := r.next_event()) is not NEED_DATA:
        out.append(e)
        if isinstance(e, ProtocolViolation):
            break
    return out


def test_thunderbird_sent_copy_non_synchronising() -> None:
    """What Thunderbird 153 sends for the Sent copy (LITERAL+ server)."""
    evs = drive([b'7 APPEND "Sent" (\\Seen) UTF8 (~{%d+}\r\n' % N + MSG + b")\r\n8 NOOP\r\n"])
    assert evs == [AppendStart("7", "Sent", ("\\Seen",), None, N, 0, True, False, True), AppendData(MSG),
                   AppendEnd("7", 1), Noop(tag="8")]


def test_synchronising_literal8_waits_for_continuation() -> None:
    r = ImapReceiver()
    evs = feed(r, b"a append INBOX utf8 (~{%d}\r\n" % N)
    assert evs == [AppendStart("a", "INBOX", (), None, N, 0, True, True, True), NeedContinuation("a", N, True)]
    assert feed(r, MSG[:5]) == [AppendData(MSG[:5])]
    assert feed(r, MSG[5:]) == [AppendData(MSG[5:])]
    assert feed(r, b")") == []  # the ")" alone does not end the command: its CRLF does
    assert feed(r, b"\r\n") == [AppendEnd("a", 1)]
    assert feed(r, b"b NOOP\r\n") == [Noop(tag="b")]


def test_flags_date_and_nul_in_literal8() -> None:
    data = b"Subject: x\r\n\r\na\x00b\r\n"
    evs = drive([b'a APPEND Drafts (\\Draft $Fwd) "01-Jan-2020 00:00:00 +0000" UTF8 (~{%d+}\r\n' % len(data)
                 + data + b")\r\n"])
    assert evs == [AppendStart("a", "Drafts", ("\\Draft", "$Fwd"), datetime(2020, 1, 1, tzinfo=UTC), len(data), 0,
                               True, False, True), AppendData(data), AppendEnd("a", 1)]


def test_empty_message() -> None:
    assert drive([b"a APPEND INBOX UTF8 (~{0+}\r\n)\r\n"]) == [
        AppendStart("a", "INBOX", (), None, 0, 0, True, False, True), AppendEnd("a", 1)]


def test_multiappend_mixes_both_forms() -> None:
    two = b"Subject: two\r\n\r\n2\r\n"
    evs = drive([b"a APPEND Saved UTF8 (~{%d+}\r\n" % N + MSG
                 + b") (\\Seen) {%d+}\r\n" % len(two) + two
                 + b" UTF8 (~{3}\r\nabc"
                 + b") (\\Flagged) UTF8 (~{%d+}\r\n" % N + MSG + b")\r\n"])
    assert evs == [
        AppendStart("a", "Saved", (), None, N, 0, True, False, True), AppendData(MSG),
        AppendStart("a", "Saved", ("\\Seen",), None, len(two), 1, False, False, False), AppendData(two),
        AppendStart("a", "Saved", (), None, 3, 2, True, True, True), NeedContinuation("a", 3, True),
        AppendData(b"abc"),
        AppendStart("a", "Saved", ("\\Flagged",), None, N, 3, True, False, True), AppendData(MSG),
        AppendEnd("a", 4),
    ]


def test_missing_close_paren_is_bad() -> None:
    # end of the command right after the literal
    evs = drive([b"a APPEND INBOX UTF8 (~{3+}\r\nabc\r\nb NOOP\r\n"])
    assert evs == [AppendStart("a", "INBOX", (), None, 3, 0, True, False, True), AppendData(b"abc"),
                   BadCommand("a", "Expected ')' after the UTF8 message literal"), Noop(tag="b")]
    # another message instead of ")": its non-synchronising literal is skipped, not run as commands
    evs = drive([b"a APPEND INBOX UTF8 (~{3+}\r\nabc {10+}\r\nc LOGOUT\r\n\r\nb NOOP\r\n"])
    assert evs[2:] == [BadCommand("a", "Expected ')' after the UTF8 message literal"), Noop(tag="b")]
    # a synchronising one is never sent (the client gets the BAD first)
    evs = drive([b"a APPEND INBOX UTF8 (~{3+}\r\nabc {9}\r\nb NOOP\r\n"])
    assert evs[2:] == [BadCommand("a", "Expected ')' after the UTF8 message literal"), Noop(tag="b")]


def test_malformed_forms_are_bad_and_the_session_goes_on() -> None:
    cases = [
        b"a APPEND INBOX UTF8 ({3+}\r\nabc)\r\n",  # not a literal8
        b"a APPEND INBOX UTF8 ~{3+}\r\nabc)\r\n",  # no "("
        b"a APPEND INBOX UTF8(~{3+}\r\nabc)\r\n",  # no SP
        b"a APPEND INBOX UTF8  (~{3+}\r\nabc)\r\n",  # two SP
        b"a APPEND INBOX UTF8 ((~{3+}\r\nabc))\r\n",  # nested
        b"a APPEND INBOX UTF8 (\\Seen) ~{3+}\r\nabc\r\n",  # UTF8 before the flags
        b"a APPEND INBOX UTF8 ( ~{3+}\r\nabc)\r\n",  # SP inside
        b"a APPEND INBOX UTF7 (~{3+}\r\nabc)\r\n",  # another word
    ]
    for case in cases:
        evs = drive([case + b"b NOOP\r\n"])
        assert len(evs) == 2 and isinstance(evs[0], BadCommand), (case, evs)
        assert evs[0].tag == "a" and evs[0].status == "BAD", (case, evs)
        assert evs[1] == Noop(tag="b"), (case, evs)
    # the same with synchronising literals: the client waits for "+" and, refused, sends nothing more
    for case in (b"a APPEND INBOX UTF8 ({3}\r\n", b"a APPEND INBOX UTF8 ~{3}\r\n"):
        evs = drive([case + b"b NOOP\r\n"])
        assert [type(e) for e in evs] == [BadCommand, Noop], (case, evs)
    # garbage after the ")": BAD instead of AppendEnd, so the session drops the message
    evs = drive([b"a APPEND INBOX UTF8 (~{3+}\r\nabc) FOO\r\nb NOOP\r\n"])
    assert evs[:2] == [AppendStart("a", "INBOX", (), None, 3, 0, True, False, True), AppendData(b"abc")]
    assert isinstance(evs[2], BadCommand) and evs[2].tag == "a" and evs[3:] == [Noop(tag="b")]
    evs = drive([b"a APPEND INBOX UTF8 (~{3+}\r\nabc))\r\nb NOOP\r\n"])
    assert isinstance(evs[2], BadCommand) and evs[3:] == [Noop(tag="b")]


def test_limits_still_apply() -> None:
    evs = drive([b"a APPEND INBOX UTF8 (~{100+}\r\n" + b"z" * 100 + b")\r\nb NOOP\r\n"], max_literal=50)
    assert evs == [BadCommand("a", "Message larger than the limit of 50 bytes", "TOOBIG", "NO"), Noop(tag="b")]
    evs = drive([b"a APPEND INBOX UTF8 (~{5000+}\r\n" + b"m" * 5000 + b")\r\nb NOOP\r\n"], max_nonsync=4096)
    assert evs == [BadCommand("a", "Non-synchronizing literal larger than 4096 bytes", "TOOBIG"), Noop(tag="b")]


def test_reject_midway_skips_the_close_paren_and_the_rest() -> None:
    r = ImapReceiver()
    assert [type(e) for e in feed(r, b"a APPEND INBOX UTF8 (~{10+}\r\n12345")] == [AppendStart, AppendData]
    r.reject_literal()  # e.g. over quota
    assert feed(r, b"67890) UTF8 (~{3+}\r\nabc)\r\nb NOOP\r\n") == [Noop(tag="b")]
    r = ImapReceiver()
    assert [type(e) for e in feed(r, b"a APPEND INBOX UTF8 (~{3+}\r\nabc")] == [AppendStart, AppendData]
    r.reject_literal()  # after the last chunk: the ")" CRLF still belongs to the command
    assert feed(r, b")\r\nb NOOP\r\n") == [Noop(tag="b")]


TRANSCRIPT = (
    b"a1 ENABLE UTF8=ACCEPT\r\n"
    b'a2 APPEND "Sent" (\\Seen) UTF8 (~{%d+}\r\n' % N + MSG + b")\r\n"
    b"a3 APPEND Sent UTF8 (~{%d}\r\n" % N + MSG + b")\r\n"
    b"a4 APPEND Sent UTF8 (~{3+}\r\nabc) {2+}\r\nde UTF8 (~{1}\r\nf) (\\Seen) UTF8 (~{0+}\r\n)\r\n"
    b"a5 APPEND Sent UTF8 (~{3+}\r\nabc\r\n"
    b"a6 APPEND Sent UTF8 ({3+}\r\nabc)\r\n"
    b"a7 NOOP\r\n"
)


def test_split_at_every_byte_gives_the_same_events() -> None:
    whole = drive([TRANSCRIPT])
    assert [type(e) for e in whole] == [
        type(whole[0]),  # Enable
        AppendStart, AppendData, AppendEnd,
        AppendStart, NeedContinuation, AppendData, AppendEnd,
        AppendStart, AppendData, AppendStart, AppendData, AppendStart, NeedContinuation, AppendData,
        AppendStart, AppendEnd,
        AppendStart, AppendData, BadCommand,
        BadCommand,
        Noop,
    ]
    assert whole[-6].tag == "a4" and whole[-6].count == 4  # type: ignore[attr-defined]
    for i in range(len(TRANSCRIPT) + 1):
        assert drive([TRANSCRIPT[:i], TRANSCRIPT[i:]]) == whole, i
    assert drive([TRANSCRIPT[i:i + 1] for i in range(len(TRANSCRIPT))]) == whole
    for step in (2, 3, 7, 13):
        assert drive([TRANSCRIPT[i:i + step] for i in range(0, len(TRANSCRIPT), step)]) == whole
