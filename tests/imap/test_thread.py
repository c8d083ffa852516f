"""THREAD=ORDEREDSUBJECT and THREAD=REFERENCES (RFC 5256)."""

from __future__ import annotations

from imap_lab import message


def _threads(untagged):
    return next(r for r in untagged if r.kind == "THREAD")


def test_references_and_orderedsubject(imap):
    imap.deliver(message("topic", msgid="<a@x>", date="Mon, 02 Nov 2026 10:00:00 +0000"))
    imap.deliver(message("Re: topic", msgid="<b@x>", extra="In-Reply-To: <a@x>\r\nReferences: <a@x>\r\n",
                         date="Mon, 02 Nov 2026 11:00:00 +0000"))
    imap.deliver(message("other", msgid="<c@x>", date="Mon, 02 Nov 2026 12:00:00 +0000"))
    imap.deliver(message("Re: topic", msgid="<d@x>", extra="References: <a@x> <b@x>\r\n",
                         date="Mon, 02 Nov 2026 13:00:00 +0000"))
    imap.deliver(message("Re: topic", msgid="<e@x>", extra="References: <a@x>\r\n",
                         date="Mon, 02 Nov 2026 14:00:00 +0000"))
    c = imap.client(select="INBOX")
    r = _threads(c.ok("THREAD REFERENCES UTF-8 ALL"))
    assert r.raw == b"* THREAD (1 (2 4)(5))(3)"
    r = _threads(c.ok("THREAD ORDEREDSUBJECT UTF-8 ALL"))
    assert r.raw == b"* THREAD (1 (2)(4)(5))(3)"  # threads in the order of their first date
    r = _threads(c.ok("UID THREAD REFERENCES UTF-8 NOT SUBJECT other"))
    assert r.raw == b"* THREAD (1 (2 4)(5))"
    _, done = c.cmd("THREAD NONSENSE UTF-8 ALL")
    assert done.status in ("NO", "BAD")
