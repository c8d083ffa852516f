"""COMPRESS=DEFLATE (RFC 4978): OK in clear, then raw deflate both ways. Bytes the client sent
after the command are already compressed: they are taken from the receiver and inflated."""

from __future__ import annotations

import zlib

from mailcove.imap.conn import CORRUPT_TEXT
from mailcove.imap.session import Reply, Session
from mailcove.proto.imap.commands import Compress


async def run(s: Session, cmd: Compress) -> str:
    if cmd.mechanism.upper() != "DEFLATE":
        raise Reply("NO", f"Unknown compression mechanism {cmd.mechanism}", "CANNOT")
    if s.io.compressed:
        raise Reply("NO", "Compression is already active", "COMPRESSIONACTIVE")
    rest = s.receiver.drop_buffer()
    s.tagged(cmd.tag, "OK", "DEFLATE active")
    await s.io.flush()
    s.io.start_compression()
    s.tag_done = cmd.tag
    if rest:
        # Inflated in bounded steps like every later read (ImapIO.read): what does not fit stays
        # in the inflater, so 15 KB of pipelined deflate cannot turn into megabytes of commands
        # processed in one turn of the event loop.
        try:
            data = s.io.inflate_pending(rest)
        except zlib.error:
            await s.bye(CORRUPT_TEXT)  # raises CloseConnection: no traceback
            return ""
        s.receiver.receive_data(data)
    return ""
