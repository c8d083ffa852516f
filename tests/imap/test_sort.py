"""SORT / UID SORT (RFC 5256), SORT=DISPLAY (RFC 5957), ESORT (RFC 5267)."""

from __future__ import annotations

from imap_lab import message


def _setup(imap):
    imap.deliver(message("b subject", "x" * 300, sender="zed@example.com", date="Mon, 02 Nov 2026 10:00:00 +0000"))
    imap.deliver(message("Re: a subject", "x", sender="amy@example.com", date="Sun, 01 Nov 2026 10:00:00 +0000"))
    imap.deliver(message("c subject", "x" * 100, sender="bob@example.com",
                         date="Tue, 03 Nov 2026 10:00:00 +0000"))
    return imap.client(select="INBOX")


def test_sort_keys(imap):
    c = _setup(imap)
    cases = {
        "(DATE)": [2, 1, 3], "(REVERSE DATE)": [3, 1, 2], "(SUBJECT)": [2, 1, 3], "(FROM)": [2, 3, 1],
        "(SIZE)": [2, 3, 1], "(ARRIVAL)": [1, 2, 3], "(REVERSE ARRIVAL)": [3, 2, 1], "(TO SUBJECT)": [2, 1, 3],
    }
    for crit, want in cases.items():
        untagged = c.ok(f"SORT {crit} UTF-8 ALL")
        got = next(r for r in untagged if r.kind == "SORT")
        assert got.data == want, crit


def test_display_sort(imap):
    for name in ("Zoe <a@x.example>", "=?utf-8?q?=C3=89mile?= <b@x.example>", "c@x.example"):
        imap.deliver(f"From: {name}\r\nSubject: s\r\n\r\nx\r\n".encode())
    c = imap.client(select="INBOX")
    got = next(r for r in c.ok("SORT (DISPLAYFROM) UTF-8 ALL") if r.kind == "SORT")
    # "c@x.example" (no display name: the address), "Zoe", then "Émile" (UTF-8 bytes sort after ASCII)
    assert got.data == [3, 1, 2]


def test_uid_sort_and_esort(imap):
    c = _setup(imap)
    untagged = c.ok("UID SORT (REVERSE SIZE) UTF-8 ALL")
    assert next(r for r in untagged if r.kind == "SORT").data == [1, 3, 2]
    untagged = c.ok("SORT RETURN (MIN MAX COUNT) (DATE) UTF-8 ALL")
    es = next(r.data for r in untagged if r.kind == "ESEARCH")
    assert (es["MIN"], es["MAX"], es["COUNT"]) == (1, 3, 3)
