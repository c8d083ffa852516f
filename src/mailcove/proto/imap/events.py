"""Events `ImapReceiver.next_event()` returns besides parsed commands (see `commands`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["NEED_DATA", "AuthLine", "BadCommand", "IdleDone", "NeedContinuation", "NeedData", "ProtocolViolation"]


class NeedData:
    """The receiver needs more bytes (`receive_data`) before it can return another event."""

    _instance: NeedData | None = None

    def __new__(cls) -> NeedData:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = NeedData()


@dataclass(frozen=True, slots=True)
class BadCommand:
    """A command the session must refuse and then carry on: answer ``<tag> <status> [<code>] <text>``
    (``* BAD ...`` when ``tag`` is None: the line had no usable tag). ``status`` is "BAD" for
    syntax errors and "NO" for a few semantic refusals the parser already knows (an APPEND literal
    over the limit: ``NO [TOOBIG]``; an unknown SEARCH charset: ``NO [BADCHARSET ...]``).
    The session counts consecutive BADs and says BYE past its limit."""

    tag: str | None
    text: str
    code: str | None = None
    status: str = "BAD"


@dataclass(frozen=True, slots=True)
class NeedContinuation:
    """The client announced a synchronising literal of ``size`` bytes and waits. The session sends
    ``+ Ready`` (responses.continuation), or calls `ImapReceiver.reject_literal()` and answers
    the tag with NO/BAD (the client then never sends the literal). ``append`` is True when this is
    an APPEND message (an `AppendStart` came just before)."""

    tag: str
    size: int
    append: bool = False


@dataclass(frozen=True, slots=True)
class ProtocolViolation:
    """Fatal: the input cannot be resynchronised (a line longer than the limit). Send
    ``* BYE <text>`` (or a tagged BAD when ``tag`` is known, then BYE) and close. Every later
    `next_event` returns the same violation."""

    text: str
    tag: str | None = None


@dataclass(frozen=True, slots=True)
class IdleDone:
    """``DONE`` arrived in IDLE mode (`ImapReceiver.start_idle`). Any other line in IDLE mode yields
    ``BadCommand(None, ...)``; either way the receiver is back in command mode."""


@dataclass(frozen=True, slots=True)
class AuthLine:
    """One client response in AUTHENTICATE (`ImapReceiver.start_auth`): the raw line without CRLF.
    ``cancelled`` is True for ``*`` (RFC 9051 §6.2.2: answer BAD)."""

    line: bytes

    @property
    def cancelled(self) -> bool:
        return self.line == b"*"
