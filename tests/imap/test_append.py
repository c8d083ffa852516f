"""APPEND: synchronising and non-synchronising literals, flags and date, MULTIAPPEND, literal8,
APPENDUID, TRYCREATE, OVERQUOTA, TOOBIG, bare LF converted once."""

from __future__ import annotations

from imap_lab import fetches, kinds

from mailcove.proto.imap.client import Tagged

MSG = b"Subject: appended\r\nFrom: a@hamap.local\r\n\r\nhello\r\n"


def test_sync_literal_with_flags_and_date(imap):
    c = imap.client()
    c.send(b'a1 APPEND INBOX (\\Seen $Important) "05-Nov-2026 10:11:12 +0100" {%d}\r\n' % len(MSG))
    c.continuation()
    c.send(MSG + b"\r\n")
    _, done = c.until("a1")
    assert done.status == "OK" and done.code == "APPENDUID"
    assert done.raw.split(b"]")[0].endswith(b" 1")
    untagged = c.ok("SELECT INBOX")
    assert ("EXISTS", 1) in kinds(untagged)
    got = fetches(c.ok("FETCH 1 (FLAGS INTERNALDATE BODY.PEEK[])"))[1]
    assert set(got["FLAGS"]) >= {"\\Seen", "$Important"}
    assert got["INTERNALDATE"] == '"05-Nov-2026 09:11:12 +0000"'  # kept as UTC
    assert got["BODY[]"] == MSG


def test_nonsync_literal_and_bare_lf(imap):
    c = imap.client(select="INBOX")
    lf = b"Subject: lf\n\nline one\nline two\n"
    c.send(b"a1 APPEND INBOX {%d+}\r\n" % len(lf) + lf + b"\r\n")
    untagged, done = c.until("a1")
    assert done.status == "OK"
    assert ("EXISTS", 1) in kinds(untagged)  # the selected mailbox reports it at once
    got = fetches(c.ok("FETCH 1 (BODY.PEEK[] RFC822.SIZE)"))[1]
    assert got["BODY[]"] == lf.replace(b"\n", b"\r\n") and got["RFC822.SIZE"] == len(got["BODY[]"])


def test_multiappend_and_literal8(imap):
    c = imap.client()
    bin_msg = b"Subject: bin\r\n\r\n\x00\x01\x02\r\n"
    c.send(b"a1 APPEND INBOX {%d+}\r\n" % len(MSG) + MSG
           + b" (\\Flagged) ~{%d+}\r\n" % len(bin_msg) + bin_msg + b"\r\n")
    _, done = c.until("a1")
    assert done.status == "OK" and done.code == "APPENDUID"
    assert done.raw.split(b"]")[0].endswith(b" 1:2")
    c.ok("SELECT INBOX")
    got = fetches(c.ok("FETCH 1:2 (FLAGS BINARY.PEEK[1] BODY.PEEK[])"))
    # The NUL-bearing body is kept base64-encoded (RFC 3516 4.4 lets the server change the CTE
    # without loss): BINARY[1] gives the octets back, BODY[] never carries a NUL.
    assert got[2]["BINARY[1]"] == b"\x00\x01\x02\r\n" and "\\Flagged" in got[2]["FLAGS"]
    assert b"\x00" not in got[2]["BODY[]"]


def test_missing_mailbox_is_trycreate_and_literal_never_sent(imap):
    c = imap.client()
    c.send(b"a1 APPEND Nowhere {%d}\r\n" % len(MSG))
    r = c.read_one()
    assert isinstance(r, Tagged) and r.status == "NO" and r.code == "TRYCREATE"
    c.ok("NOOP")  # still in step: the literal was refused before it was sent


def test_too_big_is_refused_without_reading(imap):
    c = imap.client()
    c.send(b"a1 APPEND INBOX {999999999999}\r\n")
    r = c.read_one()
    assert isinstance(r, Tagged) and r.status == "NO" and r.code == "TOOBIG"
    c.ok("NOOP")


