"""Response builders, each checked by the strict client-role parser; the parser itself against
RFC 9051 / RFC 3501 example responses and against malformed ones; seqset and modified UTF-7 tables."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from mailcove.proto.imap import responses as R
from mailcove.proto.imap import utf7
from mailcove.proto.imap.client import (
    Continuation,
    ResponseParser,
    ResponseSyntaxError,
    Tagged,
    Untagged,
    parse_responses,
)
from mailcove.proto.imap.responses import LiteralRef, ResponseEncoder
from mailcove.proto.imap.seqset import SeqSet, SeqSetError, compact


def one(data: bytes) -> Tagged | Untagged | Continuation:
    rs = parse_responses(data)
    assert len(rs) == 1, rs
    return rs[0]


# --- builders -------------------------------------------------------------------------------------
def test_status_responses() -> None:
    assert R.tagged("a1", "OK", "done", "READ-WRITE") == b"a1 OK [READ-WRITE] done\r\n"
    assert one(R.tagged("a1", "NO", "over", "OVERQUOTA")) == Tagged("a1", "NO", "OVERQUOTA", None, "over")
    # CR/LF in text cannot end the line early; empty text is still valid text
    t = one(R.tagged("a", "BAD", "x\r\n* 1 EXISTS"))
    assert isinstance(t, Tagged) and "\n" not in t.text
    assert one(R.tagged("a", "OK", "")).text
    assert one(R.status_response("BYE", "Autologout")).kind == "BYE"
    u = one(R.status_response("OK", "Ready", "CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+"))
    assert u.code == "CAPABILITY" and u.code_data == ["IMAP4rev1", "IMAP4rev2", "LITERAL+"]
    with pytest.raises(ValueError):
        R.tagged("a", "MAYBE", "x")
    with pytest.raises(ValueError):
        R.tagged("a", "OK", "x", "BAD]CODE")
    assert one(R.continuation("Ready")) == Continuation(b"Ready")
    assert one(R.continuation(b"")) == Continuation(b"")


@pytest.mark.parametrize(("value", "wire"), [
    (b"abc", b'"abc"'), (b'a"b\\c', b'"a\\"b\\\\c"'), (b"a\r\nb", b"{4}\r\na\r\nb"), (b"", b'""'),
    (b"\xff", b"{1}\r\n\xff"), ("ä", b"{2}\r\n\xc3\xa4"),
])
def test_string_choices(value: bytes | str, wire: bytes) -> None:
    assert R.string(value) == wire


def test_string_utf8_and_astring_and_nil() -> None:
    assert R.string("ä", utf8=True) == b'"\xc3\xa4"'
    assert R.string(b"\xff", utf8=True) == b"{1}\r\n\xff"  # not UTF-8: literal even for rev2
    assert R.nstring(None) == b"NIL"
    assert R.astring("INBOX") == b"INBOX"
    assert R.astring("NIL") == b'"NIL"'
    assert R.astring("a b") == b'"a b"'
    assert R.astring("") == b'""'
    assert R.literal(b"a\x00", binary=True) == b"~{2}\r\na\x00"
    assert R.string(b"x" * 5000).startswith(b"{5000}\r\n")


def test_internaldate() -> None:
    dt = datetime(1996, 7, 17, 2, 44, 25, tzinfo=timezone(timedelta(hours=-7)))
    assert R.internaldate(dt) == b'"17-Jul-1996 02:44:25 -0700"'
    assert R.internaldate(0.0) == b'"01-Jan-1970 00:00:00 +0000"'
    got = one(b"* 1 FETCH (INTERNALDATE " + R.internaldate(dt) + b")\r\n")
    assert got.data["INTERNALDATE"] == '"17-Jul-1996 02:44:25 -0700"'


def test_rev1_vs_rev2() -> None:
    rev1, rev2 = ResponseEncoder(), ResponseEncoder(rev2=True)
    assert rev1.recent(3) == b"* 3 RECENT\r\n" and rev2.recent(3) == b""
    assert rev1.flag_list(["\\Seen", "\\Recent"]) == b"(\\Seen \\Recent)"
    assert rev2.flag_list(["\\Seen", "\\Recent"]) == b"(\\Seen)"
    assert rev1.mailbox("Entwürfe") == b"Entw&APw-rfe"
    assert rev2.mailbox("Entwürfe") == b'"Entw\xc3\xbcrfe"'
    assert rev1.mailbox("inbox") == b"INBOX"
    assert rev1.status("A", {"MESSAGES": 1, "RECENT": 0}) == b"* STATUS A (MESSAGES 1 RECENT 0)\r\n"
    assert rev2.status("A", {"MESSAGES": 1, "RECENT": 0}) == b"* STATUS A (MESSAGES 1)\r\n"


def test_every_builder_passes_the_strict_parser() -> None:
    e = ResponseEncoder()
    parts = [
        e.capability(["IMAP4rev1", "IMAP4rev2", "LITERAL+", "AUTH=PLAIN"]),
        e.enabled(["IMAP4REV2"]), e.enabled([]),
        e.flags(["\\Answered", "\\Seen", "$Forwarded"]),
        e.permanentflags(["\\Seen", "\\Deleted", "\\Recent"]),
        e.exists(172), e.recent(1), e.expunge(3),
        e.vanished([41, 43, 44, 45], earlier=True), e.vanished([7]),
        e.list(["\\HasNoChildren", "\\Sent"], "/", "Sent"),
        e.list(["\\Noselect"], None, ""),
        e.list(["\\NonExistent"], "/", "Foo", {"CHILDINFO": b'("SUBSCRIBED")'}),
        e.list([], "/", "a b/ä", lsub=True),
        e.status("INBOX", {"MESSAGES": 3, "UIDNEXT": 4, "UIDVALIDITY": 9, "UNSEEN": 1, "DELETED": 0, "SIZE": 100,
                           "HIGHESTMODSEQ": 7, "APPENDLIMIT": None}),
        e.search([2, 84, 882]), e.search([]), e.search([1], modseq=917162500),
        e.esearch("A285", True, min=7, max=3800), e.esearch("A", False, count=0),
        e.esearch(None, True, all=[1, 2, 3, 9], count=4, modseq=5),
        e.sort([5, 3, 4]), e.sort([]),
        e.thread([(2, []), (3, [(6, [(4, [(23, [])]), (44, [(7, [(96, [])])])])])]), e.thread([]),
        e.namespace([("", "/")]), e.namespace([("", "/")], [("~", "/")], [("#shared/", "/")]),
        e.id({"name": "mailcove", "version": None}), e.id(None),
        e.quota("", [("STORAGE", 10, 512), ("MESSAGE", 1, 100)]),
        e.quotaroot("INBOX", [""]),
        e.fetch_bytes(12, [("UID", b"5"), ("FLAGS", e.flag_list(["\\Seen"])), ("MODSEQ", b"(9)")]),
        e.fetch_bytes(1, [("RFC822.SIZE", b"44827"), ("INTERNALDATE", R.internaldate(0.0))]),
        e.fetch_bytes(2, [("BODY[HEADER.FIELDS (From)]<0>", R.literal(b"From: x\r\n\r\n"))]),
        e.fetch_bytes(3, [("BINARY[1]", R.literal(b"a\x00b", binary=True)), ("BINARY.SIZE[1]", b"3")]),
        e.fetch_bytes(4, [("BODY[]", b"NIL")]),
        R.tagged("a", "OK", "SELECT completed", "READ-WRITE"), R.tagged("b", "NO", "No such mailbox", "TRYCREATE"),
        R.tagged("c", "BAD", "Unknown command"), R.status_response("BAD", "Empty command line"),
        R.status_response("BYE", "Logging out"),
        R.status_response("OK", "x", "APPENDUID 38505 3955"),
        R.status_response("OK", "x", "COPYUID 38505 304,319:320 3956:3958"),
        R.status_response("OK", "x", "HIGHESTMODSEQ 715194045007"), R.status_response("OK", "x", "UIDNEXT 4392"),
        R.status_response("NO", "x", "BADCHARSET (US-ASCII UTF-8)"), R.status_response("OK", "x", "MODIFIED 7,9"),
        R.status_response("OK", "x", "ALERT"), R.status_response("OK", "x", "CLOSED"),
    ]
    rs = [one(p) for p in parts if p]
    kinds = {r.kind for r in rs if isinstance(r, Untagged)}
    assert {"CAPABILITY", "ENABLED", "FLAGS", "EXISTS", "RECENT", "EXPUNGE", "VANISHED", "LIST", "LSUB", "STATUS",
            "SEARCH", "ESEARCH", "SORT", "THREAD", "NAMESPACE", "ID", "QUOTA", "QUOTAROOT", "FETCH", "BYE"} <= kinds


def test_fetch_with_streamed_body() -> None:
    e = ResponseEncoder()
    ref = LiteralRef(11, source=("blob", 0, 11))
    segs = e.fetch(7, [("UID", b"42"), ("BODY[]", ref), ("FLAGS", e.flag_list(["\\Seen"]))])
    assert segs[1] is ref
    wire = b"".join(s if isinstance(s, bytes) else b"hello world" for s in segs)
    got = one(wire)
    assert got.number == 7 and got.data == {"UID": 42, "BODY[]": b"hello world", "FLAGS": ["\\Seen"]}
    segs = e.fetch(1, [("BINARY[1]", LiteralRef(2, binary=True))])
    assert segs[0].endswith(b"~{2}\r\n")


# --- the parser on RFC examples ---------------------------------------------------------------------
RFC_SAMPLES = b"".join([
    b"* OK [CAPABILITY IMAP4rev2 STARTTLS AUTH=GSSAPI] Server ready\r\n",
    b"* PREAUTH IMAP4rev2 server logged in as Smith\r\n",
    b"* BYE Autologout; idle for too long\r\n",
    b"* CAPABILITY IMAP4rev2 STARTTLS AUTH=GSSAPI LOGINDISABLED\r\n",
    b"* 172 EXISTS\r\n* 1 RECENT\r\n",
    b"* OK [UNSEEN 12] Message 12 is first unseen\r\n",
    b"* OK [UIDVALIDITY 3857529045] UIDs valid\r\n",
    b"* OK [UIDNEXT 4392] Predicted next UID\r\n",
    b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n",
    b"* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited\r\n",
    b"* LIST () \"/\" blurdybloop\r\n",
    b"* LIST (\\Noselect) \"/\" foo\r\n",
    b"* LIST (\\Subscribed \\NonExistent) \"/\" \"Fruit/Peach\"\r\n",
    b"* LIST (\\Subscribed) \"/\" \"Fruit/Banana\" (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n",
    b"* LIST (\\Marked \\NoInferiors) NIL \"inbox\"\r\n",
    b"* LIST (\\Drafts) \"/\" \"Drafts\" (\"OLDNAME\" (\"Draft\"))\r\n",
    b"* STATUS blurdybloop (MESSAGES 231 UIDNEXT 44292)\r\n",
    b"* STATUS INBOX (APPENDLIMIT NIL)\r\n",
    b"* ESEARCH (TAG \"A282\") MIN 2 COUNT 3\r\n",
    b"* ESEARCH (TAG \"A283\") ALL 2,10:11\r\n",
    b"* ESEARCH (TAG \"A284\")\r\n",
    b"* ESEARCH (TAG \"A285\") UID MIN 7 MAX 3800\r\n",
    b"* SEARCH 2 5 6\r\n* SEARCH\r\n* SEARCH 2 5 6 7 11 12 18 19 20 23 (MODSEQ 917162500)\r\n",
    b"* SORT 2 84 882\r\n",
    b"* THREAD (166)(167)(168)(169)(172)(170)(171)(173)(174 (175)(176)(178)(181)(180))(179)(177 (183)(182)(188)"
    b"(184)(185)(186)(187)(189))\r\n",
    b"* 2 EXPUNGE\r\n* VANISHED 405,407,410,425\r\n* VANISHED (EARLIER) 300:310,405,411\r\n",
    b"* 23 FETCH (FLAGS (\\Seen) UID 4827313)\r\n",
    b"* 24 FETCH (FLAGS (\\Seen) UID 4827943 MODSEQ (12121231000))\r\n",
    b"* 12 FETCH (BODY[HEADER] {342}\r\n" + b"x" * 340 + b"\r\n)\r\n",
    b"* 3 FETCH (BINARY[1] ~{3}\r\na\x00b BINARY.SIZE[2] 2000)\r\n",
    b"* 12 FETCH (FLAGS (\\Seen) INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" RFC822.SIZE 4286 ENVELOPE "
    b"(\"Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\" \"IMAP4rev2 WG mtg summary and minutes\" "
    b"((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) ((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) "
    b"((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) ((NIL NIL \"imap\" \"cac.washington.edu\")) "
    b"((NIL NIL \"minutes\" \"CNRI.Reston.VA.US\")(\"John Klensin\" NIL \"KLENSIN\" \"MIT.EDU\")) NIL NIL "
    b"\"<B27397-0100000@cac.washington.edu>\") BODY (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL "
    b"\"7BIT\" 3028 92))\r\n",
    b"* 1 FETCH (BODYSTRUCTURE ((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 1152 23 NIL NIL NIL "
    b"NIL)(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\" \"NAME\" \"cc.diff\") "
    b"\"<960723163407.20117h@cac.washington.edu>\""
    b" \"Compiler diff\" \"BASE64\" 4554 73 NIL (\"attachment\" (\"filename\" \"cc.diff\")) \"en\" NIL) \"MIXED\" "
    b"(\"BOUNDARY\" \"x\") NIL (\"en\" \"de\") NIL))\r\n",
    b"* 2 FETCH (BODYSTRUCTURE (\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 100 (NIL \"s\" NIL NIL NIL NIL NIL NIL NIL "
    b"NIL) (\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 10 1) 5))\r\n",
    b"* NAMESPACE ((\"\" \"/\")) ((\"~\" \"/\")) ((\"#shared/\" \"/\")(\"#public/\" \"/\"))\r\n",
    b"* ID (\"name\" \"Cyrus\" \"version\" \"1.5\" \"os\" \"sunos\")\r\n* ID NIL\r\n",
    b"* ENABLED CONDSTORE QRESYNC\r\n",
    b"* QUOTA \"\" (STORAGE 10 512)\r\n* QUOTAROOT INBOX \"\"\r\n* QUOTAROOT comp.mail.mime\r\n",
    b"+ Ready for additional command text\r\n+\r\n",
    b"A142 OK [READ-WRITE] SELECT completed\r\n",
    b"A003 OK [APPENDUID 38505 3955] APPEND completed\r\n",
    b"a OK [COPYUID 38505 304,319:320 3956:3958] Done\r\n",
    b"A004 NO [TRYCREATE] No such mailbox\r\n",
    b"A002 NO [BADCHARSET (UTF-8)] unsupported charset\r\n",
    b"d105 OK [MODIFIED 7,9] Conditional STORE failed\r\n",
    b"A0001 OK [CLOSED] done\r\n",
])


def test_rfc_samples_parse() -> None:
    rs = parse_responses(RFC_SAMPLES)
    assert len(rs) == 54
    by_kind = {}
    for r in rs:
        by_kind.setdefault(getattr(r, "kind", type(r).__name__), []).append(r)
    bs = by_kind["FETCH"][-2].data["BODYSTRUCTURE"]
    assert bs["subtype"] == b"MIXED" and len(bs["parts"]) == 2 and bs["language"] == [b"en", b"de"]
    assert bs["parts"][1]["disposition"] == (b"attachment", [(b"filename", b"cc.diff")])
    assert by_kind["FETCH"][-1].data["BODYSTRUCTURE"]["body"]["size"] == 10
    assert by_kind["ESEARCH"][-1].data == {"tag": "A285", "uid": True, "MIN": 7, "MAX": 3800}
    tagged = [r for r in rs if isinstance(r, Tagged)]
    assert tagged[1].code_data == (38505, "3955") and tagged[2].code_data == (38505, "304,319:320", "3956:3958")


@pytest.mark.parametrize("removed", [
    b"* 1 RECENT\r\n", b"* SEARCH 1 2\r\n", b"* FLAGS (\\Seen \\Recent)\r\n",
    b"* 1 FETCH (FLAGS (\\Recent))\r\n", b"* OK [PERMANENTFLAGS (\\Recent \\*)] x\r\n",
    b"* STATUS x (MESSAGES 1 RECENT 0)\r\n",
])
def test_rev2_mode_refuses_what_rev2_removed(removed: bytes) -> None:
    parse_responses(removed)  # fine for rev1
    with pytest.raises(ResponseSyntaxError):
        parse_responses(removed, rev2=True)


def test_rev2_encoder_output_passes_rev2_mode() -> None:
    e = ResponseEncoder(rev2=True)
    out = (e.flags(["\\Seen", "\\Recent"]) + e.recent(1) + e.permanentflags(["\\Seen", "\\Recent"]) +
           e.status("x", {"MESSAGES": 1, "RECENT": 1}) + e.fetch_bytes(1, [("FLAGS", e.flag_list(["\\Recent"]))]) +
           e.esearch("t", True, all=[1, 2]))
    assert len(parse_responses(out, rev2=True)) == 5


def test_response_size_limit() -> None:
    rp = ResponseParser(max_response=100)
    rp.receive_data(b"* 1 FETCH (BODY[] {500}\r\n" + b"x" * 200)
    with pytest.raises(ResponseSyntaxError):
        rp.next_response()


def test_parser_is_incremental() -> None:
    whole = parse_responses(RFC_SAMPLES)
    rp = ResponseParser()
    got = []
    for i in range(0, len(RFC_SAMPLES), 7):
        rp.receive_data(RFC_SAMPLES[i:i + 7])
        got += rp.responses()
    assert got == whole


@pytest.mark.parametrize("bad", [
    b"* 3 EXISTS\n",  # bare LF
    b"* 3  EXISTS\r\n",  # double SP
    b"* 3 EXISTS \r\n",  # trailing SP
    b"* 0 EXPUNGE\r\n",
    b"* CAPABILITY LITERAL+\r\n",  # no IMAP4rev1/rev2
    b"* OK\r\n",
    b"* OK [UIDNEXT abc] x\r\n",
    b"* OK [UIDNEXT 5 x\r\n",
    b"a MAYBE done\r\n",
    b"* FLAGS (\\Seen\r\n",
    b"* LIST () \"//\" x\r\n",
    b"* LIST () \"/\"\r\n",
    b"* STATUS x (BOGUS 1)\r\n",
    b"* 1 FETCH (FLAGS (\\Seen) UID 0)\r\n",
    b"* 1 FETCH (UID 1 )\r\n",
    b"* 1 FETCH (BODY[HEADER] {5}\r\nabc)\r\n",
    b"* 1 FETCH (BODY[HEADER] \"a\rb\")\r\n",
    b"* 1 FETCH (RFC822 {3}\r\na\x00b)\r\n",
    b"* 1 FETCH (INTERNALDATE \"17-Foo-1996 02:44:25 -0700\")\r\n",
    b"* 1 FETCH (ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL))\r\n",
    b"* 1 FETCH (BODY (\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 3 1 NIL NIL NIL NIL))\r\n",  # ext data in BODY
    b"* 1 FETCH (BODYSTRUCTURE (\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 3))\r\n",  # text without lines
    b"* 1 FETCH (BINARY[1.HEADER] NIL)\r\n",
    b"* THREAD (1 (2))\r\n",  # one nested thread alone
    b"* SEARCH 1 2 \r\n",
    b"* ESEARCH (TAG \"a\") MIN 0\r\n",
    b"* FROB 1\r\n",
    b"A1 OK [READ-WRITE]x\r\n",
])
def test_malformed_responses_are_rejected(bad: bytes) -> None:
    with pytest.raises(ResponseSyntaxError):
        parse_responses(bad)


# --- seqset and utf7 tables -----------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "largest", "resolved"), [
    ("1:*", 5, [(1, 5)]), ("*", 5, [(5, 5)]), ("*:3", 5, [(3, 5)]), ("7:9,1,2,3", 10, [(1, 3), (7, 9)]),
    ("1:*", 0, []), ("5:2", 10, [(2, 5)]), ("4,4,4", 10, [(4, 4)]), ("2:4,3:6", 10, [(2, 6)]),
])
def test_seqset_resolve(text: str, largest: int, resolved: list[tuple[int, int]]) -> None:
    s = SeqSet.parse(text)
    assert s.resolve(largest) == resolved
    assert str(s) == text


def test_seqset_misc() -> None:
    assert SeqSet.parse("10:20").resolve(5) == [(10, 20)]  # UIDs above the last are kept for UID ranges
    assert SeqSet.parse("10:20").clip(5) == []
    assert SeqSet.parse("3:*").clip(5) == [(3, 5)]
    assert SeqSet.parse("$").saved and str(SeqSet.parse("$")) == "$"
    assert compact([5, 1, 2, 3, 9, 10]) == "1:3,5,9:10"
    assert SeqSet.parse("1:*").has_star
    for bad in ("", "0", "1:", ":1", "1,,2", "01", "a", "1:2:3", "4294967296", " 1", "+1"):
        with pytest.raises(SeqSetError):
            SeqSet.parse(bad)


@pytest.mark.parametrize(("name", "wire"), [
    ("INBOX", "INBOX"), ("Entwürfe", "Entw&APw-rfe"), ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
    ("&", "&-"), ("a&b", "a&-b"), ("€x€", "&IKw-x&IKw-"), ("😀", "&2D3eAA-"), ("", ""),
])
def test_utf7_table(name: str, wire: str) -> None:
    assert utf7.encode(name) == wire
    assert utf7.decode(wire) == name
    assert utf7.decode(wire.encode()) == name


@pytest.mark.parametrize("bad", [
    "&", "&Jjo", "&AGE-", "&APw-&APw-", "&AP-", "&APx-", "&2D0-", "ä", "a\x01", "&AP/-", "&APw=-", b"\xc3\xa4",
])
def test_utf7_strict(bad: str | bytes) -> None:
    with pytest.raises(utf7.Utf7Error):
        utf7.decode(bad)
