"""The sans-IO IMAP4rev1 (RFC 3501) + IMAP4rev2 (RFC 9051) protocol core: no sockets, no asyncio.

Input: `ImapReceiver` turns bytes into events:

- a `Command` subclass (frozen dataclass; ``tag``, ``name``, ``uid`` and typed fields), one per command
  in `commands/<cmd>.py`;
- `BadCommand(tag, text, code, status)`: answer it, carry on;
- `NeedContinuation(tag, size, append)`: a synchronising literal: send ``+`` or `reject_literal()`;
- `AppendStart` / `AppendData` / `AppendEnd`: APPEND (and MULTIAPPEND) messages, streamed;
- `IdleDone` (after `start_idle()`), `AuthLine` (after `start_auth()`);
- `ProtocolViolation`: fatal, send BYE;
- `NEED_DATA`.

`drop_buffer()` returns unread bytes for STARTTLS (discard them) and COMPRESS (inflate them).

Output: `responses` builds responses (`ResponseEncoder` holds the per-session rev1/rev2 choices).
Also: `seqset` (sequence sets), `utf7` (modified UTF-7), `client` (a strict client-role response
parser for tests and tools).
"""

from __future__ import annotations

from mailcove.proto.imap.commands import *  # noqa: F403
from mailcove.proto.imap.commands import __all__ as _command_names
from mailcove.proto.imap.events import (
    NEED_DATA,
    AuthLine,
    BadCommand,
    IdleDone,
    NeedContinuation,
    NeedData,
    ProtocolViolation,
)
from mailcove.proto.imap.parser import ParseError
from mailcove.proto.imap.receiver import DEFAULT_MAX_LITERAL, Event, ImapReceiver
from mailcove.proto.imap.responses import LiteralRef, ResponseEncoder
from mailcove.proto.imap.seqset import SeqSet, SeqSetError

__all__ = [
    *_command_names, "DEFAULT_MAX_LITERAL", "NEED_DATA", "AuthLine", "BadCommand", "Event", "IdleDone",
    "ImapReceiver", "LiteralRef", "NeedContinuation", "NeedData", "ParseError", "ProtocolViolation",
    "ResponseEncoder", "SeqSet",
    "SeqSetError",
]
