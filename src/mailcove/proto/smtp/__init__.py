"""The sans-IO SMTP core (RFC 5321 with PIPELINING, 8BITMIME, SMTPUTF8, SIZE,
ENHANCEDSTATUSCODES, STARTTLS, CHUNKING, DSN and AUTH): a server role and a client role that
share the reply type and the data encoding. No asyncio, no sockets: smtp/server.py (and later the
outbound queue) pump bytes through it."""

from mailcove.proto.smtp.client import ClientConnection, ClientProtocolError
from mailcove.proto.smtp.data import DotDecoder, dot_stuff
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
    ServerReply,
    StartTls,
    Vrfy,
)
from mailcove.proto.smtp.replies import Reply
from mailcove.proto.smtp.server import LocalProtocolError, ServerConnection, State

__all__ = [
    "NEED_DATA",
    "Auth",
    "AuthResponse",
    "Bdat",
    "ChunkEnd",
    "ClientConnection",
    "ClientProtocolError",
    "Data",
    "DataChunk",
    "DataEnd",
    "DotDecoder",
    "Ehlo",
    "Event",
    "Helo",
    "Help",
    "LocalProtocolError",
    "Mail",
    "Noop",
    "Quit",
    "Rcpt",
    "Rejected",
    "Reply",
    "Rset",
    "ServerConnection",
    "ServerReply",
    "StartTls",
    "State",
    "Vrfy",
    "dot_stuff",
]
