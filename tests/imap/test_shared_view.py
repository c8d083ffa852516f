"""The shared mailbox view across sessions (issue 12's defects 2-7): a mailbox is its id and
UIDVALIDITY, never its name; a message another session expunged is answered from what is left,
never with NO; MODSEQ is never 0 and never goes back; a keyword is announced in FLAGS before any
FETCH shows it; \\Recent keeps its IMAP4rev1 meaning."""

from __future__ import annotations

import time

from imap_lab import fetches, kinds, message

from mailcove.proto.imap.client import Untagged


def _status(c, box: str, items: str) -> dict[str, int]:
    untagged = c.ok(f"STATUS {box} ({items})")
    return next(r.data for r in untagged if r.kind == "STATUS")["items"]


def _append(c, box: str, n: int) -> None:
    for i in range(n):
        msg = message(f"m{i}")
        c.ok(b"APPEND " + box.encode() + b" {%d+}\r\n" % len(msg) + msg)


def test_delete_and_create_again_is_a_new_empty_mailbox_for_every_session(imap):
    a = imap.client()
    b = imap.client()
    a.ok("CREATE imaptest")
    b.ok("SELECT imaptest")
    _append(a, "imaptest", 5)
    a.ok("DELETE imaptest")
    a.ok("CREATE imaptest")
    st = _status(a, "imaptest", "MESSAGES UIDNEXT RECENT")
    assert (st["MESSAGES"], st["UIDNEXT"], st["RECENT"]) == (0, 1, 0)
    # The session that had the old mailbox selected is told it is gone (as Dovecot does) ...
    untagged = b.poll(2.0)
    if not any(isinstance(r, Untagged) and r.kind == "BYE" for r in untagged):
        b.send(b"t9 NOOP\r\n")
        untagged += b.poll(2.0)
    assert any(isinstance(r, Untagged) and r.kind == "BYE" for r in untagged), untagged
    # ... and a fresh SELECT sees the new, empty mailbox.
    c = imap.client()
    assert ("EXISTS", 0) in kinds(c.ok("SELECT imaptest"))


def test_a_lingering_cache_never_answers_for_a_new_mailbox_of_the_same_name(imap):
    a = imap.client()
    a.ok("CREATE box")
    _append(a, "box", 3)
    a.ok("SELECT box")
    a.ok("UNSELECT")  # the cache lingers, kept current, after the last session left it
    a.ok("DELETE box")
    a.ok("CREATE box")
    st = _status(a, "box", "MESSAGES UIDNEXT")
    assert (st["MESSAGES"], st["UIDNEXT"]) == (0, 1)
    assert ("EXISTS", 0) in kinds(a.ok("SELECT box"))


def test_deleting_the_selected_mailbox_leaves_it_and_the_session_goes_on(imap):
    a = imap.client()
    a.ok("CREATE gone")
    a.ok("SELECT gone")
    a.ok("DELETE gone")
    a.ok("CREATE gone")
    assert ("EXISTS", 0) in kinds(a.ok("SELECT gone"))


def test_fetch_of_a_message_expunged_elsewhere_is_ok_expungeissued_never_no(imap):
    for i in range(3):
        imap.deliver(message(f"m{i}"))
    a = imap.client(select="INBOX")
    b = imap.client(select="INBOX")
    b.ok("ENABLE CONDSTORE")
    b.ok("STORE 2 +FLAGS.SILENT (\\Flagged)")
    a.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    # b hears of the \Deleted before the expunge: at once in this process, within one poll of
    # the change log from another worker's (whose two changes would otherwise arrive together,
    # and the flags be read after the message is gone).
    time.sleep(0.3)
    a.ok("EXPUNGE")
    time.sleep(0.3)
    # The body is gone: what can be read is sent, the rest skipped, and the command is OK.
    untagged, done = b.cmd("FETCH 1:3 (UID BODY.PEEK[])")
    assert done.status == "OK" and done.code == "EXPUNGEISSUED", done
    got = fetches(untagged)
    assert sorted(got) == [1, 3] and all(v["BODY[]"] for v in got.values())
    # Flags and modseq are still known, and the modseq is a real one (never 0).
    got = fetches(b.ok("FETCH 2 (FLAGS MODSEQ)"))
    assert "\\Deleted" in got[2]["FLAGS"] and got[2]["MODSEQ"] > 0
    # UID FETCH of a UID that does not exist: OK with no data (RFC 9051 6.4.9).
    untagged, done = b.cmd("UID FETCH 999 (FLAGS)")
    assert done.status == "OK" and not fetches(untagged)