def test_over_quota(imap_factory):
    box = imap_factory(quota={"a@hamap.local": 1000})
    c = box.client()
    big = b"Subject: q\r\n\r\n" + b"x" * 2000 + b"\r\n"
    c.send(b"a1 APPEND INBOX {%d}\r\n" % len(big))
    r = c.read_one()
    assert isinstance(r, Tagged) and r.status == "NO" and r.code == "OVERQUOTA"
    c.send(b"a2 APPEND INBOX {%d+}\r\n" % len(big) + big + b"\r\n")
    _, done = c.until("a2")
    assert done.status == "NO" and done.code == "OVERQUOTA"
    c.ok("NOOP")


UTF8_MSG = "Subject: Grüße aus Köln\r\nFrom: Jürgen <a@hamap.local>\r\n\r\nhéllo\r\n".encode()


def test_utf8_data_item_as_thunderbird_sends_it(imap):
    """RFC 6855 §4 `UTF8 (~{n+}...)`: Thunderbird 153's Sent copy. Refused with BAD until issue 12."""
    c = imap.client()
    assert "UTF8=ACCEPT" in c.ok("CAPABILITY")[0].data
    c.ok("ENABLE UTF8=ACCEPT")
    c.send(b'a1 APPEND "INBOX" (\\Seen) UTF8 (~{%d+}\r\n' % len(UTF8_MSG) + UTF8_MSG + b")\r\n")
    _, done = c.until("a1")
    assert done.status == "OK" and done.code == "APPENDUID", done
    # synchronising literal8, without ENABLE on another connection (RFC 6855 ties the syntax to the
    # advertised capability, not to ENABLE)
    c2 = imap.client()
    c2.send(b"a2 APPEND INBOX (\\Flagged) UTF8 (~{%d}\r\n" % len(UTF8_MSG))
    c2.continuation()
    c2.send(UTF8_MSG + b")\r\n")
    _, done = c2.until("a2")
    assert done.status == "OK" and done.code == "APPENDUID", done
    c2.ok("NOOP")  # the ")" was not left behind as a command
    c.ok("SELECT INBOX")
    got = fetches(c.ok("FETCH 1:* (FLAGS BODY.PEEK[])"))
    assert sorted(got) == [1, 2]
    assert got[1]["BODY[]"] == UTF8_MSG and "\\Seen" in got[1]["FLAGS"]
    assert got[2]["BODY[]"] == UTF8_MSG and "\\Flagged" in got[2]["FLAGS"]


def test_utf8_data_item_in_multiappend(imap):
    c = imap.client()
    plain = b"Subject: plain\r\n\r\nascii\r\n"
    c.send(b"a1 APPEND INBOX UTF8 (~{%d+}\r\n" % len(UTF8_MSG) + UTF8_MSG
           + b") (\\Seen) {%d+}\r\n" % len(plain) + plain
           + b" (\\Answered) UTF8 (~{%d+}\r\n" % len(UTF8_MSG) + UTF8_MSG + b")\r\n")
    _, done = c.until("a1")
    assert done.status == "OK" and done.raw.split(b"]")[0].endswith(b" 1:3"), done
    c.ok("SELECT INBOX")
    got = fetches(c.ok("FETCH 1:3 (FLAGS BODY.PEEK[])"))
    assert [got[i]["BODY[]"] for i in (1, 2, 3)] == [UTF8_MSG, plain, UTF8_MSG]
    assert "\\Seen" in got[2]["FLAGS"] and "\\Answered" in got[3]["FLAGS"]


def test_utf8_data_item_malformed_is_bad_and_stores_nothing(imap):
    c = imap.client()
    # no ")" after the literal: BAD, and the whole MULTIAPPEND is dropped
    c.send(b"a1 APPEND INBOX UTF8 (~{%d+}\r\n" % len(UTF8_MSG) + UTF8_MSG + b"\r\n")
    _, done = c.until("a1")
    assert done.status == "BAD"
    # a plain literal inside UTF8 ( ): not a literal8
    c.send(b"a2 APPEND INBOX UTF8 ({%d+}\r\n" % len(UTF8_MSG) + UTF8_MSG + b")\r\n")
    _, done = c.until("a2")
    assert done.status == "BAD"
    c.send(b"a3 APPEND INBOX {3+}\r\nabc UTF8 (~{3+}\r\ndef) junk\r\n")
    _, done = c.until("a3")
    assert done.status == "BAD"
    st = next(r.data for r in c.ok("STATUS INBOX (MESSAGES)") if r.kind == "STATUS")
    assert st["items"]["MESSAGES"] == 0, st
