"""COPY / MOVE / UID variants with COPYUID (UIDPLUS), TRYCREATE; EXPUNGE and UID EXPUNGE; CLOSE;
UNSELECT."""

from __future__ import annotations

from imap_lab import fetches, kinds, message


def _setup(imap, n=3):
    for i in range(n):
        imap.deliver(message(f"m{i}"))
    return imap.client(select="INBOX")


def test_copy_and_move(imap):
    c = _setup(imap)
    _, done = c.cmd("COPY 1:2 Archive")
    assert done.status == "OK" and done.code == "COPYUID"
    assert done.raw.split(b"]")[0].endswith(b" 1:2 1:2")
    untagged, done = c.cmd("UID MOVE 3 Trash")
    assert done.status == "OK"
    assert [r.code for r in untagged if r.kind == "OK"] == ["COPYUID"]
    assert ("EXPUNGE", 3) in kinds(untagged)
    _, done = c.cmd("COPY 1 Nope")
    assert done.status == "NO" and done.code == "TRYCREATE"
    st = next(r.data for r in c.ok("STATUS Archive (MESSAGES)") if r.kind == "STATUS")
    assert st["items"]["MESSAGES"] == 2


def test_expunge_and_uid_expunge(imap):
    c = _setup(imap, 4)
    c.ok("STORE 1:3 +FLAGS.SILENT (\\Deleted)")
    # The messages were \Recent for this session: RECENT follows each change of the count
    # (RFC 3501 7.3.2), as Dovecot sends it.
    untagged = c.ok("UID EXPUNGE 2")
    assert kinds(untagged) == [("EXPUNGE", 2), ("RECENT", 3)]
    untagged = c.ok("EXPUNGE")
    assert kinds(untagged) == [("EXPUNGE", 2), ("EXPUNGE", 1), ("RECENT", 1)]
    got = fetches(c.ok("FETCH 1:* (UID)"))
    assert [v["UID"] for v in got.values()] == [4]


def test_close_expunges_unselect_does_not(imap):
    c = _setup(imap, 2)
    c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    c.ok("UNSELECT")
    untagged = c.ok("SELECT INBOX")
    assert ("EXISTS", 2) in kinds(untagged)
    untagged = c.ok("CLOSE")
    assert untagged == []  # CLOSE expunges silently
    assert ("EXISTS", 1) in kinds(c.ok("SELECT INBOX"))
    c.ok("EXAMINE INBOX")
    _, done = c.cmd("EXPUNGE")
    assert done.status == "NO"


def test_move_and_copy_into_the_selected_mailbox_announce_the_new_message(imap):
    """RFC 6851 3.3 (imaptest's move group): MOVE to the mailbox itself expunges the message and
    shows its new copy (EXISTS) in the same response; COPY shows it at the end of the command."""
    imap.deliver(message("one"))
    c = imap.client(select="INBOX")
    got = kinds(c.ok("MOVE 1 INBOX"))
    assert ("EXPUNGE", 1) in got and ("EXISTS", 1) in got
    assert got.index(("EXPUNGE", 1)) < got.index(("EXISTS", 1))
    untagged = c.ok("COPY 1 INBOX")
    assert ("EXISTS", 2) in kinds(untagged)
