"""SEARCH / SORT / THREAD / ESEARCH / ESORT conformance (issue 12): each test pins one rule the
RFCs give (and Dovecot's imaptest checks) on the wire of a real server; the comments in each
test say which."""

from __future__ import annotations

import socket

from imap_lab import PASSWORD


def _msg(headers: str, body: str = "body") -> bytes:
    return (headers.replace("\n", "\r\n") + "\r\n" + body + "\r\n").encode()


def _nums(untagged):
    return next(r.data for r in untagged if r.kind == "SEARCH")["numbers"]


def _sort(untagged):
    return next(r.data for r in untagged if r.kind == "SORT")


def _es(untagged):
    return next(r.data for r in untagged if r.kind == "ESEARCH")


def test_address_keys_match_the_normal_form(imap):
    imap.deliver(_msg("From: user-from@domain.org\nTo: group: g1@domain.org, g2@domain.org;\nSubject: 1\n"))
    imap.deliver(_msg("From: <user-from (comment)@ (comment) domain.org>\nSubject: 2\n"))
    imap.deliver(_msg("From: user-from@domain.org (RealFrom)\nSubject: 3\n"))
    imap.deliver(_msg("From: =?utf-8?q?R=C3=A9al?= <other@domain.org>\nSubject: 4\n"))
    c = imap.client(select="INBOX")
    # The comments inside message 2's address are not part of it.
    assert _nums(c.ok("SEARCH FROM user-from@domain.org")) == [1, 2, 3]
    # A name written as a trailing comment is the name.
    assert _nums(c.ok("SEARCH FROM realfrom")) == [3]
    assert _nums(c.ok("SEARCH FROM comment")) == []
    # HEADER matches the field as written.
    assert _nums(c.ok('SEARCH HEADER FROM "(comment)"')) == [2]
    # Names are RFC 2047-decoded; groups keep their name and members.
    untagged, done = c.cmd(b"SEARCH CHARSET UTF-8 FROM {7+}\r\n" + "réal <".encode())
    assert done.status == "OK" and _nums(untagged) == [4]
    assert _nums(c.ok("SEARCH TO group")) == [1]
    assert _nums(c.ok("SEARCH TO g2@domain")) == [1]


def test_sent_date_keys_use_the_headers_own_zone(imap):
    for date in ("Sat, 24 Mar 2007 23:00:00 +0200", "Sun, 25 Mar 2007 00:00:00 +0200",
                 "Sun, 25 Mar 2007 23:00:00 +0300", "Mon, 26 Mar 2007 00:00:00 +0300"):
        imap.deliver(_msg(f"From: a@b.example\nDate: {date}\nSubject: d\n"))
    c = imap.client(select="INBOX")
    # Messages 2 and 3 are on 24 and 25 March in UTC, 4 on 25 March: the header's day counts.
    assert _nums(c.ok("SEARCH SENTON 25-Mar-2007")) == [2, 3]
    assert _nums(c.ok("SEARCH SENTBEFORE 25-Mar-2007")) == [1]
    assert _nums(c.ok("SEARCH SENTSINCE 26-Mar-2007")) == [4]
    assert _nums(c.ok("SEARCH NOT SENTON 25-Mar-2007")) == [1, 4]


def test_sort_address_keys_take_a_group_name(imap):
    imap.deliver(_msg("From: user2@domain2.org\nTo: foo bar <user2@domain2.org>\nCc: user2@domain2.org (foo bar)\n"))
    imap.deliver(_msg("From: user2@domain1.org\nTo: user2@domain1.org\nCc: user2: blah@domain1.org;\n"))
    imap.deliver(_msg("From: user1@domain1.org\nTo: user1@domain1.org\nCc: user1@domain1.org\n"))
    c = imap.client(select="INBOX")
    # Message 2's first Cc address is the group "user2" (not its member "blah"): ties keep
    # mailbox order.
    assert _sort(c.ok("SORT (CC) US-ASCII ALL")) == [3, 1, 2]
    assert _sort(c.ok("SORT (REVERSE CC) US-ASCII ALL")) == [1, 2, 3]
    assert _sort(c.ok("SORT (CC REVERSE ARRIVAL) US-ASCII ALL")) == [3, 2, 1]


