"""Wire strings -> parsed commands, refusals, and the round trip parse(encode(cmd)) == cmd."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest

from mailcove.proto.imap import (
    NEED_DATA,
    Authenticate,
    BadCommand,
    Capability,
    Check,
    Close,
    Compress,
    Copy,
    Create,
    Delete,
    Enable,
    Examine,
    Expunge,
    Fetch,
    FetchAtt,
    GetQuota,
    GetQuotaRoot,
    Id,
    Idle,
    ImapReceiver,
    List,
    Login,
    Logout,
    Lsub,
    Move,
    Namespace,
    Noop,
    QresyncParams,
    Rename,
    Search,
    Section,
    Select,
    SeqSet,
    SetQuota,
    Sort,
    StartTLS,
    Status,
    Store,
    Subscribe,
    Thread,
    Unselect,
    Unsubscribe,
)
from mailcove.proto.imap.commands import Command, parse_command
from mailcove.proto.imap.commands.search import (
    All,
    And,
    DateKey,
    Flag,
    Header,
    ModSeq,
    Not,
    Or,
    SeqKey,
    Size,
    Text,
    UidKey,
    Within,
)
from mailcove.proto.imap.encode import encode_command
from mailcove.proto.imap.parser import ParseError


def S(text: str) -> SeqSet:
    return SeqSet.parse(text)


def events(data: bytes, **kw: object) -> list[object]:
    r = ImapReceiver(**kw)  # type: ignore[arg-type]
    r.receive_data(data)
    out = []
    while (e := r.next_event()) is not NEED_DATA:
        out.append(e)
    return out


def one(wire: bytes, utf8: bool = False) -> object:
    evs = events(wire + b"\r\n", utf8=utf8)
    assert len(evs) == 1, evs
    return evs[0]


F = FetchAtt
TABLE: list[tuple[bytes, Command]] = [
    (b"a CAPABILITY", Capability(tag="a")),
    (b"a capability", Capability(tag="a")),
    (b"a1 NOOP", Noop(tag="a1")),
    (b"x.y LOGOUT", Logout(tag="x.y")),
    (b"t STARTTLS", StartTLS(tag="t")),
    (b"a AUTHENTICATE PLAIN", Authenticate(tag="a", mechanism="PLAIN")),
    (b"a AUTHENTICATE plain AGEAYg==", Authenticate(tag="a", mechanism="PLAIN", initial=b"\0a\0b")),
    (b"a AUTHENTICATE PLAIN =", Authenticate(tag="a", mechanism="PLAIN", initial=b"")),
    (b"a LOGIN bob secret", Login(tag="a", username="bob", password="secret")),
    (b'a LOGIN "b\\"ob" "s p"', Login(tag="a", username='b"ob', password="s p")),
    (b"a LOGIN {3+}\r\nbob {2+}\r\npw", Login(tag="a", username="bob", password="pw")),
    (b'a LOGIN "j\xc3\xb6rg" "p\xe9"', Login(tag="a", username="jörg", password="p\udce9")),
    (b"a ENABLE IMAP4rev2 condstore", Enable(tag="a", capabilities=("IMAP4REV2", "CONDSTORE"))),
    (b"a SELECT INBOX", Select(tag="a", mailbox="INBOX")),
    (b"a SELECT inbox", Select(tag="a", mailbox="INBOX")),
    (b'a SELECT "Entw&APw-rfe"', Select(tag="a", mailbox="Entwürfe")),
    (b"a SELECT INBOX (CONDSTORE)", Select(tag="a", mailbox="INBOX", condstore=True)),
    (b"a SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))",
     Select(tag="a", mailbox="INBOX", qresync=QresyncParams(67890007, 20050715194045000, S("41,43:211,214:541")))),
    (b"a SELECT INBOX (QRESYNC (67890007 90060115194045000 1:29997 (5000,7500,9000,9990:9999 "
     b"15000,22500,27000,29970,29973,29976,29979,29982,29985,29988,29991,29994,29997:29999)))",
     Select(tag="a", mailbox="INBOX", qresync=QresyncParams(
         67890007, 90060115194045000, S("1:29997"),
         (S("5000,7500,9000,9990:9999"),
          S("15000,22500,27000,29970,29973,29976,29979,29982,29985,29988,29991,29994,29997:29999"))))),
    (b"a EXAMINE Archive/2024", Examine(tag="a", mailbox="Archive/2024")),
    (b"a CREATE Foo", Create(tag="a", mailbox="Foo")),
    (b"a CREATE MySpecialTrash (USE (\\Trash))", Create(tag="a", mailbox="MySpecialTrash", special_use=("\\Trash",))),
    (b"a DELETE Foo", Delete(tag="a", mailbox="Foo")),
    (b"a RENAME Foo Bar/Baz", Rename(tag="a", old="Foo", new="Bar/Baz")),
    (b"a SUBSCRIBE #news", Subscribe(tag="a", mailbox="#news")),
    (b'a UNSUBSCRIBE "x y"', Unsubscribe(tag="a", mailbox="x y")),
    (b'a LIST "" *', List(tag="a", reference="", patterns=("*",))),
    (b'a LIST "" %/%', List(tag="a", reference="", patterns=("%/%",))),
    (b'a LIST ~/Mail/ "%"', List(tag="a", reference="~/Mail/", patterns=("%",))),
    (b'a LIST (SUBSCRIBED) "" "*" RETURN (CHILDREN)',
     List(tag="a", reference="", patterns=("*",), selection=frozenset({"SUBSCRIBED"}),
          return_opts=frozenset({"CHILDREN"}), extended=True)),
    (b'a LIST "" ("INBOX" "Drafts") RETURN (SPECIAL-USE SUBSCRIBED)',
     List(tag="a", reference="", patterns=("INBOX", "Drafts"), return_opts=frozenset({"SPECIAL-USE", "SUBSCRIBED"}),
          extended=True)),
    (b'a LIST "" % RETURN (STATUS (MESSAGES UNSEEN))',
     List(tag="a", reference="", patterns=("%",), return_opts=frozenset({"STATUS"}),
          status_items=("MESSAGES", "UNSEEN"),
          extended=True)),
    (b'a LSUB "#news." "comp.mail.*"', Lsub(tag="a", reference="#news.", pattern="comp.mail.*")),
    (b"a NAMESPACE", Namespace(tag="a")),
    (b"a STATUS blurdybloop (UIDNEXT MESSAGES SIZE HIGHESTMODSEQ APPENDLIMIT)",
     Status(tag="a", mailbox="blurdybloop", items=("UIDNEXT", "MESSAGES", "SIZE", "HIGHESTMODSEQ", "APPENDLIMIT"))),
    (b"a IDLE", Idle(tag="a")),
    (b"a CHECK", Check(tag="a")),
    (b"a CLOSE", Close(tag="a")),
    (b"a UNSELECT", Unselect(tag="a")),
    (b"a EXPUNGE", Expunge(tag="a")),
    (b"a UID EXPUNGE 3000:3002", Expunge(tag="a", uid=True, uids=S("3000:3002"))),
    (b"a SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"",
     Search(tag="a", charset=None, criteria=And((Flag("\\Flagged"), DateKey("SINCE", date(1994, 2, 1)),
                                                   Not(Text("FROM", "Smith")))))),
    (b"a SEARCH CHARSET UTF-8 TEXT {6+}\r\nXX\xc3\xa4XX",
     Search(tag="a", charset="UTF-8", criteria=Text("TEXT", "XXäXX"))),
    (b"a UID SEARCH RETURN (MIN COUNT) OR (SEEN DRAFT) UNKEYWORD $Junk",
     Search(tag="a", uid=True, charset=None, return_opts=("MIN", "COUNT"),
            criteria=Or(And((Flag("\\Seen"), Flag("\\Draft"))), Flag("$Junk", False)))),
    (b"a SEARCH RETURN () 1:5,*", Search(tag="a", charset=None, return_opts=(), criteria=SeqKey(S("1:5,*")))),
    (b"a SEARCH $", Search(tag="a", charset=None, criteria=SeqKey(SeqSet((), True)))),
    (b'a SEARCH HEADER Message-ID "<x@y>" LARGER 100 SMALLER 5000 UID 1:* NEW OLD RECENT',
     Search(tag="a", charset=None, criteria=And((
         Header("Message-ID", "<x@y>"), Size(True, 100), Size(False, 5000), UidKey(S("1:*")),
         And((Flag("\\Recent"), Flag("\\Seen", False))), Flag("\\Recent", False), Flag("\\Recent"))))),
    (b'a SEARCH MODSEQ "/flags/\\\\draft" all 620162338 SENTBEFORE "2-Mar-2020" YOUNGER 3600',
     Search(tag="a", charset=None, criteria=And((ModSeq(620162338, ("/flags/\\draft", "all")),
                                                  DateKey("BEFORE", date(2020, 3, 2), True), Within(False, 3600))))),
    (b"a SEARCH ALL", Search(tag="a", charset=None, criteria=All())),
    (b"a UID SORT (REVERSE ARRIVAL SUBJECT) UTF-8 ALL",
     Sort(tag="a", uid=True, sort=(("ARRIVAL", True), ("SUBJECT", False)), charset="UTF-8", criteria=All())),
    (b"a SORT RETURN (ALL COUNT) (DISPLAYFROM) US-ASCII UNSEEN",
     Sort(tag="a", sort=(("DISPLAYFROM", False),), charset="US-ASCII", criteria=Flag("\\Seen", False),
          return_opts=("ALL", "COUNT"))),
    (b"a THREAD REFERENCES UTF-8 SINCE 5-MAR-2000",
     Thread(tag="a", algorithm="REFERENCES", charset="UTF-8", criteria=DateKey("SINCE", date(2000, 3, 5)))),
    (b"a UID THREAD ORDEREDSUBJECT US-ASCII ALL",
     Thread(tag="a", uid=True, algorithm="ORDEREDSUBJECT", charset="US-ASCII", criteria=All())),
    (b"a FETCH 1 FLAGS", Fetch(tag="a", seqset=S("1"), items=(F("FLAGS"),))),
    (b"a FETCH 2:4 ALL", Fetch(tag="a", seqset=S("2:4"),
                               items=(F("FLAGS"), F("INTERNALDATE"), F("RFC822.SIZE"), F("ENVELOPE")))),
    (b"a FETCH 1 fast", Fetch(tag="a", seqset=S("1"), items=(F("FLAGS"), F("INTERNALDATE"), F("RFC822.SIZE")))),
    (b"a FETCH 1 FULL", Fetch(tag="a", seqset=S("1"), items=(F("FLAGS"), F("INTERNALDATE"), F("RFC822.SIZE"),
                                                               F("ENVELOPE"), F("BODY")))),
    (b"a UID FETCH 1:* (FLAGS)", Fetch(tag="a", uid=True, seqset=S("1:*"), items=(F("FLAGS"),))),
    (b"a FETCH 1 (BODY[] BODY.PEEK[HEADER] BODY[TEXT]<0.2048> BODY[1.2.MIME] BODY[3.HEADER.FIELDS (From To)] "
     b"BODY.PEEK[HEADER.FIELDS.NOT (Received)] BODY[2] BODY[4.TEXT])",
     Fetch(tag="a", seqset=S("1"), items=(
         F("BODY", Section()), F("BODY", Section((), "HEADER"), peek=True), F("BODY", Section((), "TEXT"), (0, 2048)),
         F("BODY", Section((1, 2), "MIME")), F("BODY", Section((3,), "HEADER.FIELDS", ("From", "To"))),
         F("BODY", Section((), "HEADER.FIELDS.NOT", ("Received",)), peek=True), F("BODY", Section((2,))),
         F("BODY", Section((4,), "TEXT")),
     ))),
    (b"a FETCH 1 (BINARY[1] BINARY.PEEK[1.2]<10.20> BINARY.SIZE[2] BINARY[])",
     Fetch(tag="a", seqset=S("1"), items=(F("BINARY", Section((1,))), F("BINARY", Section((1, 2)), (10, 20), True),
                                          F("BINARY.SIZE", Section((2,))), F("BINARY", Section())))),
    (b"a FETCH 1 (RFC822 RFC822.HEADER RFC822.TEXT RFC822.SIZE ENVELOPE BODY BODYSTRUCTURE UID MODSEQ INTERNALDATE)",
     Fetch(tag="a", seqset=S("1"), items=tuple(F(n) for n in (
         "RFC822", "RFC822.HEADER", "RFC822.TEXT", "RFC822.SIZE", "ENVELOPE", "BODY", "BODYSTRUCTURE", "UID", "MODSEQ",
         "INTERNALDATE")))),
    (b"a UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)",
     Fetch(tag="a", uid=True, seqset=S("300:500"), items=(F("FLAGS"),), changedsince=12345, vanished=True)),
    (b"a STORE 2:4 +FLAGS (\\Deleted)", Store(tag="a", seqset=S("2:4"), mode="+", silent=False, flags=("\\Deleted",))),
    (b"a STORE 1 FLAGS.SILENT ()", Store(tag="a", seqset=S("1"), mode="", silent=True, flags=())),
    (b"a STORE 1 -flags \\Seen $Label1", Store(tag="a", seqset=S("1"), mode="-", silent=False,
                                                flags=("\\Seen", "$Label1"))),
    (b"a UID STORE 1:* (UNCHANGEDSINCE 200) +FLAGS.SILENT (\\seen)",
     Store(tag="a", uid=True, seqset=S("1:*"), mode="+", silent=True, flags=("\\Seen",), unchangedsince=200)),
    (b"a COPY 2:4 MEETING", Copy(tag="a", seqset=S("2:4"), mailbox="MEETING")),
    (b"a UID MOVE 42:69 foo", Move(tag="a", uid=True, seqset=S("42:69"), mailbox="foo")),
    (b"a MOVE $ Trash", Move(tag="a", seqset=SeqSet((), True), mailbox="Trash")),
    (b"a ID NIL", Id(tag="a", params=None)),
    (b'a ID ("name" "sodr" "version" NIL)', Id(tag="a", params=(("name", "sodr"), ("version", None)))),
    (b'a GETQUOTA ""', GetQuota(tag="a", root="")),
    (b"a GETQUOTAROOT INBOX", GetQuotaRoot(tag="a", mailbox="INBOX")),
    (b'a SETQUOTA "" (STORAGE 512)', SetQuota(tag="a", root="", limits=(("STORAGE", 512),))),
    (b"a COMPRESS DEFLATE", Compress(tag="a", mechanism="DEFLATE")),
]


@pytest.mark.parametrize(("wire", "expected"), TABLE, ids=[w[:40].decode("latin-1") for w, _ in TABLE])
def test_parse(wire: bytes, expected: Command) -> None:
    got = one(wire)
    assert got == expected
    assert type(got) is type(expected)


@pytest.mark.parametrize(("wire", "expected"), TABLE, ids=[w[:40].decode("latin-1") for w, _ in TABLE])
def test_round_trip(wire: bytes, expected: Command) -> None:
    encoded = encode_command(expected)
    assert one(encoded.removesuffix(b"\r\n")) == expected
    # the cached path gives the same result with another tag
    again = parse_command(b"z9 " + encoded.split(b" ", 1)[1].removesuffix(b"\r\n"))
    assert again.tag == "z9"
    assert again == dataclasses.replace(expected, tag="z9")


def test_every_command_has_a_table_entry() -> None:
    from mailcove.proto.imap.commands import COMMANDS
    names = {cmd.name for _, cmd in TABLE} | {"UID " + cmd.name for _, cmd in TABLE if cmd.uid}
    assert set(COMMANDS) <= names
    for uid_cmd in ("FETCH", "STORE", "MOVE", "SEARCH", "SORT", "THREAD", "EXPUNGE"):
        assert "UID " + uid_cmd in names


def test_utf8_mailbox_names() -> None:
    assert one(b'a SELECT "Entw\xc3\xbcrfe"', utf8=True) == Select(tag="a", mailbox="Entwürfe")
    # in UTF-8 mode "&" is an ordinary character, not a modified UTF-7 shift
    assert one(b'a CREATE "A&B"', utf8=True) == Create(tag="a", mailbox="A&B")
    bad = one(b'a SELECT "Entw\xc3\xbcrfe"')
    assert isinstance(bad, BadCommand) and bad.tag == "a"
    assert encode_command(Select(tag="a", mailbox="Entwürfe"), utf8=True) == b'a SELECT "Entw\xc3\xbcrfe"\r\n'


BAD = [
    (b"a", "a"),  # tag only
    (b"a FOO", "a"),
    (b"a UID NOOP", "a"),
    (b"a NOOP extra", "a"),
    (b"a  NOOP", "a"),
    (b"a NOOP ", "a"),
    (b"* NOOP", None),
    (b"+ NOOP", None),
    (b"a LOGIN bob", "a"),
    (b"a LOGIN bob pw extra", "a"),
    (b'a LOGIN "bob pw', "a"),
    (b"a SELECT", "a"),
    (b'a SELECT "a\x00b"', "a"),
    (b'a SELECT "a\x01b"', "a"),
    (b'a SELECT "../other"', "a"),
    (b'a CREATE "a/../b"', "a"),
    (b'a RENAME x "y..z"', "a"),
    (b"a SELECT &Jjo", "a"),  # unterminated modified UTF-7
    (b"a SELECT &AGE-", "a"),  # "a" encoded in base64: not canonical
    (b"a SELECT INBOX (FOO)", "a"),
    (b"a FETCH 0 FLAGS", "a"),
    (b"a FETCH 1:x FLAGS", "a"),
    (b"a FETCH 1 (FLAGS", "a"),
    (b"a FETCH 1 ()", "a"),
    (b"a FETCH 1 BODY[0]", "a"),
    (b"a FETCH 1 BODY[MIME]", "a"),
    (b"a FETCH 1 BINARY[HEADER]", "a"),
    (b"a FETCH 1 BODY[HEADER.FIELDS ()]", "a"),
    (b"a FETCH 1 BODY[]<1.0>", "a"),
    (b"a FETCH 1 FOO", "a"),
    (b"a FETCH 1 FLAGS (VANISHED)", "a"),
    (b"a FETCH 1 FLAGS (CHANGEDSINCE 1 VANISHED)", "a"),  # VANISHED needs UID FETCH
    (b"a STORE 1 FLAGS (\\Recent)", "a"),
    (b"a STORE 1 FLAGS (\\Bogus)", "a"),
    (b"a STORE 1 XFLAGS (\\Seen)", "a"),
    (b"a SEARCH", "a"),
    (b"a SEARCH FOO", "a"),
    (b"a SEARCH OR SEEN", "a"),
    (b"a SEARCH SINCE 31-Feb-2020", "a"),
    (b"a SEARCH (SEEN", "a"),
    (b"a SEARCH CHARSET UTF-8 TEXT \"\xff\"", "a"),
    (b"a SEARCH CHARSET US-ASCII TEXT \"\xc3\xa4\"", "a"),
    (b"a SORT (FOO) UTF-8 ALL", "a"),
    (b"a THREAD FOO UTF-8 ALL", "a"),
    (b"a STATUS INBOX (FOO)", "a"),
    (b"a STATUS INBOX ()", "a"),
    (b"a LIST (RECURSIVEMATCH) \"\" *", "a"),
    (b"a LIST \"\" * RETURN (FOO)", "a"),
    (b"a CREATE x (USE (\\Bogus))", "a"),
    (b"a AUTHENTICATE PLAIN !!!", "a"),
    (b"a ENABLE", "a"),
    (b"a ID (\"k\")", "a"),
    (b"a APPEND INBOX", "a"),
    (b"a EXPUNGE 1", "a"),
    (b"a UID EXPUNGE", "a"),
    (b"a FETCH 99999999999 FLAGS", "a"),
    (b"a LOGIN {3+}\r\nb\x00b pw", "a"),
]


@pytest.mark.parametrize(("wire", "tag"), BAD, ids=[w.decode("latin-1") for w, _ in BAD])
def test_bad(wire: bytes, tag: str | None) -> None:
    got = one(wire)
    assert isinstance(got, BadCommand), got
    assert got.tag == tag
    assert got.text


def test_bad_charset_is_no_with_code() -> None:
    got = one(b"a SEARCH CHARSET KOI8-R TEXT x")
    assert got == BadCommand("a", "Unsupported charset KOI8-R", "BADCHARSET (US-ASCII UTF-8)", "NO")
    got = one(b"a CREATE x (USE (\\Bogus))")
    assert isinstance(got, BadCommand) and got.status == "NO" and got.code == "USEATTR"


def test_nesting_limit() -> None:
    deep = b"a SEARCH " + b"(" * 40 + b"SEEN" + b")" * 40
    got = one(deep)
    assert isinstance(got, BadCommand) and got.code == "LIMIT"
    ok = b"a SEARCH " + b"(" * 10 + b"SEEN" + b")" * 10
    assert isinstance(one(ok), Search)
    nots = b"a SEARCH " + b"NOT " * 100 + b"SEEN"
    got = one(nots)
    assert isinstance(got, BadCommand) and got.code == "LIMIT"
    with pytest.raises(ParseError):
        parse_command(b"a SEARCH " + b"OR SEEN " * 50 + b"SEEN", max_depth=16)


def test_fetch_response_names() -> None:
    cmd = one(b"a FETCH 1 (BODY.PEEK[1.HEADER.FIELDS (From)]<5.10> BINARY.PEEK[2] RFC822.SIZE)")
    assert isinstance(cmd, Fetch)
    assert [a.response_name() for a in cmd.items] == ["BODY[1.HEADER.FIELDS (From)]<5>", "BINARY[2]", "RFC822.SIZE"]
    assert [a.sets_seen for a in cmd.items] == [False, False, False]
    cmd = one(b"a FETCH 1 (BODY[] RFC822 RFC822.HEADER BINARY[1])")
    assert [a.sets_seen for a in cmd.items] == [True, True, False, True]


def test_commands_are_frozen() -> None:
    cmd = one(b"a NOOP")
    with pytest.raises(AttributeError):
        cmd.tag = "b"  # type: ignore[misc]
    assert "secret" not in repr(one(b"a LOGIN bob secret"))


def test_parse_cache_does_not_mix_tags_or_modes() -> None:
    a = parse_command(b"t1 UID FETCH 1:* (FLAGS)")
    b = parse_command(b"t2 UID FETCH 1:* (FLAGS)")
    assert (a.tag, b.tag) == ("t1", "t2") and a.items == b.items
    x = parse_command(b'a SELECT "&AOQ-"')
    y = parse_command(b'a SELECT "&AOQ-"', utf8=True)
    assert isinstance(x, Select) and isinstance(y, Select)
    assert (x.mailbox, y.mailbox) == ("ä", "&AOQ-")


def test_search_key_count_limit() -> None:
    from mailcove.proto.imap.commands.search import MAX_SEARCH_KEYS, parse_criteria
    from mailcove.proto.imap.parser import ParseError, Parser

    ok = b" ".join([b"SEEN"] * MAX_SEARCH_KEYS)
    parse_criteria(Parser(ok), None)
    # Keys inside parentheses, NOT and OR count too.
    for text in (ok + b" SEEN", b"(" + ok + b" SEEN)", b"NOT " + b" ".join([b"OR SEEN SEEN"] * 400)):
        with pytest.raises(ParseError) as err:
            parse_criteria(Parser(text), None)
        assert err.value.code == "LIMIT"
