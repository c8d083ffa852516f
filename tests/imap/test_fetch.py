"""FETCH / UID FETCH: every data item, sections, partials, BINARY, \\Seen side effect, big bodies."""

from __future__ import annotations

import base64

from imap_lab import fetches, message

MULTI = (
    b"From: Bob <bob@example.com>\r\nTo: a@hamap.local\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n"
    b"Date: Sat, 28 Nov 2026 09:00:00 +0100\r\nMessage-ID: <multi@example.com>\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="XX"\r\n\r\npreamble\r\n'
    b"--XX\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"caf=C3=A9 au lait\r\n"
    b"--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
    b'Content-Disposition: attachment; filename="a.bin"\r\n\r\n'
    + base64.encodebytes(b"\x00\x01binary\x02") +
    b"--XX\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nFrom: x@y\r\n\r\ninner body\r\n"
    b"--XX--\r\n"
)


def test_metadata_items(imap):
    imap.deliver(MULTI)
    c = imap.client(select="INBOX")
    got = fetches(c.ok("FETCH 1 (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY BODYSTRUCTURE)"))[1]
    assert got["UID"] == 1 and got["RFC822.SIZE"] == len(MULTI)
    env = got["ENVELOPE"]
    assert env[1] == b"=?utf-8?q?caf=C3=A9?=" and env[9] == b"<multi@example.com>"
    assert isinstance(got["BODYSTRUCTURE"], (dict, list))
    got = fetches(c.ok("FETCH 1 ALL"))[1]
    assert set(got) == {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"}
    got = fetches(c.ok("FETCH 1 FAST"))[1]
    assert set(got) == {"FLAGS", "INTERNALDATE", "RFC822.SIZE"}


def test_sections_and_partial(imap):
    imap.deliver(MULTI)
    c = imap.client(select="INBOX")
    got = fetches(c.ok("FETCH 1 (BODY.PEEK[] BODY.PEEK[HEADER] BODY.PEEK[TEXT] BODY.PEEK[1] BODY.PEEK[1.MIME] "
                       "BODY.PEEK[3.HEADER] BODY.PEEK[3.TEXT] BODY.PEEK[]<0.4> BODY.PEEK[9])"))[1]
    assert got["BODY[]"] == MULTI
    assert got["BODY[HEADER]"].endswith(b"boundary=\"XX\"\r\n\r\n")
    assert got["BODY[1]"] == b"caf=C3=A9 au lait"
    assert got["BODY[1.MIME]"].startswith(b"Content-Type: text/plain")
    assert got["BODY[3.HEADER]"] == b"Subject: inner\r\nFrom: x@y\r\n\r\n"
    assert got["BODY[3.TEXT]"] == b"inner body"  # the CRLF before a boundary belongs to it
    assert got["BODY[]<0>"] == b"From"
    assert got["BODY[9]"] == b""
    got = fetches(c.ok("FETCH 1 (BODY.PEEK[HEADER.FIELDS (subject DATE)] BODY.PEEK[HEADER.FIELDS.NOT (Subject)])"))[1]
    assert got["BODY[HEADER.FIELDS (subject DATE)]"] == (
        b"Subject: =?utf-8?q?caf=C3=A9?=\r\nDate: Sat, 28 Nov 2026 09:00:00 +0100\r\n\r\n")
    assert b"Subject" not in got["BODY[HEADER.FIELDS.NOT (Subject)]"]
    got = fetches(c.ok("FETCH 1 (RFC822.HEADER RFC822.TEXT)"))[1]
    assert got["RFC822.HEADER"] + got["RFC822.TEXT"] == MULTI


def test_binary(imap):
    imap.deliver(MULTI)
    c = imap.client(select="INBOX")
    got = fetches(c.ok("FETCH 1 (BINARY.PEEK[1] BINARY.PEEK[2] BINARY.SIZE[2] BINARY.PEEK[2]<1.3>)"))[1]
    assert got["BINARY[1]"] == "café au lait".encode()
    assert got["BINARY[2]"] == b"\x00\x01binary\x02"
    assert got["BINARY.SIZE[2]"] == 9
    assert got["BINARY[2]<1>"] == b"\x01bi"


def test_body_sets_seen_peek_does_not(imap):
    imap.deliver(message("s"))
    c = imap.client(select="INBOX")
    got = fetches(c.ok("FETCH 1 (BODY.PEEK[TEXT])"))[1]
    assert "FLAGS" not in got
    got = fetches(c.ok("FETCH 1 (BODY[TEXT])"))[1]
    assert "\\Seen" in got["FLAGS"]  # the implicit \Seen is reported in the same response
    got = fetches(c.ok("FETCH 1 (FLAGS)"))[1]
    assert "\\Seen" in got["FLAGS"]


def test_big_message_streams_exactly(imap):
    big = message("big", "x" * 78 + "\r\n") + b"".join(b"%077d\r\n" % i for i in range(40000))  # ~3 MB
    imap.deliver(big)
    c = imap.client(select="INBOX")
    got = fetches(c.ok("FETCH 1 (BODY.PEEK[] RFC822.SIZE)"))[1]
    assert got["RFC822.SIZE"] == len(big) and got["BODY[]"] == big
    got = fetches(c.ok("FETCH 1 (BODY.PEEK[]<1000000.300000>)"))[1]
    assert got["BODY[]<1000000>"] == big[1000000:1300000]


def test_uid_fetch_ranges_and_bad_sequence(imap):
    for i in range(5):
        imap.deliver(message(f"m{i}"))
    c = imap.client(select="INBOX")
    got = fetches(c.ok("UID FETCH 2:4,9 (FLAGS)"))
    assert sorted(v["UID"] for v in got.values()) == [2, 3, 4]
    got = fetches(c.ok("UID FETCH 9:* (FLAGS)"))  # "*" is the largest UID: 5:9 -> 5
    assert [v["UID"] for v in got.values()] == [5]
    _, done = c.cmd("FETCH 7 (FLAGS)")
    assert done.status == "BAD"
    _, done = c.cmd("FETCH 1 (NONSENSE)")
    assert done.status == "BAD"


def test_changedsince(imap):
    for i in range(3):
        imap.deliver(message(f"m{i}"))
    c = imap.client()
    untagged = c.ok("SELECT INBOX (CONDSTORE)")
    hms = next(r.code_data for r in untagged if r.code == "HIGHESTMODSEQ")
    c.ok("STORE 2 +FLAGS.SILENT (\\Flagged)")
    got = fetches(c.ok(f"FETCH 1:* (FLAGS) (CHANGEDSINCE {hms})"))
    assert list(got) == [2] and got[2]["MODSEQ"] > hms


def test_first_condstore_enabling_fetch_announces_highestmodseq(imap):
    """RFC 7162 3.1 (imaptest's esearch-condstore): FETCH ... MODSEQ is CONDSTORE-enabling; the
    first such command while selected gets an untagged OK [HIGHESTMODSEQ], and only the first."""
    imap.deliver(message("one"))
    c = imap.client(select="INBOX")
    untagged = c.ok("FETCH 1 (MODSEQ)")
    codes = [r.code for r in untagged if r.kind == "OK"]
    assert codes == ["HIGHESTMODSEQ"]
    assert not [r for r in c.ok("FETCH 1 (MODSEQ)") if r.kind == "OK"]