def test_sort_display_takes_a_group_name(imap):
    for to in ("foo bar <a@b.c>", "b@c.d", "a: xx@xx.org, yy@yy.org;", "z: aa@aa.org;", "empty:;"):
        imap.deliver(_msg(f"From: x@y.example\nTo: {to}\n"))
    c = imap.client(select="INBOX")
    # "a", "b@c.d", "empty", "foo bar", "z"
    assert _sort(c.ok("SORT (DISPLAYTO) US-ASCII ALL")) == [3, 2, 5, 1, 4]
    assert _sort(c.ok("SORT (REVERSE DISPLAYTO) US-ASCII ALL")) == [4, 1, 5, 2, 3]


def test_thread_references_own_parent_replaces_a_guess(imap):
    imap.deliver(_msg("Message-ID: <a@b>\nDate: Fri, 22 Feb 2008 17:06:23 +0000\n"))
    imap.deliver(_msg("Message-ID: <b@b>\nReferences: <a@b> <c@b>\nDate: Fri, 22 Feb 2008 15:06:23 +0000\n"))
    imap.deliver(_msg("Message-ID: <c@b>\nReferences: <b@b>\nDate: Fri, 22 Feb 2008 16:06:25 +0000\n"))
    c = imap.client(select="INBOX")
    # Message 2 guessed a -> c -> b. Message 3 (c) names b as its parent: the guess a -> c is
    # broken, and b -> c is not made because b is c's child (a loop).
    r = next(r for r in c.ok("THREAD REFERENCES US-ASCII ALL") if r.kind == "THREAD")
    assert r.raw == b"* THREAD (3 2)(1)"
    c.ok("STORE 1 +FLAGS (\\Deleted)")
    c.ok("EXPUNGE")
    r = next(r for r in c.ok("THREAD REFERENCES US-ASCII ALL") if r.kind == "THREAD")
    assert r.raw == b"* THREAD (2 1)"


def test_thread_references_loops_are_refused(imap):
    # Each message's References put the other above it: no loop, no crash, every message once.
    imap.deliver(_msg("Message-ID: <x@l>\nReferences: <y@l>\nDate: Fri, 22 Feb 2008 10:00:00 +0000\n"))
    imap.deliver(_msg("Message-ID: <y@l>\nReferences: <x@l>\nDate: Fri, 22 Feb 2008 11:00:00 +0000\n"))
    imap.deliver(_msg("Message-ID: <z@l>\nReferences: <z@l> <x@l> <y@l> <x@l>\n"
                      "Date: Fri, 22 Feb 2008 12:00:00 +0000\n"))
    c = imap.client(select="INBOX")
    r = next(r for r in c.ok("THREAD REFERENCES US-ASCII ALL") if r.kind == "THREAD")
    ids = [int(t) for t in r.raw[len(b"* THREAD "):].replace(b"(", b" ").replace(b")", b" ").split()]
    assert sorted(ids) == [1, 2, 3]


def _store_seen(c, seq: int) -> int:
    untagged = c.ok(f"STORE {seq} +FLAGS (\\Seen)")
    return next(r.data for r in untagged if r.kind == "FETCH")["MODSEQ"]


def test_esearch_modseq_is_that_of_what_is_returned(imap):
    for i in range(4):
        imap.deliver(_msg(f"From: a@b.example\nSubject: m{i}\n"))
    c = imap.client()
    c.ok("SELECT INBOX (CONDSTORE)")
    m1 = _store_seen(c, 1)
    m3 = _store_seen(c, 3)
    m2 = _store_seen(c, 2)
    assert m1 < m3 < m2
    es = _es(c.ok("SEARCH RETURN (MIN) 1:3 MODSEQ 1"))
    assert (es["MIN"], es["MODSEQ"]) == (1, m1)
    es = _es(c.ok("SEARCH RETURN (MAX) 1:3 MODSEQ 1"))
    assert (es["MAX"], es["MODSEQ"]) == (3, m3)
    es = _es(c.ok("SEARCH RETURN (MIN MAX) 2:3 MODSEQ 1"))
    assert es["MODSEQ"] == m2
    es = _es(c.ok("SEARCH RETURN (COUNT) 1:3 MODSEQ 1"))
    assert (es["COUNT"], es["MODSEQ"]) == (3, m2)
    es = _es(c.ok("SEARCH RETURN () 1:3 MODSEQ 1"))
    assert (es["ALL"], es["MODSEQ"]) == ("1:3", m2)
    es = _es(c.ok(f"SEARCH RETURN (ALL) 2:3 MODSEQ {m2 + 1}"))
    assert "ALL" not in es and "MODSEQ" not in es


