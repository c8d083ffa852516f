"""SEARCH / UID SEARCH: every key, CHARSET, ESEARCH RETURN options, SEARCHRES, rev2 ESEARCH."""

from __future__ import annotations

from imap_lab import message


def _nums(untagged):
    return next(r.data for r in untagged if r.kind == "SEARCH")["numbers"]


def _es(untagged):
    return next(r.data for r in untagged if r.kind == "ESEARCH")


def _setup(imap):
    imap.deliver(message("Quarterly report", "The numbers are in.", sender="boss@corp.example",
                         date="Mon, 02 Nov 2026 10:00:00 +0000", extra="X-Tag: alpha\r\nCc: team@corp.example\r\n"))
    imap.deliver(message("Lunch?", "Pizza at noon", sender="friend@example.org",
                         date="Tue, 10 Nov 2026 10:00:00 +0000"))
    imap.deliver(message("=?utf-8?q?R=C3=A9sum=C3=A9?=", "Grüße aus Köln", sender="hr@example.net",
                         date="Fri, 20 Nov 2026 10:00:00 +0000",
                         extra="Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"))
    c = imap.client(select="INBOX")
    c.ok("STORE 2 +FLAGS (\\Flagged \\Seen)")
    c.ok("STORE 3 +FLAGS ($Later)")
    return c


def test_every_key(imap):
    c = _setup(imap)
    cases = {
        "ALL": [1, 2, 3], "FLAGGED": [2], "UNFLAGGED": [1, 3], "SEEN": [2], "UNSEEN": [1, 3],
        "ANSWERED": [], "UNANSWERED": [1, 2, 3], "DELETED": [], "UNDELETED": [1, 2, 3], "DRAFT": [],
        "UNDRAFT": [1, 2, 3], "KEYWORD $Later": [3], "UNKEYWORD $Later": [1, 2], "RECENT": [1, 2, 3],
        "NEW": [1, 3], "OLD": [], "FROM boss": [1], "TO a@hamap.local": [1, 2, 3], "CC team": [1],
        "BCC nobody": [], "SUBJECT lunch": [2], "SUBJECT résumé": [3], "BODY pizza": [2], "BODY köln": [3],
        "TEXT alpha": [1], "TEXT noon": [2], "HEADER X-Tag alpha": [1], 'HEADER X-Tag ""': [1],
        "HEADER Message-ID Lunch": [2], "SENTBEFORE 10-Nov-2026": [1], "SENTON 10-Nov-2026": [2],
        "SENTSINCE 10-Nov-2026": [2, 3], "LARGER 1": [1, 2, 3], "SMALLER 1": [], "2:3": [2, 3], "*": [3],
        "UID 1,3": [1, 3], "NOT FLAGGED": [1, 3], "OR FLAGGED KEYWORD $Later": [2, 3],
        "(FROM boss SUBJECT report)": [1], "FROM boss BODY pizza": [], "SINCE 1-Jan-2000": [1, 2, 3],
        "BEFORE 1-Jan-2000": [], "YOUNGER 3600": [1, 2, 3], "OLDER 3600": [], "ON 1-Jan-2000": [],
    }
    for key, want in cases.items():
        data = key.encode("utf-8")
        if not data.isascii():
            c.send(b"c1 SEARCH CHARSET UTF-8 " + data.split(b" ")[0] + b" {%d+}\r\n" % len(data.split(b" ", 1)[1])
                   + data.split(b" ", 1)[1] + b"\r\n")
            untagged, done = c.until("c1")
        else:
            untagged, done = c.cmd(b"SEARCH " + data)
        assert done.status == "OK", (key, done)
        assert _nums(untagged) == want, key


def test_charset_and_errors(imap):
    c = _setup(imap)
    _, done = c.cmd("SEARCH CHARSET KOI8-R ALL")
    assert done.status == "NO" and done.code == "BADCHARSET"
    _, done = c.cmd("SEARCH BOGUS")
    assert done.status == "BAD"
    assert _nums(c.ok("SEARCH CHARSET US-ASCII FROM boss")) == [1]


def test_esearch_and_searchres(imap):
    c = _setup(imap)
    es = _es(c.ok("SEARCH RETURN (MIN MAX COUNT) ALL"))
    assert (es["MIN"], es["MAX"], es["COUNT"]) == (1, 3, 3)
    es = _es(c.ok("UID SEARCH RETURN () UNFLAGGED"))
    assert es["uid"] and es["ALL"] == "1,3"
    untagged = c.ok("SEARCH RETURN (SAVE) FROM boss")
    assert untagged == []
    assert _nums(c.ok("SEARCH $")) == [1]
    c.ok("STORE $ +FLAGS (\\Answered)")
    assert _nums(c.ok("SEARCH ANSWERED")) == [1]


def test_rev2_answers_esearch(imap):
    c = _setup(imap)
    c.ok("ENABLE IMAP4rev2")
    es = _es(c.ok("SEARCH FLAGGED"))
    assert es["ALL"] == "2" and es["tag"] is not None


def test_modseq(imap):
    c = _setup(imap)
    c.ok("SELECT INBOX (CONDSTORE)")
    untagged = c.ok("SEARCH MODSEQ 1")
    data = next(r.data for r in untagged if r.kind == "SEARCH")
    assert data["numbers"] == [1, 2, 3] and data["modseq"] >= 1


async def test_younger_and_older_count_back_from_the_clock(tmp_path):
    """RFC 5032 WITHIN: YOUNGER and OLDER count back from the server's clock (a FakeClock, in
    process): a message received at midnight is younger than 10 s until 10 s have passed."""
    from inprocess import serve_in_process

    async with serve_in_process(tmp_path, "[auth]\nallow_plaintext = true\n") as lab:  # its clock: 2026-01-01
        c = await lab.imap(login="a@hamap.local")
        msg = message("dated")
        c.send(b'ap APPEND INBOX "01-Jan-2026 00:00:00 +0000" {%d}\r\n' % len(msg))
        await c.continuation()
        c.send(msg + b"\r\n")
        _, done = await c.until("ap")
        assert done.status == "OK", done
        await c.ok("SELECT INBOX")
        assert _nums(await c.ok("SEARCH YOUNGER 10")) == [1]
        assert _nums(await c.ok("SEARCH OLDER 10")) == []
        await lab.clock.advance(11)
        assert _nums(await c.ok("SEARCH YOUNGER 10")) == []
        assert _nums(await c.ok("SEARCH OLDER 10")) == [1]
