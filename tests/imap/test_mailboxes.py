"""CREATE (CREATE-SPECIAL-USE), DELETE, RENAME (hierarchy and INBOX), SUBSCRIBE, STATUS."""

from __future__ import annotations

from imap_lab import message


def _list(c):
    return {r.data["name"] for r in c.ok('LIST "" "*"') if r.kind == "LIST"}


def test_create_delete_rename(imap):
    c = imap.client()
    c.ok("CREATE Projects/")
    _, done = c.cmd("CREATE Projects")
    assert done.status == "NO" and done.code == "ALREADYEXISTS"
    _, done = c.cmd("CREATE INBOX")
    assert done.status == "NO"
    c.ok("CREATE Projects/Alpha")
    c.ok("RENAME Projects Old")
    assert {b"Old", b"Old/Alpha"} <= _list(c) and b"Projects" not in _list(c)
    c.ok("DELETE Old/Alpha")
    c.ok("DELETE Old")
    assert b"Old" not in _list(c)
    _, done = c.cmd("DELETE INBOX")
    assert done.status == "NO"
    _, done = c.cmd("DELETE Nope")
    assert done.status == "NO" and done.code == "NONEXISTENT"
    c.ok("CREATE Stuff (USE (\\Flagged))")
    got = {r.data["name"]: r.data["attributes"] for r in c.ok('LIST "" "Stuff"') if r.kind == "LIST"}
    assert "\\Flagged" in got[b"Stuff"]
    _, done = c.cmd("CREATE Bad (USE (\\Nonsense))")
    assert done.status == "NO" and done.code == "USEATTR"


def test_rename_inbox_moves_messages(imap):
    imap.deliver(message("one"))
    c = imap.client()
    c.ok("RENAME INBOX Saved")
    st = {r.data["name"]: r.data for r in c.ok("STATUS INBOX (MESSAGES)") if r.kind == "STATUS"}
    assert next(iter(st.values()))["items"]["MESSAGES"] == 0
    st = next(r.data for r in c.ok("STATUS Saved (MESSAGES)") if r.kind == "STATUS")
    assert st["items"]["MESSAGES"] == 1


def test_status_items(imap):
    imap.deliver(message("one"))
    imap.deliver(message("two"))
    c = imap.client(select="INBOX")
    c.ok("STORE 1 +FLAGS (\\Seen \\Deleted)")
    st = next(r.data for r in c.ok("STATUS INBOX (MESSAGES UNSEEN UIDNEXT UIDVALIDITY DELETED SIZE HIGHESTMODSEQ "
                                  "APPENDLIMIT RECENT)") if r.kind == "STATUS")["items"]
    assert st["MESSAGES"] == 2 and st["UNSEEN"] == 1 and st["UIDNEXT"] == 3 and st["DELETED"] == 1
    assert st["SIZE"] > 0 and st["HIGHESTMODSEQ"] >= 1 and st["APPENDLIMIT"] == 64 * 1024 * 1024
    _, done = c.cmd("STATUS Nope (MESSAGES)")
    assert done.status == "NO"