def test_searchres_with_min_max_saves_only_those(imap):
    for i in range(4):
        imap.deliver(_msg(f"From: a@b.example\nSubject: m{i}\n"))
    c = imap.client(select="INBOX")
    assert _es(c.ok("SEARCH RETURN (MIN SAVE) 2:4"))["MIN"] == 2
    assert _nums(c.ok("SEARCH $")) == [2]
    c.ok("SEARCH RETURN (MIN MAX SAVE) 2:4")
    assert _nums(c.ok("SEARCH $")) == [2, 4]
    c.ok("SEARCH RETURN (COUNT SAVE) 2:4")
    assert _nums(c.ok("SEARCH $")) == [2, 3, 4]


def test_esort_all_keeps_the_sort_order(imap):
    for i in range(5):
        imap.deliver(_msg(f"From: a@b.example\nSubject: m{i}\n"))
    c = imap.client(select="INBOX")
    assert _es(c.ok("SORT RETURN (ALL) (ARRIVAL) US-ASCII 1:5"))["ALL"] == "1:5"
    assert _es(c.ok("SORT RETURN (ALL) (REVERSE ARRIVAL) US-ASCII 1:5"))["ALL"] == "5,4,3,2,1"
    es = _es(c.ok("SORT RETURN (MIN MAX COUNT) (REVERSE ARRIVAL) US-ASCII 2:4"))
    assert (es["MIN"], es["MAX"], es["COUNT"]) == (2, 4, 3)
    assert "ALL" not in _es(c.ok("SORT RETURN (ALL) (ARRIVAL) US-ASCII SUBJECT nothing"))


def _raw_lines(imap, *commands: str) -> list[bytes]:
    """Every line the server sends for `commands` (a raw socket: the test client's parser does
    not know every CONDSTORE form)."""
    host, port = imap.host_port
    with socket.create_connection((host, port), timeout=10) as sock:
        f = sock.makefile("rb")
        f.readline()
        out: list[bytes] = []
        for i, cmd in enumerate((f'LOGIN "{imap.a}" "{PASSWORD}"', *commands)):
            tag = f"r{i}".encode()
            sock.sendall(tag + b" " + cmd.encode() + b"\r\n")
            while True:
                line = f.readline()
                assert line, "connection closed"
                out.append(line)
                if line.startswith(tag + b" "):
                    assert line.split()[1] == b"OK", line
                    break
        return out


def test_first_modseq_search_announces_highestmodseq_and_sort_carries_modseq(imap):
    imap.deliver(_msg("From: a@b.example\nSubject: s\n"))
    imap.deliver(_msg("From: a@b.example\nSubject: t\n"))
    imap.client().close()  # the new user can log in
    lines = _raw_lines(imap, "SELECT INBOX", "SEARCH MODSEQ 1", "SEARCH MODSEQ 1", "SORT (SUBJECT) UTF-8 MODSEQ 1")
    announced = [ln for ln in lines if ln.startswith(b"* OK [HIGHESTMODSEQ ")]
    assert len(announced) == 1, lines  # once: the first CONDSTORE-enabling command only
    assert any(ln.startswith(b"* SEARCH 1 2 (MODSEQ ") for ln in lines), lines
    assert any(ln.startswith(b"* SORT 1 2 (MODSEQ ") for ln in lines), lines


