"""The server role of the SMTP core: bytes in, events out; replies in, bytes out.

    conn = ServerConnection(max_size=..., extensions=frozenset({...}))
    out = conn.send(Reply(220, "", "mx ESMTP"))       # the greeting
    conn.receive_data(bytes_from_socket)
    while (ev := conn.next_event()) is not NEED_DATA:
        ...                                             # policy decides
        out += conn.send(reply)                         # every command event needs one reply

The core owns the protocol state (which command may come when, the transaction, the data
phase) in one transition table, `_ALLOWED`; anything it can judge alone (syntax, sequence, line
length, size, recipient count) comes out as a `Rejected` event carrying its reply. The policy
layer decides everything else (who may send, which recipients exist) and answers with a Reply;
the state moves only on the reply's code, so a refused MAIL leaves no transaction behind.

Commands are parsed lazily, one per next_event(): after a 354 the bytes that follow in the same
buffer are message data, after a 220 to STARTTLS they are discarded by start_tls(). That is what
makes PIPELINING (RFC 2920) safe without special cases."""

from __future__ import annotations

from enum import Enum

from mailcove.proto.smtp import replies as R
from mailcove.proto.smtp.data import DotDecoder
from mailcove.proto.smtp.events import (
    NEED_DATA,
    Auth,
    AuthResponse,
    Bdat,
    ChunkEnd,
    Data,
    DataChunk,
    DataEnd,
    Ehlo,
    Event,
    Helo,
    Help,
    Mail,
    Noop,
    Quit,
    Rcpt,
    Rejected,
    Rset,
    StartTls,
    Vrfy,
    _NeedData,
)
from mailcove.proto.smtp.params import parse_mail, parse_rcpt
from mailcove.proto.smtp.replies import Reply


class State(Enum):
    INIT = "init"  # connected, no HELO/EHLO yet (also after STARTTLS)
    READY = "ready"  # greeted, no transaction
    MAIL = "mail"  # MAIL accepted, no recipient yet
    RCPT = "rcpt"  # at least one recipient accepted
    DATA = "data"  # reading DATA
    BDAT = "bdat"  # reading a BDAT chunk
    BDAT_MORE = "bdat_more"  # a non-LAST chunk was accepted: only BDAT, RSET, NOOP, QUIT
    AUTH = "auth"  # waiting for a SASL response line
    TLS = "tls"  # 220 to STARTTLS sent: no input until start_tls()
    CLOSED = "closed"


class LocalProtocolError(Exception):
    """The caller used the core wrongly (a reply without a command, input after close)."""


_S = State
_ANY = frozenset({_S.INIT, _S.READY, _S.MAIL, _S.RCPT, _S.BDAT_MORE})
_GREETED = frozenset({_S.READY, _S.MAIL, _S.RCPT, _S.BDAT_MORE})
# The transition table's first half: in which states each command may be given. The second half
# is `_after_reply`, which moves the state when the policy's reply says the command succeeded.
_ALLOWED: dict[str, frozenset[State]] = {
    "HELO": _ANY,
    "EHLO": _ANY,
    "MAIL": frozenset({_S.READY}),
    "RCPT": frozenset({_S.MAIL, _S.RCPT}),
    "DATA": frozenset({_S.RCPT}),
    "BDAT": frozenset({_S.RCPT, _S.BDAT_MORE}),
    "RSET": _ANY,
    "NOOP": _ANY,
    "QUIT": _ANY,
    "VRFY": _ANY,
    "HELP": _ANY,
    "STARTTLS": frozenset({_S.READY}),
    "AUTH": frozenset({_S.READY}),
}
# Commands we know but do not offer (RFC 5321 4.5.1 lets a server refuse EXPN; SEND/SOML/SAML
# and TURN are obsolete and dangerous).
_NOT_IMPLEMENTED = frozenset({"EXPN", "SEND", "SOML", "SAML", "TURN", "ETRN", "ATRN", "BURL"})
MAX_AUTH_LINE = 12288  # RFC 4954 section 4
DSN_EXTRA = 1000  # RFC 3461 section 5: MAIL/RCPT lines may grow by the DSN parameters


