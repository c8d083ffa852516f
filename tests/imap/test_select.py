"""SELECT / EXAMINE: the exact untagged set, CONDSTORE, QRESYNC, rev1 \\Recent."""

from __future__ import annotations

from imap_lab import fetches, kinds, message


def test_select_reports_state_in_order(imap):
    imap.deliver(message("one"))
    imap.deliver(message("two"))
    c = imap.client()
    untagged, done = c.cmd("SELECT INBOX")
    assert done.status == "OK" and done.code == "READ-WRITE"
    assert kinds(untagged)[:3] == [("FLAGS", None), ("OK", None), ("EXISTS", 2)]
    codes = {r.code: r.code_data for r in untagged if r.kind == "OK"}
    assert "PERMANENTFLAGS" in codes and "UIDVALIDITY" in codes
    assert codes["UIDNEXT"] == 3
    # rev1: both messages are \Recent for the first session that selects the mailbox
    assert ("RECENT", 2) in kinds(untagged)
    assert codes["UNSEEN"] == 1


def test_examine_is_read_only_and_does_not_claim_recent(imap):
    imap.deliver(message("one"))
    c = imap.client()
    untagged, done = c.cmd("EXAMINE INBOX")
    assert done.code == "READ-ONLY"
    # EXAMINE shows \Recent (as Dovecot does) but must not take it away (RFC 3501 6.3.2)
    assert ("RECENT", 1) in kinds(untagged)
    assert ("RECENT", 1) in kinds(imap.client().ok("SELECT INBOX"))
    _, done = c.cmd("STORE 1 +FLAGS (\\Seen)")
    assert done.status == "NO"
    # BODY[] in EXAMINE does not set \Seen
    got = fetches(c.ok("FETCH 1 (BODY[] FLAGS)"))
    assert "\\Seen" not in got[1]["FLAGS"]


def test_recent_goes_to_one_session_only(imap):
    imap.deliver(message("one"))
    a = imap.client(select="INBOX")
    b = imap.client()
    untagged = b.ok("SELECT INBOX")
    assert ("RECENT", 0) in kinds(untagged)
    got = fetches(a.ok("FETCH 1 (FLAGS)"))
    assert "\\Recent" in got[1]["FLAGS"]


def test_rev2_has_no_recent(imap):
    imap.deliver(message("one"))
    c = imap.client()
    c.ok("ENABLE IMAP4rev2")
    untagged = c.ok("SELECT INBOX")
    assert not any(k == "RECENT" for k, _ in kinds(untagged))
    got = fetches(c.ok("FETCH 1 (FLAGS)"))
    assert "\\Recent" not in got[1]["FLAGS"]


def test_select_missing_and_condstore(imap):
    c = imap.client()
    _, done = c.cmd("SELECT Nope")
    assert done.status == "NO" and done.code == "NONEXISTENT"
    imap.deliver(message("one"))
    untagged = c.ok("SELECT INBOX (CONDSTORE)")
    codes = {r.code: r.code_data for r in untagged if r.kind == "OK"}
    assert codes["HIGHESTMODSEQ"] >= 1
    got = fetches(c.ok("FETCH 1 (FLAGS)"))
    assert "MODSEQ" in got[1]


def test_qresync_reports_vanished_and_changes(imap):
    for i in range(4):
        imap.deliver(message(f"m{i}"))
    c = imap.client()
    c.ok("ENABLE QRESYNC")
    untagged = c.ok("SELECT INBOX")
    codes = {r.code: r.code_data for r in untagged if r.kind == "OK"}
    validity, hms = codes["UIDVALIDITY"], codes["HIGHESTMODSEQ"]
    c.ok("STORE 2 +FLAGS (\\Deleted)")
    c.ok("EXPUNGE")
    c.ok("STORE 1 +FLAGS (\\Flagged)")
    c.ok("UNSELECT")
    untagged = c.ok(f"SELECT INBOX (QRESYNC ({validity} {hms} 1:4))")
    vanished = [r for r in untagged if r.kind == "VANISHED"]
    assert len(vanished) == 1 and b"2" in vanished[0].raw
    got = fetches(untagged)
    assert list(got) == [1] and "\\Flagged" in got[1]["FLAGS"]
