"""Byte I/O of one IMAP connection: bounded reads, buffered writes with drain, COMPRESS=DEFLATE.

Output is collected in a list and written when a response is complete or the buffer passes
`FLUSH_AT`, then drained, so a session producing a huge FETCH yields to the event loop every
64 KiB and one big mailbox never holds up other sessions. An idle session holds no buffers: the
list is empty and the zlib objects exist only after COMPRESS.
"""

from __future__ import annotations

import zlib

from mailcove.core.clock import SYSTEM_CLOCK, Clock
from mailcove.net.listeners import Connection

FLUSH_AT = 64 * 1024
READ_CHUNK = 16 * 1024
CORRUPT_TEXT = "Invalid compressed data"


class ImapIO:
    __slots__ = ("_buf", "_compress", "_decompress", "_size", "clock", "conn", "corrupt", "write_timeout")

    def __init__(self, conn: Connection, write_timeout: float = 1800.0, clock: Clock = SYSTEM_CLOCK) -> None:
        self.conn = conn
        self.clock = clock
        # A client that stops reading our output must not hold its session (and the output it
        # has not read) for ever: a drain that would wait gets this deadline.
        self.write_timeout = write_timeout
        self.corrupt = False  # the client's deflate stream broke: read() returned EOF for it
        self._buf: list[bytes] = []
        self._size = 0
        self._compress: zlib._Compress | None = None
        self._decompress: zlib._Decompress | None = None

    @property
    def compressed(self) -> bool:
        return self._compress is not None

    def start_compression(self) -> None:
        # Raw deflate both ways (RFC 4978). Our deflater uses a 4 KiB window and memLevel 5: zlib's
        # defaults (32 KiB, 8) cost ~256 KiB per connection, which 10,000 idle compressed sessions
        # cannot afford; this costs ~32 KiB and any inflater reads it (a smaller window is always
        # compatible). The inflater must accept whatever window the client chose: 32 KiB.
        self._compress = zlib.compressobj(6, zlib.DEFLATED, -12, 5)
        self._decompress = zlib.decompressobj(-15)

    def write(self, data: bytes) -> None:
        self._buf.append(data)
        self._size += len(data)

    def pending(self) -> int:
        return self._size

    async def flush(self) -> None:
        if not self._buf:
            return
        data = b"".join(self._buf)
        self._buf = []
        self._size = 0
        if self._compress is not None:
            data = self._compress.compress(data) + self._compress.flush(zlib.Z_SYNC_FLUSH)
        writer = self.conn.writer
        if writer.is_closing():
            raise ConnectionResetError("connection closed")
        writer.write(data)
        if writer.transport.get_write_buffer_size() > FLUSH_AT:
            await self.clock.wait_for(writer.drain(), self.write_timeout)
        else:
            await writer.drain()

    async def maybe_flush(self) -> None:
        if self._size >= FLUSH_AT:
            await self.flush()

    def inflate_pending(self, data: bytes) -> bytes:
        """Inflate bytes the client sent before compression started (at most one bounded step;
        the rest stays in the inflater for the next `read`)."""
        assert self._decompress is not None
        return self._decompress.decompress(data, READ_CHUNK * 4)

    async def read(self) -> bytes:
        """The next bytes from the client (b"" at EOF), decompressed when COMPRESS is active.
        A decompressed chunk is bounded too, so a deflate bomb cannot inflate without limit in
        one step."""
        if self._decompress is not None and self._decompress.unconsumed_tail:
            try:
                return self._decompress.decompress(self._decompress.unconsumed_tail, READ_CHUNK * 4)
            except zlib.error:
                self.corrupt = True
                return b""
        data = await self.conn.reader.read(READ_CHUNK)
        if not data:
            return b""
        if self._decompress is not None:
            try:
                out = self._decompress.decompress(data, READ_CHUNK * 4)
                while not out and self._decompress.unconsumed_tail:
                    out = self._decompress.decompress(self._decompress.unconsumed_tail, READ_CHUNK * 4)
            except zlib.error:
                self.corrupt = True
                return b""
            if not out and not self._decompress.unconsumed_tail:
                # A sync-flush marker alone; read more rather than report EOF.
                return await self.read()
            return out
        return data