def test_a_new_keyword_is_announced_in_flags_before_it_is_used(imap):
    imap.deliver(message("one"))
    a = imap.client(select="INBOX")
    b = imap.client(select="INBOX")
    a.ok("STORE 1 +FLAGS.SILENT ($hello)")
    time.sleep(0.3)
    untagged = b.ok("NOOP")
    pos_flags = next(i for i, r in enumerate(untagged) if r.kind == "FLAGS")
    pos_fetch = next(i for i, r in enumerate(untagged) if r.kind == "FETCH")
    assert pos_flags < pos_fetch
    assert "$hello" in untagged[pos_flags].data and "$hello" in untagged[pos_fetch].data["FLAGS"]
    # The session's own STORE of a new keyword announces it too, before the FETCH.
    untagged = a.ok("STORE 1 +FLAGS ($world)")
    assert [r.kind for r in untagged][:1] == ["FLAGS"] and "$world" in untagged[0].data


def test_recent_counts_after_append_and_goes_to_one_session(imap):
    a = imap.client()
    a.ok("CREATE r")
    _append(a, "r", 2)
    assert _status(a, "r", "RECENT MESSAGES") == {"RECENT": 2, "MESSAGES": 2}
    assert ("RECENT", 2) in kinds(a.ok("EXAMINE r"))  # EXAMINE does not take \Recent away
    b = imap.client()
    assert ("RECENT", 2) in kinds(b.ok("SELECT r"))
    got = fetches(b.ok("FETCH 1:2 (FLAGS)"))
    assert all("\\Recent" in v["FLAGS"] for v in got.values())
    c = imap.client()
    assert ("RECENT", 0) in kinds(c.ok("SELECT r"))
    assert _status(c, "r", "RECENT")["RECENT"] == 0


def test_noop_right_after_another_sessions_copy_shows_the_new_messages(imap):
    """imaptest's copy group: what another session of this process committed before our command
    ended is announced by that command, not whenever the change pump next runs."""
    imap.deliver(message("one"))
    a = imap.client(select="INBOX")
    a.ok("CREATE box2")
    b = imap.client(select="box2")
    for i in range(1, 16):
        a.ok("COPY 1 box2")
        assert ("EXISTS", i) in kinds(b.ok("NOOP")), i


def test_copy_of_a_message_expunged_elsewhere_copies_nothing(imap):
    """RFC 2180 4.4.1, as Dovecot: NO [EXPUNGEISSUED] and no partial copy."""
    for i in range(2):
        imap.deliver(message(f"m{i}"))
    a = imap.client(select="INBOX")
    b = imap.client(select="INBOX")
    a.ok("CREATE dest")
    a.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    a.ok("EXPUNGE")
    time.sleep(0.3)
    _, done = b.cmd("COPY 1:2 dest")
    assert (done.status, done.code) == ("NO", "EXPUNGEISSUED")
    assert _status(b, "dest", "MESSAGES")["MESSAGES"] == 0


def test_status_of_the_selected_mailbox_counts_this_sessions_recent(imap):
    imap.deliver(message("one"))
    c = imap.client(select="INBOX")
    assert _status(c, "INBOX", "RECENT")["RECENT"] == 1  # Dovecot: the session's own \Recent
