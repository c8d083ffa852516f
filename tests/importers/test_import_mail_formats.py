"""The mbox and Maildir formats and mail_location strings, without a store (importers/mbox.py,
importers/maildir.py, importers/mailio.py). The whole import over IMAP/POP3 is in
test_import_mail.py."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailcove.importers import maildir as md
from mailcove.importers.mailio import (
    ImportReport,
    Location,
    LocationError,
    expand,
    list_sources,
    parse_location,
    to_store_bytes,
)
from mailcove.importers.mbox import MboxBase, from_line, parse_from_line, read_mbox, split_message, write_message

FROM1 = b"From MAILER-DAEMON Sat Nov 28 01:55:19 2026"


def test_from_line_dates_and_non_separators() -> None:
    when = parse_from_line(b"From a@b  Sat Nov 28 01:55:19 2026")  # Dovecot writes two spaces
    assert when == time.mktime((2026, 11, 28, 1, 55, 19, 0, 0, -1))
    assert parse_from_line(b"From a@b Mon Jan  1 00:00 2024") is not None  # no seconds
    assert parse_from_line(b"From a@b Mon Jan  1 00:00:00 2024 +0100") is not None
    assert parse_from_line(b"From a@b Mon Jan  1 00:00:00 CET 2024") is not None
    for line in (b"From here on, we work", b"From: x@y", b"From a@b yesterday", b"From "):
        assert parse_from_line(line) is None
    assert parse_from_line(from_line("x@y", 1e9)) == 1e9


def test_dovecot_written_mbox() -> None:
    # As Dovecot 2.3 writes it (doveadm save + flags): metadata headers in its order, padding,
    # Content-Length, and body "From " lines NOT escaped (it relies on Content-Length).
    buf = (
        b"From t@vm  Sat Nov 28 01:55:19 2026\n"
        b"From: x@y\nSubject: one\nMessage-ID: <1@y>\n"
        b"X-IMAPbase: 1795830919 0000000002 $Label1 work\nX-UID: 1\nStatus: R\n"
        b"X-Keywords: $Label1 work                              \nContent-Length: 31\nX-Status: AFTD\n"
        b"\nFrom here on\n>From quoted\nbody\n\n"
        b"From t@vm  Sat Nov 28 01:55:19 2026\n"
        b"From: x@y\nSubject: two\nX-UID: 2\nStatus: RO\nX-Keywords:                  \nContent-Length: 37\n"
        b"\nFrom me Mon Jan  1 00:00:00 2024\nend\n\n"
    )
    r = read_mbox(buf)
    msgs = list(r)
    assert r.base == MboxBase(1795830919, 2, ["$Label1", "work"])
    assert [m.uid for m in msgs] == [1, 2]
    assert msgs[0].flags == {"\\Seen", "\\Answered", "\\Flagged", "\\Draft", "\\Deleted", "$Label1", "work"}
    assert msgs[1].flags == {"\\Seen"}
    # what Dovecot serves over IMAP: metadata hidden, ">From" kept, the unescaped From line kept
    assert msgs[0].data == b"From: x@y\nSubject: one\nMessage-ID: <1@y>\n\nFrom here on\n>From quoted\nbody\n"
    assert msgs[1].data == b"From: x@y\nSubject: two\n\nFrom me Mon Jan  1 00:00:00 2024\nend\n"
    assert r.problems == []


def test_mail_local_spool_without_content_length() -> None:
    # Sendmail's mail.local: no metadata, body From lines after a blank line escaped (mboxo);
    # a message without a final newline ends right before the next From line.
    buf = (
        b"\n\n"  # leading blank lines are tolerated
        + FROM1 + b"\nSubject: a\n\nline\n>From the start\nFrom here on, not a separator\nno newline"
        + b"\n" + FROM1 + b"\nSubject: b\n\nlast\n\n"
    )
    msgs = list(read_mbox(buf))
    assert [m.data for m in msgs] == [
        b"Subject: a\n\nline\n>From the start\nFrom here on, not a separator\nno newline",
        b"Subject: b\n\nlast\n",
    ]
    assert [m.uid for m in msgs] == [None, None]
    assert next(m.data for m in read_mbox(buf, quoting="mboxo")).count(b"\nFrom the start") == 1
    rd = list(read_mbox(FROM1 + b"\n\n>>From x\n>From y\n", quoting="mboxrd"))
    assert rd[0].data == b"\n>From x\nFrom y"


def test_bad_content_length_is_not_trusted() -> None:
    buf = FROM1 + b"\nContent-Length: 3\nSubject: a\n\nbody is longer\n\n" + FROM1 + b"\nSubject: b\n\nx\n"
    msgs = list(read_mbox(buf))
    assert [m.data for m in msgs] == [b"Subject: a\n\nbody is longer\n", b"Subject: b\n\nx"]


def test_content_length_up_to_the_end_of_the_file() -> None:
    # no separator line after the last body: Content-Length says the final newline is the body's
    msgs = list(read_mbox(FROM1 + b"\nSubject: a\nContent-Length: 5\n\nbody\n"))
    assert [m.data for m in msgs] == [b"Subject: a\n\nbody\n"]
    msgs = list(read_mbox(FROM1 + b"\nSubject: a\nContent-Length: 5\n\nbody\n\n"))
    assert [m.data for m in msgs] == [b"Subject: a\n\nbody\n"]


def test_uw_imap_pseudo_message_and_crlf_file() -> None:
    buf = (
        FROM1 + b"\r\nSubject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\r\n"
        b"X-IMAP: 1000000000 0000000009 $Work\r\n\r\nThis text is part of the internal format.\r\n\r\n"
        + FROM1 + b"\r\nSubject: real\r\nX-UID: 7\r\n\r\nbody\r\n\r\n"
    )
    r = read_mbox(buf)
    msgs = list(r)
    assert r.nl == b"\r\n" and r.base.uidvalidity == 1000000000 and r.base.uidlast == 9
    assert [(m.uid, m.data) for m in msgs] == [(7, b"Subject: real\r\n\r\nbody\r\n")]


_bodies = st.lists(
    st.sampled_from([b"text", b"", b"From here", b"From a@b Mon Jan  1 00:00:00 2024", b">From x", b">>From y",
                     b"Status: RO", b" folded", b"\tx", b"X-UID: 5"]),
    max_size=6,
).map(lambda lines: b"\n".join(lines))
_messages = st.tuples(
    st.sampled_from([b"Subject: s\n", b"Subject: s\nX-UIDL: abc\n", b""]),
    st.sampled_from([b"\n", b""]),
    _bodies,
    st.sampled_from([b"", b"\n"]),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_messages, min_size=1, max_size=5), st.sampled_from(["none", "mboxrd"]))
def test_write_then_read_gives_the_messages_back(parts: list[tuple[bytes, ...]], quoting: str) -> None:
    datas = [d for d in (h + sep + b + end for h, sep, b, end in parts) if _representable(d)]
    flags = [frozenset({"\\Seen", "$k"}) if i % 2 else frozenset({"\\Flagged"}) for i in range(len(datas))]
    out = b"".join(
        write_message(d, FROM1, fl, i + 1, b"\n", base=MboxBase(9, len(datas), []) if i == 0 else None,
                      quoting=quoting)
        for i, (d, fl) in enumerate(zip(datas, flags, strict=True))
    )
    r = read_mbox(out, quoting=quoting)
    back = list(r)
    assert [m.data for m in back] == datas
    assert [m.uid for m in back] == list(range(1, len(datas) + 1))
    assert [m.flags for m in back] == flags
    assert r.problems == [] and (not datas or r.base.uidvalidity == 9)


def _representable(data: bytes) -> bool:
    """Messages mbox can carry: metadata-named fields in a header are metadata by definition, a
    header cannot start with a continuation line, and a From line in a header (which is no
    header field) would start a new message: only a body gets Content-Length."""
    header, _sep, _body = split_message(data, b"\n")
    lines = header.split(b"\n")
    if any(ln.lower().startswith((b"status:", b"x-uid:")) for ln in lines) or header.startswith((b" ", b"\t")):
        return False
    return not any(parse_from_line(ln) is not None for ln in lines)


def test_maildir_names_uidlist_keywords() -> None:
    kw = md.parse_keywords("0 $Label1\n1 work\nbad line\n30 toolate\n")
    assert kw == {0: "$Label1", 1: "work"}
    assert md.parse_info("1795830945.M1P2.vm,S=73,W=80:2,DFRSTab", kw) == (
        "1795830945.M1P2.vm,S=73,W=80",
        frozenset({"\\Draft", "\\Flagged", "\\Answered", "\\Seen", "\\Deleted", "$Label1", "work"}),
    )
    assert md.parse_info("123.new", kw) == ("123.new", frozenset())
    assert md.info_suffix({"\\Seen", "\\Answered", "work"}, {"work": 1}) == ":2,RSb"
    ul = md.parse_uidlist("3 V1795830945 N3 Gab64\n1 :a.vm,S=73\n2 W80 S60 :b.vm\n")
    assert (ul.uidvalidity, ul.uidnext, ul.uids) == (1795830945, 3, {"a.vm,S=73": 1, "b.vm": 2})
    v1 = md.parse_uidlist("1 1000 5\n3 c.host\n")
    assert (v1.uidvalidity, v1.uidnext, v1.uids) == (1000, 5, {"c.host": 3})
    assert md.parse_uidlist(md.format_uidlist(7, 9, [(8, "x")])).uids == {"x": 8}


def test_locations_expand_like_dovecot(tmp_path: Path) -> None:
    home = tmp_path / "home" / "a"
    assert expand("~/mail:%u:%n:%d:%h:%%:%{user}", login="a@x.org", home=home) == (
        f"{home}/mail:a@x.org:a:x.org:{home}:%:a@x.org"
    )
    loc = parse_location("mbox:~/mail:INBOX=/var/mail/%u", login="a", home=home)
    assert loc == Location("mbox", home / "mail", Path("/var/mail/a"), "fs")
    assert parse_location("maildir:~/Maildir:LAYOUT=fs", login="a", home=home).layout == "fs"
    for bad in ("dbox:~/mdbox", "mbox", "maildir:~/M:LAYOUT=odd"):
        with pytest.raises(LocationError):
            parse_location(bad, login="a", home=home)
    with pytest.raises(LocationError):
        expand("~/mail", login="a", home=None)


def test_mbox_tree_listing_skips_dovecot_files(tmp_path: Path) -> None:
    root = tmp_path / "mail"
    (root / ".imap" / "INBOX").mkdir(parents=True)
    (root / ".imap" / "INBOX" / "dovecot.index.log").write_bytes(b"\0")
    (root / "Foo").mkdir()
    (root / "Foo" / "Bar").write_bytes(FROM1 + b"\n\nx\n")
    (root / "Sent").write_bytes(b"")
    (root / "&AMk-t&AOk-").write_bytes(b"")  # "Été" in modified UTF-7, as Dovecot names it on disk
    (root / "notes.txt").write_bytes(b"not mail")
    (root / ".subscriptions").write_text("Sent\nFoo/Bar\n")
    spool = tmp_path / "spool"
    spool.write_bytes(FROM1 + b"\n\nin\n")
    report = ImportReport()
    boxes = list_sources(Location("mbox", root, spool), report)
    assert boxes[0].name == "INBOX" and sorted(b.name for b in boxes[1:]) == ["Foo/Bar", "Sent", "Été"]
    assert report.subscriptions == ["Sent", "Foo/Bar"]
    assert any("notes.txt" in p for p in report.problems)


def test_line_end_rules() -> None:
    from collections import Counter

    c: Counter[str] = Counter()
    assert to_store_bytes(b"a\nb\n", False, c) == b"a\r\nb\r\n"
    assert to_store_bytes(b"a\r\nb\r\n", False, c) == b"a\r\nb\r\n"
    assert to_store_bytes(b"a\r\nb\n", False, c) == b"a\r\nb\n"  # mixed: kept as it is
    assert c == Counter({"lf": 1, "crlf": 1, "mixed": 1})


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([
    b"From a@b Mon Nov  2 10:00:00 2026\n", b"From x\n", b"\n", b"\r\n", b"X-UID: 99999999999\n",
    b"Content-Length: 3\n", b"Content-Length: 999999999999999999\n", b"X-IMAP: 5 6\n", b"X-IMAPbase: 0 1\n",
    b"Status: RO\n", b"body\n",
    b">From y\n", b"\x00\xff", b" folded\n"]), max_size=30),
       st.sampled_from(["none", "mboxrd", "mboxo"]))
def test_any_mbox_bytes_read_without_error(parts: list[bytes], quoting: str) -> None:
    buf = b"".join(parts)
    r = read_mbox(buf, quoting=quoting)
    for m in r:
        assert m.uid is None or 0 < m.uid < 2**32
        assert len(m.data) <= len(buf)
    assert r.base.uidvalidity is None or 0 < r.base.uidvalidity < 2**32


@given(st.text(max_size=200))
def test_any_uidlist_and_keywords_text_parses(text: str) -> None:
    ul = md.parse_uidlist(text)
    assert all(0 < u < 2**32 for u in ul.uids.values())
    assert ul.uidnext is None or 0 < ul.uidnext < 2**32
    md.parse_keywords(text)
    md.parse_info(text, {0: "k"})


async def test_maildir_fs_layout_imports_through_the_store(tmp_path: Path) -> None:
    # maildir:~/Maildir:LAYOUT=fs: folders are plain directories (Foo/Bar/cur), INBOX is the root.
    from mailcove.importers.mailio import import_mail
    from mailcove.store.sqlite import SqliteStore

    root = tmp_path / "Maildir"
    for folder in (root, root / "Foo" / "Bar", root / "Sent"):
        for sub in ("cur", "new", "tmp"):
            (folder / sub).mkdir(parents=True)
    (root / "cur" / "1.M1.h:2,S").write_bytes(b"Subject: in\n\nx\n")
    (root / "Foo" / "Bar" / "new" / "2.M2.h").write_bytes(b"Subject: nested\n\ny\n")
    (root / "Foo" / "Bar" / "dovecot-uidlist").write_text("3 V77 N5\n4 :2.M2.h\n")
    (root / "Sent" / "cur" / "3.M3.h:2,RS").write_bytes(b"Subject: sent\n\nz\n")
    boxes = list_sources(parse_location(f"maildir:{root}:LAYOUT=fs", login="a", home=None))
    assert [b.name for b in boxes] == ["INBOX", "Foo/Bar", "Sent"]
    store = SqliteStore(tmp_path / "data", watch_changes=False)
    await store.start()
    try:
        await store.create_account("a@hamap.local")
        report = await import_mail(store, "a@hamap.local", boxes)
        assert [(b.name, b.added) for b in report.boxes] == [("INBOX", 1), ("Foo/Bar", 1), ("Sent", 1)]
        foo = await store.get_mailbox("a@hamap.local", "Foo/Bar")
        assert (foo.uidvalidity, foo.uidnext) == (77, 5)
        assert await store.read_message(foo.id, 4) == b"Subject: nested\r\n\r\ny\r\n"
        sent = await store.get_mailbox("a@hamap.local", "Sent")
        (meta,) = await store.fetch_meta(sent.id, [1])
        assert meta.flags == {"\\Answered", "\\Seen"}
    finally:
        await store.close()
