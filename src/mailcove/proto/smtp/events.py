"""Events the server core produces from client bytes (and the client core from server bytes).

Frozen dataclasses, as in h11: a session matches on their type. Command events carry parsed,
validated arguments; the policy layer never sees raw command lines."""

from __future__ import annotations

from dataclasses import dataclass, field

from mailcove.proto.smtp.replies import Reply


class _NeedData:
    """Sentinel: the core needs more bytes before it can produce the next event."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = _NeedData()


@dataclass(frozen=True, slots=True)
class Event:
    pass


@dataclass(frozen=True, slots=True)
class Helo(Event):
    name: str


@dataclass(frozen=True, slots=True)
class Ehlo(Event):
    name: str


@dataclass(frozen=True, slots=True)
class Mail(Event):
    """MAIL FROM. `sender` is "" for the null reverse-path; a source route is already removed."""

    sender: str
    size: int | None = None
    body: str | None = None  # "7BIT" | "8BITMIME" | "BINARYMIME"
    smtputf8: bool = False
    ret: str | None = None  # "FULL" | "HDRS"
    envid: str | None = None  # decoded xtext
    auth: str | None = None  # RFC 4954 AUTH= (decoded xtext), informational


@dataclass(frozen=True, slots=True)
class Rcpt(Event):
    recipient: str
    notify: tuple[str, ...] = ()
    orcpt: str | None = None  # "rfc822;addr" with the xtext decoded


@dataclass(frozen=True, slots=True)
class Data(Event):
    pass


@dataclass(frozen=True, slots=True)
class Bdat(Event):
    """A BDAT command: `size` bytes of message follow at once and arrive as DataChunk events,
    then ChunkEnd asks for the reply."""

    size: int
    last: bool


@dataclass(frozen=True, slots=True)
class DataChunk(Event):
    """Message bytes, dot-unstuffed (DATA) or raw (BDAT). Never a line-by-line split."""

    data: bytes


@dataclass(frozen=True, slots=True)
class DataEnd(Event):
    """The end of DATA (CRLF.CRLF). `size` is the unstuffed message size; `too_big` says the
    core stopped passing chunks on because the message passed the size limit."""

    size: int
    too_big: bool = False


@dataclass(frozen=True, slots=True)
class ChunkEnd(Event):
    """All bytes of one BDAT chunk arrived. `size` is the message size so far."""

    size: int
    last: bool
    too_big: bool = False


@dataclass(frozen=True, slots=True)
class Rset(Event):
    pass


@dataclass(frozen=True, slots=True)
class Noop(Event):
    pass


@dataclass(frozen=True, slots=True)
class Quit(Event):
    pass


@dataclass(frozen=True, slots=True)
class Vrfy(Event):
    argument: str


@dataclass(frozen=True, slots=True)
class Help(Event):
    pass


@dataclass(frozen=True, slots=True)
class StartTls(Event):
    pass


@dataclass(frozen=True, slots=True)
class Auth(Event):
    mechanism: str  # upper-cased
    initial: str | None = None  # the initial response as sent (base64 or "=")


@dataclass(frozen=True, slots=True)
class AuthResponse(Event):
    """A line sent in answer to a 334 challenge (base64, or "*" to cancel)."""

    line: str


@dataclass(frozen=True, slots=True)
class Rejected(Event):
    """The core refused the input itself (syntax, sequence, length, limits). The session sends
    `reply` as it is and may count it as an error."""

    reply: Reply
    command: str = ""


@dataclass(frozen=True, slots=True)
class ServerReply(Event):
    """Client role: one complete (possibly multi-line) reply."""

    reply: Reply
    lines: tuple[str, ...] = field(default_factory=tuple)
