"""STORE / UID STORE: +FLAGS, -FLAGS, FLAGS, .SILENT, keywords, UNCHANGEDSINCE / MODIFIED."""

from __future__ import annotations

from imap_lab import fetches, message


def test_store_modes(imap):
    for i in range(3):
        imap.deliver(message(f"m{i}"))
    c = imap.client()
    c.ok("ENABLE IMAP4rev2")
    c.ok("SELECT INBOX")
    got = fetches(c.ok("STORE 1:2 +FLAGS (\\Flagged $Work)"))
    assert sorted(got) == [1, 2] and set(got[1]["FLAGS"]) == {"\\Flagged", "$Work"}
    got = fetches(c.ok("STORE 1 -FLAGS ($Work)"))
    assert got[1]["FLAGS"] == ["\\Flagged"]
    got = fetches(c.ok("STORE 2 FLAGS (\\Answered)"))
    assert got[2]["FLAGS"] == ["\\Answered"]
    assert fetches(c.ok("STORE 3 +FLAGS.SILENT (\\Seen)")) == {}
    got = fetches(c.ok("UID STORE 3 FLAGS.SILENT ()"))
    assert got == {}
    got = fetches(c.ok("FETCH 1:3 (FLAGS)"))
    assert got[3]["FLAGS"] == []
    got = fetches(c.ok("UID STORE 2 +FLAGS (\\Deleted)"))
    assert got[2]["UID"] == 2
    _, done = c.cmd("STORE 9 +FLAGS (\\Seen)")
    assert done.status == "BAD"
    _, done = c.cmd("STORE 1 +FLAGS (\\Recent)")
    assert done.status == "BAD"
    c.ok("STORE 3 +FLAGS ($Keep)")
    untagged = c.ok("SELECT INBOX")
    assert any(r.code == "PERMANENTFLAGS" and "$Keep" in r.code_data and "\\*" in r.code_data for r in untagged)
    assert any(r.kind == "FLAGS" and "$Keep" in r.data for r in untagged)


def test_unchangedsince(imap):
    for i in range(2):
        imap.deliver(message(f"m{i}"))
    c = imap.client()
    untagged = c.ok("SELECT INBOX (CONDSTORE)")
    hms = next(r.code_data for r in untagged if r.code == "HIGHESTMODSEQ")
    got = fetches(c.ok(f"STORE 1 (UNCHANGEDSINCE {hms}) +FLAGS (\\Seen)"))
    new = got[1]["MODSEQ"]
    assert new > hms
    untagged, done = c.cmd(f"STORE 1:2 (UNCHANGEDSINCE {hms}) +FLAGS (\\Flagged)")
    assert done.status == "OK" and done.code == "MODIFIED" and done.raw.split(b"]")[0].endswith(b"MODIFIED 1")
    got = fetches(untagged)
    assert list(got) == [2]
