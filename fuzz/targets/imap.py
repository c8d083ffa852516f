"""IMAP: the sans-IO receiver (proto/imap/receiver.py: framing, literals, APPEND streaming) and the
command parser (parser.py and commands/*.py), driven as imap/dispatch.py drives them: the limits
change from the pre-login ones to the full ones at LOGIN, ``+`` or `reject_literal()` answers a
synchronising literal, IDLE and AUTHENTICATE switch the receiver's mode, ENABLE UTF8=ACCEPT switches
mailbox names to UTF-8, STARTTLS and COMPRESS take the unread bytes with `drop_buffer()`.

The receiver's documented error path is `BadCommand` (answer, carry on) and `ProtocolViolation`
(fatal, close); a `ParseError` or any other exception out of `next_event` is a finding. Each
BadCommand is also put through the response encoder: its text comes from the client's bytes, and
the tagged line must stay one line."""

from __future__ import annotations

import dataclasses

from fuzz.common import Finding, seed, split
from mailcove.proto.imap import commands as imap_commands
from mailcove.proto.imap import parser as imap_parser
from mailcove.proto.imap import utf7
from mailcove.proto.imap.commands import (
    AppendData,
    AppendEnd,
    AppendStart,
    Authenticate,
    Command,
    Compress,
    Enable,
    Fetch,
    Idle,
    Login,
    Logout,
    StartTLS,
)
from mailcove.proto.imap.events import (
    NEED_DATA,
    AuthLine,
    BadCommand,
    IdleDone,
    NeedContinuation,
    ProtocolViolation,
)
from mailcove.proto.imap.receiver import ImapReceiver
from mailcove.proto.imap.responses import ResponseEncoder
from mailcove.proto.imap.seqset import SeqSet

INSTRUMENT = ["mailcove.proto.imap"]
MODULES = ["src/mailcove/proto/imap/receiver.py", "src/mailcove/proto/imap/parser.py",
           "src/mailcove/proto/imap/seqset.py", "src/mailcove/proto/imap/utf7.py",
           "src/mailcove/proto/imap/events.py",
           *(f"src/mailcove/proto/imap/commands/{m}.py" for m in (
               "__init__", "append", "authenticate", "base", "capability", "check", "close", "compress", "copy",
               "create", "delete", "enable", "expunge", "fetch", "id", "idle", "list", "login", "logout",
               "namespace", "noop", "quota", "rename", "search", "select", "sort", "starttls", "status", "store",
               "subscribe", "thread", "unselect", "unsubscribe"))]

# The session's limits (imap/session.py): before login, then after.
PRE_AUTH = {"max_line": 65536, "max_literal": 4096, "max_command": 65536}
FULL = {"max_line": 65536, "max_literal": 64 * 1024 * 1024, "max_command": 1 << 20}
SMALL = {"max_line": 200, "max_literal": 500, "max_command": 2000}

