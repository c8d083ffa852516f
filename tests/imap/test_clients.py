"""imaplib and imapclient, the Python clients people use, drive every command against the real
server; what they get back is also checked with the strict parser (imapclient's own parser
would fail on a grammar error too)."""

from __future__ import annotations

import imaplib

import imapclient
from imap_lab import PASSWORD, message

from mailcove.proto.imap.client import parse_responses


def test_imapclient_every_command(imap):
    imap.deliver(message("first", "alpha beta"))
    imap.deliver(message("second", "gamma", extra="In-Reply-To: <first@example.com>\r\n"
                                                  "References: <first@example.com>\r\n"))
    imap.client().close()
    host, port = imap.host_port
    c = imapclient.IMAPClient(host, port=port, ssl=False, timeout=10)
    assert b"IDLE" in c.capabilities()
    c.login(imap.a, PASSWORD)
    assert c.id_({"name": "pytest"})[0][:2] == (b"name", b"mailcove")
    c.enable("CONDSTORE")
    ns = c.namespace()
    assert ns.personal[0][1] == "/"
    assert {f[2] for f in c.list_folders()} >= {"INBOX", "Sent", "Trash"}
    c.create_folder("Work")
    c.subscribe_folder("Work")
    assert "Work" in {f[2] for f in c.list_sub_folders()}
    c.rename_folder("Work", "Jobs")
    assert c.folder_status("Jobs", ["MESSAGES"])[b"MESSAGES"] == 0
    info = c.select_folder("INBOX")
    assert info[b"EXISTS"] == 2
    assert c.search(["TEXT", "gamma"]) == [2]
    assert c.sort(["REVERSE", "ARRIVAL"]) == [2, 1]
    assert c.thread("REFERENCES") == ((1, 2),)
    got = c.fetch([1, 2], ["FLAGS", "ENVELOPE", "BODYSTRUCTURE", "BODY.PEEK[]", "RFC822.SIZE", "INTERNALDATE"])
    assert got[1][b"ENVELOPE"].subject == b"first" and got[2][b"BODY[]"].startswith(b"From:")
    c.add_flags([1], [imapclient.FLAGGED])
    assert imapclient.FLAGGED in c.get_flags([1])[1]
    c.remove_flags([1], [imapclient.FLAGGED])
    c.set_flags([2], ["$Label1"])
    c.copy([1], "Jobs")
    c.move([2], "Archive")
    c.append("INBOX", message("appended"), flags=[imapclient.SEEN])
    c.add_flags([1], [imapclient.DELETED])
    c.uid_expunge([1]) if c.has_capability("UIDPLUS") else c.expunge()
    assert c.search() == [3]  # imapclient works in UIDs: the appended message
    c.idle()
    imap.deliver(message("while idling"))
    responses = c.idle_check(timeout=3)
    c.idle_done()
    assert any(r[1] == b"EXISTS" for r in responses)
    assert c.get_quota_root("INBOX")[0].mailbox == "INBOX"
    c.noop()
    c.unselect_folder()
    c.select_folder("INBOX", readonly=True)
    c.close_folder()
    c.delete_folder("Jobs")
    c.logout()


def test_imaplib_every_command(imap):
    imap.deliver(message("one", "hello world"))
    m = imap.imaplib()
    assert m.capability()[0] == "OK"
    assert m.noop()[0] == "OK"
    assert m.namespace()[0] == "OK"
    assert m.create("Box")[0] == "OK"
    assert m.subscribe("Box")[0] == "OK"
    assert m.lsub('""', "Box")[1][0].endswith(b"Box")
    assert m.unsubscribe("Box")[0] == "OK"
    assert m.rename("Box", "Box2")[0] == "OK"
    assert m.status("INBOX", "(MESSAGES UNSEEN)")[0] == "OK"
    assert m.append("INBOX", "(\\Seen)", imaplib.Time2Internaldate(1_700_000_000), message("two"))[0] == "OK"
    typ, data = m.select("INBOX")
    assert typ == "OK" and data == [b"2"]
    assert m.search(None, "SUBJECT", "two")[1] == [b"2"]
    assert m.uid("SEARCH", "ALL")[1] == [b"1 2"]
    typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert data[0][1] == b"Subject: one\r\n\r\n"
    assert m.store("1", "+FLAGS", "(\\Deleted)")[0] == "OK"
    assert m.copy("2", "Box2")[0] == "OK"
    assert m.uid("MOVE", "2", "Box2")[0] == "OK"
    assert m.expunge()[1] == [b"2", b"1"]  # imaplib also collected the EXPUNGE of the MOVE
    assert m.check()[0] == "OK"
    assert m.sort("(SUBJECT)", "UTF-8", "ALL")[0] == "OK"
    assert m.thread("ORDEREDSUBJECT", "UTF-8", "ALL")[0] == "OK"
    assert m.getquotaroot("INBOX")[0] == "OK"
    assert m.close()[0] == "OK"
    assert m.delete("Box2")[0] == "OK"
    assert m.logout()[0] == "BYE"


def test_imaplib_wire_is_grammatical(imap):
    """Record everything imaplib received in a session and parse it strictly."""
    imap.deliver(message("one", "hello world"))
    m = imap.imaplib()
    received: list[bytes] = []
    real_readline, real_read = m.readline, m.read

    def readline() -> bytes:
        line = real_readline()
        received.append(line)
        return line

    def read(n: int) -> bytes:
        data = real_read(n)
        received.append(data)
        return data

    m.readline, m.read = readline, read  # type: ignore[method-assign]
    m.select("INBOX")
    m.fetch("1", "(FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY[])")
    m.list()
    m.status("INBOX", "(MESSAGES UIDNEXT)")
    m.search(None, "ALL")
    m.logout()
    parse_responses(b"".join(received))
