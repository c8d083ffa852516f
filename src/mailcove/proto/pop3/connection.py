"""The server side of a POP3 connection, sans I/O: bytes in, commands out; replies in, bytes out.

    conn = ServerConnection()
    conn.receive_data(data)
    while (event := conn.next_event()) is not NEED_DATA:
        ...                      # a Command, or a BadCommand to answer with -ERR
        out += conn.send(reply)  # exactly one reply (or a Continue during AUTH) per event

The state machine (RFC 1939 section 3: AUTHORIZATION -> TRANSACTION -> UPDATE) is the table
`ALLOWED`; a command outside it is a BadCommand. States change only through the replies the
session sends: +OK to PASS/AUTH enters TRANSACTION, +OK to STLS drops everything the client
pipelined after STLS (RFC 2595 section 4 / CVE-2011-0411), any reply to QUIT closes.
Pipelined commands (RFC 2449 PIPELINING) are handed out one at a time, in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from mailcove.proto.pop3 import commands as c
from mailcove.proto.pop3.responses import Continue, Ok, Reply


class State(Enum):
    AUTHORIZATION = "AUTHORIZATION"
    TRANSACTION = "TRANSACTION"
    UPDATE = "UPDATE"  # only while the session answers QUIT in TRANSACTION
    CLOSED = "CLOSED"


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = _NeedData()

_AUTHZ, _TRANS = State.AUTHORIZATION, State.TRANSACTION
ALLOWED: dict[type[c.Command], frozenset[State]] = {
    c.User: frozenset({_AUTHZ}),
    c.Pass: frozenset({_AUTHZ}),
    c.Auth: frozenset({_AUTHZ}),
    c.Stls: frozenset({_AUTHZ}),
    c.Capa: frozenset({_AUTHZ, _TRANS}),
    c.Quit: frozenset({_AUTHZ, _TRANS}),
    c.Stat: frozenset({_TRANS}),
    c.List: frozenset({_TRANS}),
    c.Retr: frozenset({_TRANS}),
    c.Dele: frozenset({_TRANS}),
    c.Noop: frozenset({_TRANS}),
    c.Rset: frozenset({_TRANS}),
    c.Top: frozenset({_TRANS}),
    c.Uidl: frozenset({_TRANS}),
}

# Lines are bounded. RFC 2449 section 4 allows 255 octets for a command; we accept more because
# an AUTH PLAIN initial response with a long password is longer, but never without bound.
DEFAULT_MAX_LINE = 8192
DEFAULT_MAX_BAD_COMMANDS = 20


@dataclass(frozen=True, slots=True)
class BadCommand:
    """A line that is not a valid command here. Answer with Err(reason); when `fatal`, the
    client has sent too many of them and the connection closes after that reply."""

    reason: str
    fatal: bool = False


Event = c.Command | BadCommand


class ProtocolUsageError(RuntimeError):
    """The session used the core wrongly (a reply without a command, two replies, ...)."""


class ServerConnection:
    def __init__(self, *, max_line: int = DEFAULT_MAX_LINE, max_bad_commands: int = DEFAULT_MAX_BAD_COMMANDS) -> None:
        self.max_line = max_line
        self.max_bad_commands = max_bad_commands
        self.state = State.AUTHORIZATION
        self.bad_commands = 0
        self.user: str | None = None  # set by +OK to USER; PASS needs it
        self._buf = bytearray()
        self._scan = 0  # bytes of _buf already known to hold no LF
        self._skipping = False  # discarding the rest of an over-long line
        self._pending: Event | None = None
        self._in_sasl = False  # a "+ " was sent; the next line is a SASL response

    # --- input -------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        if self.state is State.CLOSED:
            return
        self._buf += data

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def has_complete_line(self) -> bool:
        """Whether next_event() would produce an event without more data (for output batching)."""
        return self._buf.find(b"\n", self._scan) >= 0 or len(self._buf) > self.max_line

    def _next_line(self) -> bytes | BadCommand | None:
        buf = self._buf
        while True:
            nl = buf.find(b"\n", self._scan)
            if nl < 0:
                if len(buf) > self.max_line:
                    # Keep nothing of an over-long line: report it once, then skip to its end.
                    del buf[:]
                    self._scan = 0
                    if not self._skipping:
                        self._skipping = True
                        return BadCommand("Line too long")
                    return None
                self._scan = len(buf)
                return None
            line = bytes(buf[:nl])
            del buf[: nl + 1]
            self._scan = 0
            if self._skipping:
                self._skipping = False
                continue
            if len(line) > self.max_line:
                return BadCommand("Line too long")
            return line[:-1] if line.endswith(b"\r") else line

    def next_event(self) -> Event | _NeedData:
        if self._pending is not None:
            raise ProtocolUsageError(f"reply to {self._pending!r} first")
        if self.state is State.CLOSED:
            return NEED_DATA
        line = self._next_line()
        if line is None:
            return NEED_DATA
        event = line if isinstance(line, BadCommand) else self._parse(line)
        if isinstance(event, BadCommand):
            self.bad_commands += 1
            if self._in_sasl:
                self._in_sasl = False  # a bad SASL line ends the exchange (RFC 5034 section 4)
            if self.bad_commands >= self.max_bad_commands:
                event = BadCommand(event.reason, fatal=True)
        self._pending = event
        return event

    def _parse(self, line: bytes) -> Event:
        try:
            if self._in_sasl:
                return c.parse_auth_response(line)
            cmd = c.parse_command(line)
        except c.CommandError as exc:
            return BadCommand(str(exc))
        if self.state not in ALLOWED[type(cmd)]:
            return BadCommand(f"{cmd.name} is not allowed in the {self.state.value} state")
        if isinstance(cmd, c.Pass) and self.user is None:
            return BadCommand("PASS must follow a successful USER")
        return cmd

    # --- output ------------------------------------------------------------------------------

    def send(self, reply: Reply) -> bytes:
        """The wire bytes of the reply to the pending event, and the state change it causes."""
        event = self._pending
        if event is None:
            raise ProtocolUsageError("no command is waiting for a reply")
        if isinstance(reply, Continue):
            if not isinstance(event, c.Auth | c.AuthData):
                raise ProtocolUsageError("a continuation answers only AUTH")
            self._in_sasl = True
            self._pending = None
            return reply.to_bytes()
        self._pending = None
        self._in_sasl = False
        ok = isinstance(reply, Ok)
        if isinstance(event, BadCommand):
            if ok:
                raise ProtocolUsageError("a bad command is answered with -ERR")
            if event.fatal:
                self._close()
        elif isinstance(event, c.User):
            self.user = event.user if ok else None
        elif isinstance(event, c.Auth) and event.mechanism is None:
            pass  # bare AUTH lists the mechanisms; it logs nobody in
        elif isinstance(event, c.Pass | c.Auth | c.AuthData | c.AuthCancel):
            self.user = None
            if ok:
                if isinstance(event, c.AuthCancel):
                    raise ProtocolUsageError("a cancelled AUTH is answered with -ERR")
                self.state = State.TRANSACTION
        elif isinstance(event, c.Stls):
            if ok:
                # RFC 2595 section 4: anything the client sent after STLS came in plaintext and
                # must not be read as if it had come over TLS.
                self._buf.clear()
                self._scan = 0
                self._skipping = False
                self.user = None
        elif isinstance(event, c.Quit):
            self._close()
        return reply.to_bytes()

    def begin_update(self) -> None:
        """QUIT in TRANSACTION: the session is removing deleted messages (RFC 1939 section 6)."""
        if not isinstance(self._pending, c.Quit) or self.state is not State.TRANSACTION:
            raise ProtocolUsageError("UPDATE follows QUIT in TRANSACTION")
        self.state = State.UPDATE

    def close(self) -> None:
        """The session ends the connection on its own (too many failed logins, a fatal error)."""
        self._pending = None
        self._close()

    def _close(self) -> None:
        self.state = State.CLOSED
        self._buf.clear()
        self._scan = 0
