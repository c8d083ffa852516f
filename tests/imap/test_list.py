"""LIST (LIST-EXTENDED, LIST-STATUS, SPECIAL-USE, CHILDREN), LSUB, modified UTF-7 and UTF-8 names."""

from __future__ import annotations


def _names(untagged, kind="LIST"):
    return {r.data["name"]: r.data["attributes"] for r in untagged if r.kind == kind}


def test_list_patterns_and_attributes(imap):
    c = imap.client()
    c.ok("CREATE Work/2026/Q1")
    c.ok('CREATE "Caf&AOk-"')  # modified UTF-7 for "Café"
    got = _names(c.ok('LIST "" "*"'))
    assert set(got) >= {b"INBOX", b"Sent", b"Work", b"Work/2026", b"Work/2026/Q1", b"Caf&AOk-"}
    assert "\\HasChildren" in got[b"Work"] and "\\HasNoChildren" in got[b"Work/2026/Q1"]
    assert "\\Trash" in got[b"Trash"]
    assert set(_names(c.ok('LIST "" "%"'))) >= {b"INBOX", b"Work"} and b"Work/2026" not in _names(c.ok('LIST "" "%"'))
    assert set(_names(c.ok('LIST "Work/" "%"'))) == {b"Work/2026"}
    assert set(_names(c.ok('LIST "" "inbox"'))) == {b"INBOX"}
    untagged = c.ok('LIST "" ""')
    assert untagged[0].data["attributes"] == ["\\Noselect"] and untagged[0].data["separator"] == b"/"
    assert set(_names(c.ok('LIST (SPECIAL-USE) "" "*"'))) == {b"Sent", b"Drafts", b"Trash", b"Junk", b"Archive"}


def test_list_utf8_after_enable(imap):
    c = imap.client()
    c.ok('CREATE "Caf&AOk-"')
    c.ok("ENABLE UTF8=ACCEPT")
    got = _names(c.ok('LIST "" "Caf*"'))
    assert set(got) == {"Café".encode()}


def test_subscribed_and_lsub_and_status_return(imap):
    c = imap.client()
    c.ok("CREATE Lists/a")
    c.ok("UNSUBSCRIBE Lists")  # the store subscribes new mailboxes; keep only the child
    c.ok("SUBSCRIBE Lists/a")
    got = _names(c.ok('LIST (SUBSCRIBED) "" "Lists*"'))
    assert set(got) == {b"Lists/a"} and "\\Subscribed" in got[b"Lists/a"]
    untagged = c.ok('LIST (SUBSCRIBED RECURSIVEMATCH) "" "Lists"')
    assert [r.data["name"] for r in untagged if r.kind == "LIST"] == [b"Lists"]
    got = _names(c.ok('LSUB "" "Lists/*"'), "LSUB")
    assert set(got) == {b"Lists/a"}
    c.ok("UNSUBSCRIBE Lists/a")
    assert _names(c.ok('LSUB "" "Lists/*"'), "LSUB") == {}
    untagged = c.ok('LIST "" "INBOX" RETURN (STATUS (MESSAGES UNSEEN))')
    assert [r.kind for r in untagged] == ["LIST", "STATUS"]