COMMANDS = [
    b'a CAPABILITY', b'a1 NOOP', b'a ID ("name" "sodr" "version" NIL)', b'a ID NIL',
    b'a ENABLE IMAP4rev2 condstore', b'a SELECT INBOX', b'a SELECT "Entw&APw-rfe"', b'a SELECT INBOX (CONDSTORE)',
    b'a SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))',
    b'a SELECT INBOX (QRESYNC (67890007 90060115194045000 1:29997 (5000,7500,9000 15000,22500,27000)))',
    b'a EXAMINE Archive/2024', b'a CREATE Foo', b'a CREATE MySpecialTrash (USE (\\Trash))', b'a DELETE Foo',
    b'a RENAME Foo Bar/Baz', b'a SUBSCRIBE #news', b'a UNSUBSCRIBE "x y"', b'a LIST "" *', b'a LIST "" %/%',
    b'a LIST (SUBSCRIBED) "" "*" RETURN (CHILDREN)', b'a LIST "" ("INBOX" "Drafts") RETURN (SPECIAL-USE SUBSCRIBED)',
    b'a LIST "" % RETURN (STATUS (MESSAGES UNSEEN))', b'a LSUB "#news." "comp.mail.*"', b'a NAMESPACE',
    b'a STATUS blurdybloop (UIDNEXT MESSAGES SIZE HIGHESTMODSEQ APPENDLIMIT)', b'a CHECK', b'a CLOSE',
    b'a UNSELECT', b'a EXPUNGE', b'a UID EXPUNGE 3000:3002', b'a SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"',
    b'a SEARCH CHARSET UTF-8 TEXT {6+}\r\nXX\xc3\xa4XX',
    b'a UID SEARCH RETURN (MIN COUNT) OR (SEEN DRAFT) UNKEYWORD $Junk',
    b'a SEARCH RETURN () 1:5,*', b'a SEARCH $',
    b'a SEARCH HEADER Message-ID "<x@y>" LARGER 100 SMALLER 5000 UID 1:* NEW OLD RECENT',
    b'a SEARCH MODSEQ "/flags/\\\\draft" all 620162338 SENTBEFORE "2-Mar-2020" YOUNGER 3600',
    b'a UID SORT (REVERSE ARRIVAL SUBJECT) UTF-8 ALL', b'a SORT RETURN (ALL COUNT) (DISPLAYFROM) US-ASCII UNSEEN',
    b'a THREAD REFERENCES UTF-8 SINCE 5-MAR-2000', b'a UID THREAD ORDEREDSUBJECT US-ASCII ALL',
    b'a FETCH 2:4 ALL', b'a FETCH 1 FULL', b'a UID FETCH 1:* (FLAGS)',
    b'a FETCH 1 (BODY[] BODY.PEEK[HEADER] BODY[TEXT]<0.2048> BODY[1.2.MIME] BODY[3.HEADER.FIELDS (From To)] '
    b'BODY.PEEK[HEADER.FIELDS.NOT (Received)] BODY[2] BODY[4.TEXT])',
    b'a FETCH 1 (BINARY[1] BINARY.PEEK[1.2]<10.20> BINARY.SIZE[2] BINARY[])',
    b'a FETCH 1 (RFC822 RFC822.HEADER RFC822.TEXT RFC822.SIZE ENVELOPE BODY BODYSTRUCTURE UID MODSEQ INTERNALDATE)',
    b'a UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)', b'a STORE 2:4 +FLAGS (\\Deleted)',
    b'a STORE 1 FLAGS.SILENT ()', b'a STORE 1 -flags \\Seen $Label1',
    b'a UID STORE 1:* (UNCHANGEDSINCE 200) +FLAGS.SILENT (\\seen)', b'a COPY 2:4 MEETING', b'a UID MOVE 42:69 foo',
    b'a MOVE $ Trash', b'a GETQUOTA ""', b'a GETQUOTAROOT INBOX', b'a SETQUOTA "" (STORAGE 512)',
]