def test_thread_of_a_deep_reference_chain(imap):
    # One message naming 3,000 ancestors makes a chain of 3,000 containers: the tree walks must
    # not recurse (Python's limit is 1,000 frames); the dummies are pruned away.
    refs = "\r\n ".join(f"<r{i}@deep.example>" for i in range(3000))
    imap.deliver(_msg(f"Message-ID: <leaf@deep.example>\nSubject: deep\nReferences: {refs}\n"))
    imap.deliver(_msg("Message-ID: <r2999@deep.example>\nSubject: deep\n"))
    c = imap.client(select="INBOX")
    r = next(r for r in c.ok("THREAD REFERENCES US-ASCII ALL") if r.kind == "THREAD")
    assert r.raw == b"* THREAD (2 1)"
    r = next(r for r in c.ok("UID THREAD REFERENCES US-ASCII ALL") if r.kind == "THREAD")
    assert r.raw == b"* THREAD (2 1)"


def test_address_and_sent_keys_after_other_header_searches(imap):
    # The first search over the mailbox caches what SUBJECT compares; FROM and SENTON compare
    # forms computed only when first asked for, from the same cache.
    imap.deliver(_msg("From: <user-from (comment)@ (comment) domain.org>\nSubject: one\n"
                      "Date: Sun, 25 Mar 2007 00:00:00 +0200\n"))
    imap.deliver(_msg("From: other@domain.org\nSubject: two\nDate: Sun, 25 Mar 2007 12:00:00 +0000\n"))
    c = imap.client(select="INBOX")
    assert _nums(c.ok("SEARCH SUBJECT one")) == [1]
    assert _nums(c.ok("SEARCH FROM user-from@domain.org")) == [1]
    d = imap.client(select="INBOX")
    assert _nums(d.ok("SEARCH SENTON 25-Mar-2007")) == [1, 2]
    assert _nums(d.ok("SEARCH OR FROM other SENTBEFORE 25-Mar-2007")) == [2]


def test_search_key_count_is_bounded(imap):
    imap.deliver(_msg("From: a@b.example\nSubject: s\n"))
    c = imap.client(select="INBOX")
    _, done = c.cmd("SEARCH " + " ".join(["SEEN"] * 1001))
    assert (done.status, done.code) == ("BAD", "LIMIT")
    # 1,000 keys are fine, and repeats are evaluated once.
    assert _nums(c.ok("SEARCH " + " ".join(["UNSEEN"] * 1000))) == [1]
    untagged, done = c.cmd("SORT (" + " ".join(["SIZE"] * 3000) + ") US-ASCII ALL")
    assert done.status == "OK" and _sort(untagged) == [1]
    _, done = c.cmd("NOOP")
    assert done.status == "OK"


def test_repeated_keys_cost_nothing():
    # A sort key repeated (in either direction) decides nothing new: sorted once, not 5,000 times.
    import asyncio
    import time

    from mailcove.core import cooperative
    from mailcove.imap.search import simplify
    from mailcove.imap.sort import distinct_keys, key_values, order_steps
    from mailcove.message import scan
    from mailcove.proto.imap.commands.search import All, And, Flag, Not
    from mailcove.store.api import MessageMeta

    items = []
    for i in range(2000):
        raw = b"Subject: s\r\n\r\n" + b"x" * (i * 7919 % 2000)
        items.append((i + 1, MessageMeta(uid=i + 1, flags=frozenset(), modseq=1, internaldate=float(i),
                                         size=len(raw), info=scan(raw))))

    def sort_messages(items, criteria):  # as imap/ops/sort.py runs it, without the session
        keys = distinct_keys(criteria)
        return asyncio.run(cooperative.drive(order_steps([(seq, key_values(m, keys)) for seq, m in items], keys)))

    want = sort_messages(items, [("SIZE", False)])
    t0 = time.perf_counter()
    got = sort_messages(items, [("SIZE", False), ("SIZE", True)] * 2500)
    assert got == want and time.perf_counter() - t0 < 1.0
    assert sort_messages(items, [("SIZE", True), ("SIZE", False)]) \
        == sort_messages(items, [("SIZE", True)])
    seen = Flag("\\Seen")
    assert simplify(And((All(), All()))) == All()
    assert simplify(Not(And((seen, seen, All(), seen)))) == Not(And((seen, All())))
