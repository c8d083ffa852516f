"""`ImapReceiver`: bytes in, complete commands (or streamed APPEND messages) out. No I/O.

Framing, not parsing, is what this module does: it cuts the input into lines, follows literal
announcements (``{n}``, ``{n+}``, ``~{n}``) and collects a command's lines and literals until the
line that ends it, then hands the whole to `commands.parse_command`. Memory is bounded at every step:
a line may be at most ``max_line`` bytes, a non-APPEND command (lines plus literals) at most
``max_command``, each of its literals at most ``max_arg_literal`` (when set: a small cap before
login), and an APPEND message is never held: it leaves as `AppendData` chunks as it arrives.
Refused literals the client sends anyway (``{n+}``) are skipped by counting, not buffered.
An APPEND message in the RFC 6855 form ``UTF8 (~{n}`` has its closing ")" checked and eaten here,
at the start of the line after the literal (see `commands.append` for why it needs no ENABLE).
"""

from __future__ import annotations

import re
from collections import deque

from mailcove.proto.imap.commands import Command, parse_command
from mailcove.proto.imap.commands.append import AppendData, AppendEnd, AppendStart, parse_message_prefix
from mailcove.proto.imap.events import (
    NEED_DATA,
    AuthLine,
    BadCommand,
    IdleDone,
    NeedContinuation,
    NeedData,
    ProtocolViolation,
)
from mailcove.proto.imap.parser import ParseError, Parser

__all__ = ["DEFAULT_MAX_LITERAL", "Event", "ImapReceiver"]

Event = (Command | BadCommand | NeedContinuation | AppendStart | AppendData | AppendEnd | IdleDone | AuthLine
         | ProtocolViolation | NeedData)

DEFAULT_MAX_LITERAL = 64 * 1024 * 1024  # APPENDLIMIT
_ANNOUNCE = re.compile(rb"(~?)\{(\d{1,20})(\+?)\}\Z")
_TAG = re.compile(rb"[^(){ \x00-\x1f\x7f%*\"\\+\x80-\xff]+(?= )")
_APPEND = re.compile(rb"[^ ]+ APPEND ", re.IGNORECASE)

# modes
_LINE, _LITERAL, _APPEND_DATA, _SKIP, _IDLE, _AUTH, _DEAD = range(7)


