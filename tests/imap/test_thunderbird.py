# A replay of a hand-written trace (a unit test); tests/interop/test_thunderbird_real.py runs the real client.
"""Thunderbird's first connection and new-mail check, replayed byte for byte (as logged by
Thunderbird 115 with IMAP logging on): CAPABILITY, ID, ENABLE, LIST with RETURN (SPECIAL-USE
SUBSCRIBED), SELECT with CONDSTORE, UID FETCH 1:* (FLAGS), IDLE."""

from __future__ import annotations

import time

from imap_lab import fetches, message

from mailcove.proto.imap.client import Continuation, Tagged, Untagged


def test_first_connection_and_new_mail_check(imap):
    for i in range(3):
        imap.deliver(message(f"tb{i}"))
    imap.client().close()  # the user exists for the server now
    c = imap.raw()
    assert c.greeting.kind == "OK" and c.greeting.code == "CAPABILITY"
    c.ok("capability")
    c.ok(f'login "{imap.a}" "It1"')
    caps = next(r for r in c.ok("capability") if r.kind == "CAPABILITY").data
    for cap in ("IDLE", "CONDSTORE", "SPECIAL-USE", "LIST-EXTENDED", "UIDPLUS", "MOVE", "ENABLE", "ID"):
        assert cap in caps
    ids = c.ok('ID ("name" "Thunderbird" "version" "115.3.1")')
    assert ids[0].kind == "ID"
    enabled = c.ok("ENABLE UTF8=ACCEPT CONDSTORE")
    assert enabled[0].kind == "ENABLED"
    lists = c.ok('list (subscribed) "" "*" return (special-use)')
    assert all(r.kind == "LIST" for r in lists)
    lists = c.ok('LIST "" "*" RETURN (SPECIAL-USE SUBSCRIBED)')
    by_name = {r.data["name"]: r.data["attributes"] for r in lists}
    assert "\\Sent" in by_name[b"Sent"] and "\\Subscribed" in by_name[b"INBOX"]
    untagged = c.ok("select \"INBOX\" (CONDSTORE)")
    codes = {r.code: r.code_data for r in untagged if r.kind == "OK"}
    assert codes["HIGHESTMODSEQ"] >= 1
    got = fetches(c.ok("UID fetch 1:* (FLAGS)"))
    assert sorted(v["UID"] for v in got.values()) == [1, 2, 3]
    assert all("MODSEQ" in v for v in got.values())  # CONDSTORE is enabled
    c.send(b"t99 IDLE\r\n")
    assert isinstance(c.read_one(), Continuation)
    imap.deliver(message("new one"))
    deadline = time.monotonic() + 1.5
    seen: list = []
    while time.monotonic() < deadline and not any(r.kind == "EXISTS" for r in seen):
        seen += c.poll(0.1)
    assert any(isinstance(r, Untagged) and r.kind == "EXISTS" and r.number == 4 for r in seen)
    c.send(b"DONE\r\n")
    r = c.read_one()
    assert isinstance(r, Tagged) and r.tag == "t99" and r.status == "OK"
    # new-mail check: fetch the new message's flags and headers by UID
    got = fetches(c.ok("UID fetch 4:* (FLAGS)"))
    assert [v["UID"] for v in got.values()] == [4]
    got = fetches(c.ok("UID fetch 4 (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To Cc Bcc Subject Date "
                       "Message-ID Priority X-Priority References Newsgroups In-Reply-To Content-Type Reply-To)])"))
    assert b"Subject: new one" in next(iter(got.values()))["BODY[HEADER.FIELDS (From To Cc Bcc Subject Date "
                                                            "Message-ID Priority X-Priority References Newsgroups "
                                                            "In-Reply-To Content-Type Reply-To)]"]
    c.send(b"t100 LOGOUT\r\n")
    assert c.read_one().kind == "BYE"