class ServerConnection:
    def __init__(
        self,
        *,
        max_line: int = 512,
        max_size: int = 0,
        max_recipients: int = 0,
        extensions: frozenset[str] = frozenset(),
    ) -> None:
        self.max_line = max_line
        self.max_size = max_size
        self.max_recipients = max_recipients
        # Keywords the session offers (SIZE, 8BITMIME, SMTPUTF8, DSN, CHUNKING, STARTTLS, AUTH,
        # ...); parameters and commands of an extension not offered are refused. The session may
        # change it (AUTH appears after STARTTLS).
        self.extensions = extensions
        self.state = State.INIT
        self.esmtp = False
        self.tls = False
        self.authenticated = False
        self.smtputf8 = False  # of the current transaction
        self.rcpt_count = 0
        self._buf = bytearray()
        self._skipping = False  # discarding the rest of an over-long line
        self._awaiting: Event | None = None  # the command whose reply is due
        self._queued: list[Event] = []
        self._decoder: DotDecoder | None = None
        self._size = 0
        self._too_big = False
        self._bdat_left = 0
        self._bdat_last = False
        self._bdat_discard = False  # consuming a chunk whose command was refused
        self._bdat_refusal: Reply | None = None
        self._body: str | None = None

    # --- input --------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        if self.state is State.TLS or self.state is State.CLOSED:
            # After the 220 for STARTTLS, plaintext is never read as commands (CVE-2011-0411).
            return
        self._buf += data

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def start_tls(self) -> None:
        """The TLS handshake completed: drop whatever plaintext was pipelined after STARTTLS and
        start over in the state before HELO/EHLO (RFC 3207 section 4.2)."""
        if self.state is not State.TLS:
            raise LocalProtocolError("start_tls() without a 220 to STARTTLS")
        self._buf.clear()
        self._skipping = False
        self.tls = True
        self.esmtp = False
        self._reset_transaction()
        self.state = State.INIT

    # --- events -------------------------------------------------------------------------------

    def next_event(self) -> Event | _NeedData:
        if self._queued:
            ev = self._queued.pop(0)
            self._awaiting = ev
            return ev
        if self._awaiting is not None:
            raise LocalProtocolError(f"a reply to {type(self._awaiting).__name__} is due first")
        state = self.state
        if state is State.DATA:
            return self._data_event()
        if state is State.BDAT:
            return self._bdat_event()
        if state is State.TLS or state is State.CLOSED:
            return NEED_DATA
        line = self._take_line()
        if line is None:
            return NEED_DATA
        if isinstance(line, Reply):
            if state is State.AUTH:
                self.state = State.READY  # an unreadable SASL response ends the exchange
            return Rejected(line)
        if state is State.AUTH:
            ev: Event = AuthResponse(line.strip())
            self._awaiting = ev
            return ev
        return self._command(line)

    def _take_line(self) -> str | Reply | None:
        buf = self._buf
        nl = buf.find(b"\n")
        if self._skipping:
            if nl < 0:
                buf.clear()
                return None
            del buf[: nl + 1]
            self._skipping = False
            return R.LINE_TOO_LONG
        if nl < 0:
            if len(buf) > self.max_line and len(buf) > self._limit_for(buf):
                buf.clear()
                self._skipping = True
            return None
        raw = bytes(buf[:nl])
        del buf[: nl + 1]
        if nl >= self.max_line and nl + 1 > self._limit_for(raw):
            return R.LINE_TOO_LONG
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return R.SYNTAX_ERROR

    def _limit_for(self, line: bytes | bytearray) -> int:
        if self.state is State.AUTH:
            return MAX_AUTH_LINE
        head = bytes(line[:5]).upper()
        if head.startswith((b"MAIL ", b"RCPT ")):
            return self.max_line + DSN_EXTRA
        if head == b"AUTH ":
            return MAX_AUTH_LINE
        return self.max_line

    def _command(self, line: str) -> Event:
        verb, _, arg = line.partition(" ")
        verb = verb.upper()
        allowed = _ALLOWED.get(verb)
        if allowed is None:
            if verb in _NOT_IMPLEMENTED:
                return Rejected(R.NOT_IMPLEMENTED, verb)
            return Rejected(R.UNKNOWN_COMMAND, verb[:16])
        if verb == "BDAT":
            return self._bdat_command(arg)
        if self.state not in allowed:
            return Rejected(self._sequence_reply(verb), verb)
        ev = self._parse(verb, arg)
        if isinstance(ev, Reply):
            return Rejected(ev, verb)
        self._awaiting = ev
        return ev

    def _sequence_reply(self, verb: str) -> Reply:
        s = self.state
        if s is State.INIT:
            return R.NEED_HELO
        if verb == "MAIL":
            return R.NESTED_MAIL if s in (State.MAIL, State.RCPT) else R.BAD_SEQUENCE
        if verb == "RCPT":
            return R.NEED_MAIL if s is State.READY else R.BAD_SEQUENCE
        if verb == "DATA":
            if s is State.MAIL:
                return R.NO_VALID_RCPT
            if s is State.BDAT_MORE:
                return R.BDAT_AFTER_DATA
            return R.NEED_MAIL
        if verb == "STARTTLS" and self.tls:
            return R.TLS_ALREADY
        if verb == "AUTH" and s is not State.READY:
            return R.AUTH_NOT_IN_TXN
        return R.BAD_SEQUENCE

    def _parse(self, verb: str, arg: str) -> Event | Reply:
        ext = self.extensions
        arg = arg.strip(" ")
        if verb == "EHLO" or verb == "HELO":
            if not arg or " " in arg:
                return Reply(501, "5.5.4", f"Syntax: {verb} hostname")
            return Ehlo(arg) if verb == "EHLO" else Helo(arg)
        if verb == "MAIL":
            ev = parse_mail(arg, max_size=self.max_size, extensions=ext if self.esmtp else frozenset())
            if isinstance(ev, Mail) and ev.body == "BINARYMIME" and "CHUNKING" not in ext:
                return R.SYNTAX_ERROR
            return ev
        if verb == "RCPT":
            if self.max_recipients and self.rcpt_count >= self.max_recipients:
                return R.TOO_MANY_RCPTS
            return parse_rcpt(arg, smtputf8=self.smtputf8, extensions=ext if self.esmtp else frozenset())
        if verb == "DATA":
            if arg:
                return R.SYNTAX_ERROR
            if self._body == "BINARYMIME":
                return R.BINARY_NEEDS_BDAT
            return Data()
        if verb == "STARTTLS":
            if "STARTTLS" not in ext:
                return R.NOT_IMPLEMENTED
            if self.tls:
                return R.TLS_ALREADY
            return R.SYNTAX_ERROR if arg else StartTls()
        if verb == "AUTH":
            if "AUTH" not in ext:
                return R.NOT_IMPLEMENTED
            if self.authenticated:
                return R.AUTH_ALREADY
            mech, _, initial = arg.partition(" ")
            if not mech:
                return R.SYNTAX_ERROR
            return Auth(mech.upper(), initial.strip() or None)
        if arg and verb in ("RSET", "QUIT"):
            return R.SYNTAX_ERROR
        if verb == "RSET":
            return Rset()
        if verb == "NOOP":
            return Noop()
        if verb == "QUIT":
            return Quit()
        if verb == "VRFY":
            return Vrfy(arg) if arg else R.SYNTAX_ERROR
        return Help()

    # --- BDAT (RFC 3030) ----------------------------------------------------------------------

    def _bdat_command(self, arg: str) -> Event:
        words = arg.split()
        ok = "CHUNKING" in self.extensions and self.esmtp
        if not ok:
            return Rejected(R.NOT_IMPLEMENTED, "BDAT")
        if not words or len(words) > 2 or not words[0].isdigit() or len(words[0]) > 20:
            # Without a valid size the chunk's end cannot be found: the stream is lost.
            return Rejected(R.SYNTAX_ERROR, "BDAT")
        if len(words) == 2 and words[1].upper() != "LAST":
            return Rejected(R.SYNTAX_ERROR, "BDAT")
        size, last = int(words[0]), len(words) == 2
        refusal: Reply | None = None
        if self.state not in _ALLOWED["BDAT"]:
            refusal = R.NEED_HELO if self.state is State.INIT else (
                R.NO_VALID_RCPT if self.state is State.MAIL else R.NEED_MAIL)
        self._bdat_left, self._bdat_last = size, last
        self._bdat_discard = refusal is not None
        self._bdat_refusal = refusal
        self._bdat_return = self.state
        self.state = State.BDAT
        if refusal is not None:
            return self._bdat_event()  # type: ignore[return-value]
        return Bdat(size, last)

    def _bdat_event(self) -> Event | _NeedData:
        if self._bdat_left:
            buf = self._buf
            if not buf:
                return NEED_DATA
            n = min(self._bdat_left, len(buf))
            chunk = bytes(buf[:n])
            del buf[:n]
            self._bdat_left -= n
            if self._bdat_discard:
                return self._bdat_event()
            self._size += n
            if self.max_size and self._size > self.max_size:
                self._too_big = True
            if not self._too_big:
                return DataChunk(chunk)
            return self._bdat_event()
        if self._bdat_discard:
            refusal = self._bdat_refusal or R.BAD_SEQUENCE
            self._bdat_discard = False
            self._bdat_refusal = None
            self.state = self._bdat_return
            return Rejected(refusal, "BDAT")
        ev = ChunkEnd(self._size, self._bdat_last, self._too_big)
        self._awaiting = ev
        return ev

    # --- DATA ---------------------------------------------------------------------------------

    def _data_event(self) -> Event | _NeedData:
        assert self._decoder is not None
        buf = self._buf
        if not buf:
            return NEED_DATA
        chunk, rest = self._decoder.feed(bytes(buf))
        buf.clear()
        if rest is not None:
            buf += rest
        ev: Event | _NeedData = NEED_DATA
        if chunk:
            self._size += len(chunk)
            if self.max_size and self._size > self.max_size:
                self._too_big = True
            if not self._too_big:
                ev = DataChunk(chunk)
        if rest is not None:
            end = DataEnd(self._size, self._too_big)
            self._decoder = None
            if ev is NEED_DATA:
                self._awaiting = end
                return end
            self._queued.append(end)
        return ev

    # --- replies ------------------------------------------------------------------------------

    def send(self, reply: Reply) -> bytes:
        """Serialise a reply: to the command event last returned, to a Rejected event, the
        greeting, or an unsolicited 421 (which closes)."""
        ev = self._awaiting
        self._awaiting = None
        if reply.code == 421:
            self.state = State.CLOSED
        elif ev is not None:
            self._after_reply(ev, reply)
        return reply.to_bytes()

    _bdat_return: State = State.READY

    def _after_reply(self, ev: Event, reply: Reply) -> None:
        ok = reply.ok
        t = type(ev)
        if t is Mail:
            if ok:
                assert isinstance(ev, Mail)
                self._reset_transaction()
                self.smtputf8 = ev.smtputf8
                self._body = ev.body
                self.state = State.MAIL
        elif t is Rcpt:
            if ok:
                self.rcpt_count += 1
                self.state = State.RCPT
        elif t is Data:
            if reply.code == 354:
                self._decoder = DotDecoder()
                self._size = 0
                self._too_big = False
                self.state = State.DATA
        elif t is DataEnd:
            self._reset_transaction()
            self.state = State.READY
        elif t is ChunkEnd:
            assert isinstance(ev, ChunkEnd)
            if ev.last or not ok:
                self._reset_transaction()
                self.state = State.READY
            else:
                self.state = State.BDAT_MORE
        elif t is Ehlo or t is Helo:
            if ok:
                self._reset_transaction()
                self.esmtp = t is Ehlo
                self.state = State.READY
        elif t is Rset:
            self._reset_transaction()
            self.state = State.READY if self.state is not State.INIT else State.INIT
        elif t is Quit:
            if reply.code == 221:
                self.state = State.CLOSED
        elif t is StartTls:
            if reply.code == 220:
                self.state = State.TLS
        elif t is Auth or t is AuthResponse:
            if reply.code == 334:
                self.state = State.AUTH
            else:
                if reply.code == 235:
                    self.authenticated = True
                self.state = State.READY

    def _reset_transaction(self) -> None:
        self.smtputf8 = False
        self.rcpt_count = 0
        self._body = None
        self._size = 0
        self._too_big = False
        self._decoder = None