class ImapReceiver:
    """Server-side IMAP input framing and parsing.

    Feed bytes with `receive_data`, then call `next_event` until it returns `NEED_DATA`.
    Events: a `Command` subclass, `BadCommand`, `NeedContinuation`, `AppendStart` / `AppendData` /
    `AppendEnd`, `IdleDone`, `AuthLine`, `ProtocolViolation`, `NEED_DATA`.

    ``utf8`` (settable at any time) selects UTF-8 mailbox names (after ENABLE IMAP4rev2 or
    UTF8=ACCEPT) instead of modified UTF-7. ``max_nonsync``: set to 4096 when advertising LITERAL-
    instead of LITERAL+ (RFC 7888 §5): a larger non-synchronising literal gets ``BAD [TOOBIG]`` and
    is skipped. ``max_arg_literal`` (settable at any time; None: only ``max_command`` bounds them):
    the largest literal inside a command other than APPEND's message; a larger one gets
    ``BAD [TOOBIG]`` before any of it is read (a non-synchronising one is skipped by counting).
    """

    def __init__(self, *, max_line: int = 65536, max_literal: int = DEFAULT_MAX_LITERAL, max_depth: int = 16,
                 max_command: int = 1 << 20, max_nonsync: int | None = None, utf8: bool = False,
                 max_arg_literal: int | None = None) -> None:
        self.max_line = max_line
        self.max_arg_literal = max_arg_literal
        self.max_literal = max_literal
        self.max_depth = max_depth
        self.max_command = max_command
        self.max_nonsync = max_nonsync
        self.utf8 = utf8
        self._buf = bytearray()
        self._pos = 0
        self._scan = 0  # where the search for LF resumes (avoid rescanning a slow line)
        self._mode = _LINE
        self._cmd = bytearray()  # the current command so far (lines with CRLF, literal data)
        self._tag: str | None = None
        self._remaining = 0  # bytes left in the current literal
        self._literal_sync = False
        self._literal_started = False
        self._discard = False  # after a refused literal: skip the rest of that command
        self._append_tag: str | None = None  # set between messages of an APPEND
        self._append_mailbox = ""
        self._append_count = 0
        self._append_close = False  # the current message was ``UTF8 (~{n}``: its ")" is due next
        self._events: deque[Event] = deque()
        self._violation: ProtocolViolation | None = None

    # --- public API ---------------------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        """Add received bytes. (EOF is the session's business: it simply stops feeding.)"""
        if self._violation is None:
            self._buf += data

    def next_event(self) -> Event:
        """The next event, or `NEED_DATA`."""
        if self._events:
            return self._events.popleft()
        if self._violation is not None:
            return self._violation
        while True:
            ev = self._step()
            if ev is not None:
                return ev  # events _step queued come after the one it returned
            if self._events:
                return self._events.popleft()

    def reject_literal(self) -> None:
        """Refuse the literal just announced (after `NeedContinuation`, or after `AppendStart` /
        any `AppendData`, even the last one): the session answers the command itself. A synchronising literal the
        client has not started sending is simply forgotten; otherwise its remaining bytes and the
        rest of the command are skipped unread. Either way the current command (and any
        earlier messages of a MULTIAPPEND) is dropped."""
        if self._mode not in (_LITERAL, _APPEND_DATA):
            if self._append_tag is not None and self._mode == _LINE:
                # the last message's bytes are all in, but its command is not over: skip the rest
                self._events.clear()
                self._append_tag = None
                self._discard = True
            return
        self._events.clear()
        self._cmd.clear()
        self._tag = None
        self._append_tag = None
        if self._literal_sync and not self._literal_started:
            self._mode = _LINE
            self._remaining = 0
        else:
            self._mode = _SKIP
            self._discard = True

    def start_idle(self) -> None:
        """After answering IDLE with ``+``: the next line must be DONE (-> `IdleDone`)."""
        self._mode = _IDLE

    def start_auth(self) -> None:
        """After sending an AUTHENTICATE challenge: the next line is an `AuthLine`."""
        self._mode = _AUTH

    def drop_buffer(self) -> bytes:
        """Remove and return every byte received but not yet consumed, and forget any partial
        command. STARTTLS: discard the result (pipelined plaintext must not be read as if it came
        over TLS). COMPRESS: the result is compressed data; inflate it and feed it back."""
        rest = bytes(self._buf[self._pos:])
        self._buf.clear()
        self._pos = self._scan = 0
        self._cmd.clear()
        self._tag = None
        self._mode = _LINE
        self._append_tag = None
        self._discard = False
        return rest

    @property
    def buffered(self) -> int:
        """Bytes received and not yet consumed."""
        return len(self._buf) - self._pos

    @property
    def in_command(self) -> bool:
        """Part of a command has arrived and the rest has not (a partial line, a literal being
        sent, an APPEND between messages, an AUTHENTICATE exchange). Waiting for IDLE's DONE, or
        between commands, is not."""
        if self._mode == _IDLE:
            return self.buffered > 0
        return (self.buffered > 0 or bool(self._cmd) or self._append_tag is not None
                or self._mode in (_LITERAL, _APPEND_DATA, _SKIP, _AUTH))

    # --- framing -------------------------------------------------------------------------------
    def _compact(self) -> None:
        if self._pos > 65536 or self._pos == len(self._buf):
            del self._buf[:self._pos]
            self._scan -= self._pos
            self._pos = 0

    def _step(self) -> Event | None:
        mode = self._mode
        if mode in (_LITERAL, _APPEND_DATA, _SKIP):
            return self._step_literal()
        buf = self._buf
        lf = buf.find(b"\n", max(self._scan, self._pos))
        if lf < 0:
            if len(buf) - self._pos > self.max_line + 1:  # + 1: the CR of a line at the limit
                return self._die(f"Line longer than {self.max_line} bytes")
            self._scan = len(buf)
            self._compact()
            return NEED_DATA
        end = lf - 1 if lf > self._pos and buf[lf - 1] == 0x0D else lf  # bare LF tolerated
        if end - self._pos > self.max_line:
            return self._die(f"Line longer than {self.max_line} bytes")
        line = bytes(buf[self._pos:end])
        self._pos = self._scan = lf + 1
        self._compact()
        if mode == _IDLE:
            self._mode = _LINE
            return IdleDone() if line.upper() == b"DONE" else BadCommand(None, "Expected DONE")
        if mode == _AUTH:
            self._mode = _LINE
            return AuthLine(line)
        if self._discard:
            m = _ANNOUNCE.search(line) if line[-1:] == b"}" else None
            if m and m.group(3):
                self._remaining = int(m.group(2))
                self._literal_sync = False
                self._mode = _SKIP
            else:
                self._discard = False
            return None
        if self._append_tag is not None:
            return self._append_line(line)
        return self._line(line)

    def _line(self, line: bytes) -> Event | None:
        m = _ANNOUNCE.search(line) if line[-1:] == b"}" else None
        if not self._cmd:
            t = _TAG.match(line)
            self._tag = t.group().decode("ascii") if t else None
            if not line:
                return BadCommand(None, "Empty command line")
        tag = self._tag
        if m is None:
            if len(self._cmd) + len(line) > self.max_command:
                self._cmd.clear()
                return BadCommand(tag, "Command too long", "TOOBIG")
            if self._cmd:
                self._cmd += line
                data = bytes(self._cmd)
                self._cmd.clear()
            else:
                data = line
            try:
                return parse_command(data, utf8=self.utf8, max_depth=self.max_depth)
            except ParseError as exc:
                return BadCommand(getattr(exc, "tag", None) or tag, exc.text, exc.code, exc.status)
        binary, size, sync = m.group(1) == b"~", int(m.group(2)), not m.group(3)
        head = line[:m.start()]
        if tag is None:
            return self._refuse(None, "Missing or invalid tag", None, "BAD", size, sync)
        if not sync and self.max_nonsync is not None and size > self.max_nonsync:
            return self._refuse(tag, f"Non-synchronizing literal larger than {self.max_nonsync} bytes", "TOOBIG",
                                "BAD", size, sync)
        if _APPEND.match(self._cmd or head):
            prefix = bytes(self._cmd) + head
            p = Parser(prefix, utf8=self.utf8, max_depth=self.max_depth)
            try:
                p.tag()
                p.sp()
                p.expect(b"APPEND")
                p.sp()
                if not p.at_end():
                    mailbox = p.mailbox()
                    if p.at_end():
                        raise ParseError("Expected SP after the mailbox name")
                    flags, date, utf8 = parse_message_prefix(p)
                    p.end()
                    self._cmd.clear()
                    return self._start_message(tag, mailbox, flags, date, size, binary, sync, utf8)
            except ParseError as exc:
                return self._refuse(tag, exc.text, exc.code, exc.status, size, sync)
        # an ordinary literal inside a command (a quoted-string alternative: LOGIN, SEARCH, ...)
        if binary:
            return self._refuse(tag, "literal8 is only allowed for APPEND", None, "BAD", size, sync)
        if self.max_arg_literal is not None and size > self.max_arg_literal:
            return self._refuse(tag, f"Literal larger than {self.max_arg_literal} bytes", "TOOBIG", "BAD", size, sync)
        if len(self._cmd) + len(line) + 2 + size > self.max_command:
            return self._refuse(tag, "Literal too big", "TOOBIG", "BAD", size, sync)
        self._cmd += line
        self._cmd += b"\r\n"
        self._begin_literal(size, sync, _LITERAL)
        return NeedContinuation(tag, size) if sync else None

    def _append_line(self, line: bytes) -> Event | None:
        """A line after an APPEND message literal: CRLF ends the command, or another message."""
        tag = self._append_tag
        assert tag is not None
        if self._append_close:  # RFC 6855: "UTF8" SP "(" literal8 ")"
            self._append_close = False
            if line[:1] != b")":
                self._append_tag = None
                text = "Expected ')' after the UTF8 message literal"
                m = _ANNOUNCE.search(line)
                if m is not None:  # a literal follows anyway: a non-synchronising one is skipped
                    return self._refuse(tag, text, None, "BAD", int(m.group(2)), not m.group(3))
                return BadCommand(tag, text)
            line = line[1:]
        if not line:
            self._append_tag = None
            return AppendEnd(tag, self._append_count)
        m = _ANNOUNCE.search(line)
        if m is None:
            self._append_tag = None
            return BadCommand(tag, "Expected another message or the end of APPEND")
        binary, size, sync = m.group(1) == b"~", int(m.group(2)), not m.group(3)
        if not sync and self.max_nonsync is not None and size > self.max_nonsync:
            self._append_tag = None
            return self._refuse(tag, f"Non-synchronizing literal larger than {self.max_nonsync} bytes", "TOOBIG",
                                "BAD", size, sync)
        p = Parser(line[:m.start()], utf8=self.utf8, max_depth=self.max_depth)
        try:
            flags, date, utf8 = parse_message_prefix(p)
            p.end()
        except ParseError as exc:
            self._append_tag = None
            return self._refuse(tag, exc.text, exc.code, exc.status, size, sync)
        return self._start_message(tag, self._append_mailbox, flags, date, size, binary, sync, utf8)

    def _start_message(self, tag: str, mailbox: str, flags: tuple[str, ...], date: object, size: int,
                       binary: bool, sync: bool, utf8: bool = False) -> Event | None:
        if utf8 and not binary:
            # RFC 6855 §4: "UTF8" SP "(" literal8 ")"; a plain {n} there is not that syntax
            return self._refuse(tag, "UTF8 ( needs a literal8 (~{n})", None, "BAD", size, sync)
        if size > self.max_literal:
            self._append_tag = None
            return self._refuse(tag, f"Message larger than the limit of {self.max_literal} bytes", "TOOBIG", "NO",
                                size, sync)
        index = self._append_count if self._append_tag is not None else 0
        self._append_tag = tag
        self._append_mailbox = mailbox
        self._append_count = index + 1
        self._append_close = utf8
        self._begin_literal(size, sync, _APPEND_DATA)
        start = AppendStart(tag, mailbox, flags, date, size, index, binary, sync, utf8)  # type: ignore[arg-type]
        if sync:
            self._events.append(NeedContinuation(tag, size, append=True))
        return start

    def _begin_literal(self, size: int, sync: bool, mode: int) -> None:
        self._remaining = size
        self._literal_sync = sync
        self._literal_started = False
        self._mode = mode

    def _refuse(self, tag: str | None, text: str, code: str | None, status: str, size: int, sync: bool) -> Event:
        """Refuse a command whose line announced a literal. A synchronising literal never comes; a
        non-synchronising one does, and is skipped along with the rest of its command."""
        self._cmd.clear()
        self._tag = None
        self._append_tag = None
        if not sync:
            self._remaining = size
            self._literal_sync = False
            self._mode = _SKIP
            self._discard = True
        else:
            self._mode = _LINE
        return BadCommand(tag, text, code, status)

    def _step_literal(self) -> Event | None:
        avail = len(self._buf) - self._pos
        if self._remaining and not avail:
            return NEED_DATA
        n = min(avail, self._remaining)
        start = self._pos
        self._pos += n
        self._remaining -= n
        self._literal_started = True
        mode = self._mode
        if mode == _LITERAL:
            self._cmd += self._buf[start:self._pos]
            ev: Event | None = None
        elif mode == _APPEND_DATA:
            ev = AppendData(bytes(self._buf[start:self._pos])) if n else None
        else:
            ev = None
        if self._remaining == 0:
            self._mode = _LINE
        self._scan = self._pos
        self._compact()
        return ev

    def _die(self, text: str) -> ProtocolViolation:
        self._violation = ProtocolViolation(text, self._tag)
        self._buf.clear()
        self._pos = self._scan = 0
        return self._violation
