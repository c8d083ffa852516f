"""The POP3 protocol core, sans I/O (RFC 1939, RFC 2449 CAPA, RFC 5034 AUTH, RFC 2595 STLS).

- `ServerConnection`: bytes in -> commands; replies -> bytes, with the state table.
- `commands`: the command dataclasses and their parser.
- `responses`: Ok / Err / Continue, listings, CAPA.
- `stuffing`: bulk byte-stuffing of message bodies, streamed in chunks.
- `uidl`: our UIDL form and the X-UIDL header of imported mail.
- `sasl`: PLAIN.
- `client`: a client core for tests and the benchmark.
"""

from mailcove.proto.pop3.commands import (
    Auth,
    AuthCancel,
    AuthData,
    Capa,
    Command,
    CommandError,
    Dele,
    List,
    Noop,
    Pass,
    Quit,
    Retr,
    Rset,
    Stat,
    Stls,
    Top,
    Uidl,
    User,
    parse_command,
)
from mailcove.proto.pop3.connection import NEED_DATA, BadCommand, ProtocolUsageError, ServerConnection, State
from mailcove.proto.pop3.responses import Continue, Err, Ok, Reply, capabilities, listing
from mailcove.proto.pop3.stuffing import TERMINATOR, DotStuffer, stuff, unstuff

__all__ = [
    "NEED_DATA",
    "TERMINATOR",
    "Auth",
    "AuthCancel",
    "AuthData",
    "BadCommand",
    "Capa",
    "Command",
    "CommandError",
    "Continue",
    "Dele",
    "DotStuffer",
    "Err",
    "List",
    "Noop",
    "Ok",
    "Pass",
    "ProtocolUsageError",
    "Quit",
    "Reply",
    "Retr",
    "Rset",
    "ServerConnection",
    "Stat",
    "State",
    "Stls",
    "Top",
    "Uidl",
    "User",
    "capabilities",
    "listing",
    "parse_command",
    "stuff",
    "unstuff",
]