def _session(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\r\n" for line in lines)


SESSIONS = [
    _session([b"a1 CAPABILITY", b"a2 LOGIN {3}\r\nbob {6+}\r\nsecret", *COMMANDS[:30], b"z LOGOUT"]),
    _session([b"a0 LOGIN bob secret", *COMMANDS[30:], b"z LOGOUT"]),
    b"a1 CAPABILITY\r\na2 LOGIN {3}\r\nbob {6+}\r\nsecret\r\na3 ENABLE IMAP4rev2\r\n"
    b'a4 LIST "" * RETURN (SPECIAL-USE SUBSCRIBED)\r\na5 SELECT INBOX (CONDSTORE)\r\na6 UID FETCH 1:* (FLAGS)\r\n'
    b"a7 IDLE\r\nDONE\r\na8 APPEND INBOX (\\Seen) {12}\r\nFrom: x\r\n\r\nhi ~{4+}\r\n\x00\x01\r\n\r\n"
    b"a9 SEARCH CHARSET UTF-8 TEXT {2}\r\n\xc3\xa4\r\nb1 BOGUS\r\nb2 AUTHENTICATE PLAIN\r\nAGEAYg==\r\n"
    b"b3 STORE 1:3 +FLAGS.SILENT (\\Deleted)\r\nb4 LOGOUT\r\n",
    b"a AUTHENTICATE PLAIN AGEAYg==\r\nb ENABLE UTF8=ACCEPT\r\nc SELECT \"\xc3\xa4rger\"\r\n"
    b'd APPEND "Sent" (\\Seen $Forwarded) "17-Jul-1996 02:44:25 -0700" {5+}\r\nhello UTF8 (~{3+}\r\nabc)'
    b" {2+}\r\nxy\r\ne APPEND INBOX UTF8 (~{2}\r\nhi)\r\nf APPEND INBOX {1}\r\nx\r\ng IDLE\r\nnope\r\n"
    b"h STARTTLS\r\ni NOOP\r\n",
    b"a LOGIN bob secret\r\nb COMPRESS DEFLATE\r\nc NOOP\r\n"
    b"d UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (Subject)])\r\n"
    b"e SEARCH OR OR (SUBJECT {3}\r\nabc) NOT (BODY x) (HEADER \"X-A\" \"\") SENTON 1-Jan-2000\r\n"
    b"f LIST \"\" \"****%%%%z\"\r\ng CREATE \"a..b\"\r\nh SELECT \"&Jjo-\"\r\ni LOGOUT\r\n",
    b"* NOOP\r\n\r\na\r\na BOGUS\r\na UID BOGUS\r\na APPEND\r\na LOGIN {99999999}\r\na LOGIN {5+}\r\nabcde\r\n"
    b"a FETCH 1 ((((((((((((((((((FLAGS))))))))))))))))))\r\na SELECT INBOX ~{3}\r\na NOOP {2}\r\n",
]
SEEDS = [seed(s) for s in SESSIONS] + [seed(SESSIONS[2], 0, 5), seed(SESSIONS[3], 0x04, 0),
                                       seed(SESSIONS[2], 0x08, 11), seed(SESSIONS[5], 0x01, 0)]
TOKENS = [b"\r\n", b"{4}\r\n", b"{4+}\r\n", b"~{4}\r\n", b" UID ", b" FETCH ", b" STORE ", b" SEARCH ", b" SORT ",
          b" THREAD ", b" APPEND ", b" LOGIN ", b" AUTHENTICATE ", b" SELECT ", b" EXAMINE ", b" LIST ", b" LSUB ",
          b" STATUS ", b" ENABLE ", b" IDLE", b"DONE", b" COPY ", b" MOVE ", b" EXPUNGE", b" CREATE ", b" RENAME ",
          b" COMPRESS DEFLATE", b" STARTTLS", b" ID ", b" SETQUOTA ", b" GETQUOTAROOT ", b" NAMESPACE",
          b"BODY.PEEK[", b"BINARY[", b"HEADER.FIELDS.NOT (", b"]<0.10>", b"(CHANGEDSINCE 1 VANISHED)",
          b"(UNCHANGEDSINCE 2)", b"+FLAGS.SILENT", b"(\\Seen \\Deleted)", b"RETURN (", b"CHARSET UTF-8",
          b"1:*", b"$", b"*", b"%", b"NIL", b"UTF8 (", b"\"17-Jul-1996 02:44:25 -0700\"", b"1-Feb-1994",
          b"IMAP4rev2", b"UTF8=ACCEPT", b"QRESYNC (", b"&APw-", b"\xc3\xa4", b" OR ", b" NOT ", b"MODSEQ ",
          b"SPECIAL-USE", b"SUBSCRIBED", b"\"", b"\\"]

_MAX_EVENTS = 20_000


class _Session:
    def __init__(self, policy: int) -> None:
        self.policy = policy
        limits = SMALL if policy & 0x01 else PRE_AUTH
        self.rcv = ImapReceiver(**limits, max_depth=8 if policy & 0x01 else 16,
                                max_nonsync=4096 if policy & 0x02 else None, utf8=bool(policy & 0x10))
        self.enc = ResponseEncoder(rev2=bool(policy & 0x10), utf8=bool(policy & 0x10))
        self.closed = False
        self.events = 0
        self.append: AppendStart | None = None
        self.append_got = 0
        self.feed_back: bytes | None = None

    def pump(self, data: bytes) -> None:
        if self.closed:
            return
        self.rcv.receive_data(data)
        while not self.closed:
            ev = self.rcv.next_event()
            if ev is NEED_DATA:
                if self.feed_back is not None:  # COMPRESS: "inflated" bytes come back in
                    back, self.feed_back = self.feed_back, None
                    self.rcv.receive_data(back)
                    continue
                return
            self.events += 1
            if self.events > _MAX_EVENTS:
                raise Finding("the receiver keeps producing events without input")
            self.on_event(ev)

    def on_event(self, ev: object) -> None:
        p = self.policy
        rcv = self.rcv
        if isinstance(ev, ProtocolViolation):
            if ev.tag:
                self._one_line(self.enc.tagged(ev.tag, "BAD", ev.text))
            self._one_line(self.enc.untagged_status("BYE", ev.text))
            if rcv.next_event() != ev:
                raise Finding("a ProtocolViolation is not sticky")
            self.closed = True
        elif isinstance(ev, BadCommand):
            if ev.status not in ("BAD", "NO"):
                raise Finding(f"a BadCommand with status {ev.status!r}")
            self.append = None
            self._one_line(self.enc.tagged(ev.tag or "*", ev.status, ev.text, ev.code))
        elif isinstance(ev, NeedContinuation):
            if p & 0x04:
                rcv.reject_literal()
                self.append = None
        elif isinstance(ev, AppendStart):
            if self.append is not None and ev.index == 0:
                raise Finding("a new APPEND started inside another")
            self.append, self.append_got = ev, 0
            if ev.size > rcv.max_literal:
                raise Finding(f"an APPEND literal over the limit: {ev.size}")
            if p & 0x08 and ev.index == 1:
                rcv.reject_literal()
                self.append = None
        elif isinstance(ev, AppendData):
            if self.append is None:
                raise Finding("APPEND data without an APPEND")
            self.append_got += len(ev.data)
            if self.append_got > self.append.size:
                raise Finding("more APPEND data than its literal announced")
        elif isinstance(ev, AppendEnd):
            self.append = None
        elif isinstance(ev, Command):
            self.on_command(ev)
        elif not isinstance(ev, IdleDone | AuthLine):
            raise Finding(f"an event of an unknown kind: {ev!r}")

    def on_command(self, cmd: Command) -> None:
        rcv = self.rcv
        if not cmd.tag:
            raise Finding(f"a command without a tag: {cmd!r}")
        for value in vars_of(cmd):
            if isinstance(value, SeqSet):
                _use_seqset(value)
        for field in ("mailbox", "old", "new"):
            name = getattr(cmd, field, None)
            if isinstance(name, str) and utf7.decode(utf7.encode(name)) != name:
                # LIST and STATUS send a name to a rev1 client in modified UTF-7
                raise Finding(f"mailbox name {name!r} does not survive modified UTF-7")
        if isinstance(cmd, Fetch):
            for att in cmd.items:  # the FETCH response names its items
                att.response_name()
                str(att)
        if isinstance(cmd, Login) or (isinstance(cmd, Authenticate) and cmd.initial is not None):
            if not self.policy & 0x20:
                rcv.max_line, rcv.max_literal, rcv.max_command = (
                    FULL["max_line"], FULL["max_literal"], FULL["max_command"])
        elif isinstance(cmd, Authenticate):
            rcv.start_auth()
        elif isinstance(cmd, Idle):
            rcv.start_idle()
        elif isinstance(cmd, Enable):
            if {"UTF8=ACCEPT", "IMAP4REV2"} & set(cmd.capabilities):
                rcv.utf8 = True
        elif isinstance(cmd, StartTLS):
            rcv.drop_buffer()
        elif isinstance(cmd, Compress):
            self.feed_back = rcv.drop_buffer()
        elif isinstance(cmd, Logout):
            self.closed = True
        self._one_line(self.enc.tagged(cmd.tag, "OK", f"{cmd.name} completed"))

    @staticmethod
    def _one_line(out: bytes) -> None:
        if not out.endswith(b"\r\n") or b"\n" in out[:-1]:
            raise Finding(f"a response that is not one line: {out[:300]!r}")


def vars_of(cmd: Command) -> list[object]:
    return [getattr(cmd, f.name) for f in dataclasses.fields(cmd)]


def _use_seqset(s: SeqSet) -> None:
    """What the session does with a client's set: resolve it against the mailbox (by ranges, never
    by expanding 1:4294967295), test membership; and its text form must read back the same."""
    for largest in (0, 7, 0xFFFFFFFF):
        ranges = s.resolve(largest)
        if any(a > b or a < 1 for a, b in ranges) or ranges != sorted(ranges):
            raise Finding(f"{s} resolved against {largest}: {ranges}")
        s.clip(largest)
        s.contains(5, largest)
    sum(1 for _ in zip(range(100), s.iter(1000), strict=False))
    if SeqSet.parse(str(s)) != s:
        raise Finding(f"SeqSet {s!r} does not read back from {str(s)!r}")


def one_input(data: bytes) -> None:
    # The parser's module-level caches would make coverage depend on earlier inputs.
    imap_commands._CACHE.clear()
    imap_parser._SEQSET_CACHE.clear()
    policy, reads = split(data)
    session = _Session(policy)
    for chunk in reads:
        session.pump(chunk)
