"""One IMAP connection: the state machine (not authenticated / authenticated / selected / logout),
the capability set, and the moments pending mailbox changes are announced. Which command runs
in which state, and by which op, is the command table in imap/dispatch.py.

The bytes -> command work is proto.imap's `ImapReceiver` (sans-IO); this module owns policy:
what the capability list says (TLS, lab mode, ENABLEd
extensions), when EXPUNGE / VANISHED may be sent (never while answering FETCH, STORE, SEARCH,
SORT or THREAD by sequence number; at once during IDLE), and the user every store call is made
for (`self.user`, set only by a successful LOGIN / AUTHENTICATE).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mailcove.core import cooperative
from mailcove.core.clock import SYSTEM_CLOCK, Clock, wait_first
from mailcove.imap.conn import CORRUPT_TEXT, ImapIO
from mailcove.imap.selected import CacheRegistry, SelectedView
from mailcove.imap.wire import flag_list
from mailcove.net.limits import RequestDeadline
from mailcove.proto.imap import ImapReceiver
from mailcove.proto.imap.responses import ResponseEncoder

if TYPE_CHECKING:
    from mailcove.config.settings import Settings
    from mailcove.directory.api import Directory, Principal
    from mailcove.net.listeners import Connection, TlsProvider
    from mailcove.store.api import Mailbox, MailStore

log = logging.getLogger("mailcove.imap")

NOT_AUTH, AUTH, SELECTED, LOGOUT = "not authenticated", "authenticated", "selected", "logout"

SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
ENABLEABLE = ("IMAP4REV2", "CONDSTORE", "QRESYNC", "UTF8=ACCEPT")
MAX_BADS = 10
# Before login a client may send only what LOGIN / AUTHENTICATE / ID need: small literals, and a
# command no longer than one line (imaptest's id group sends a 31 KB ID line before login, which
# Dovecot's imap-login takes): 300 unauthenticated connections must not each hold a 1 MiB command.
PRE_AUTH_MAX_LINE = 65536
PRE_AUTH_MAX_LITERAL = 4096
PRE_AUTH_MAX_COMMAND = 65536
MAX_COMMAND = 1 << 20
APPENDLIMIT_DEFAULT = 64 * 1024 * 1024


@dataclass
class ImapLimits:
    appendlimit: int = APPENDLIMIT_DEFAULT
    max_line: int = 64 * 1024
    idle_timeout: float = 30 * 60.0  # RFC 9051 5.4: at least 30 minutes of inactivity
    min_data_rate: int = 500  # bytes/s a command's literals add to idle_timeout's deadline
    login_timeout: float = 60.0
    max_bads: int = MAX_BADS
    max_mailboxes: int = 10_000


@dataclass
class ImapContext:
    """What every session of the process shares."""

    settings: Settings
    store: MailStore
    directory: Directory
    tls: TlsProvider | None
    registry: CacheRegistry
    # The command loop (imap/dispatch.process), passed in by the server: the command table
    # imports every op, and every op imports this module, so it cannot be imported here.
    process: Callable[[Session], Awaitable[None]]
    limits: ImapLimits = field(default_factory=ImapLimits)
    implicit_tls: bool = False
    clock: Clock = SYSTEM_CLOCK  # the login and idle deadlines, write stalls

    @property
    def allow_plaintext(self) -> bool:
        return bool(self.settings.auth.allow_plaintext)


class Reply(Exception):
    """Raised by ops to end a command with NO / BAD (or OK with a code)."""

    def __init__(self, status: str, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.code = code


class CloseConnection(Exception):
    """The session ends after the current response (LOGOUT, BYE)."""


class MailboxGone(Exception):
    """The selected mailbox was deleted elsewhere: the session says BYE and ends."""

    text = "Selected mailbox was deleted, have to disconnect."


class Session:
    def __init__(self, ctx: ImapContext, conn: Connection) -> None:
        self.ctx = ctx
        self.conn = conn
        self.io = ImapIO(conn, ctx.limits.idle_timeout, ctx.clock)
        self.log = conn.log
        self.state = NOT_AUTH
        self.principal: Principal | None = None
        self.enabled: set[str] = set()
        self.condstore_used = False  # a CONDSTORE-enabling command was seen (RFC 7162 3.1)
        self.view: SelectedView | None = None
        self.mailbox: Mailbox | None = None
        self.saved_search: list[int] | None = None  # UIDs (SEARCHRES)
        self.client_id: dict[str, str | None] | None = None
        self.bads = 0
        self.receiver = ImapReceiver(max_line=min(PRE_AUTH_MAX_LINE, ctx.limits.max_line),
                                     max_literal=PRE_AUTH_MAX_LITERAL, max_command=PRE_AUTH_MAX_COMMAND,
                                     max_arg_literal=PRE_AUTH_MAX_LITERAL)
        self.store = ctx.store
        self.append: Any = None  # ops.append.AppendState while an APPEND is streaming
        self.idling: str | None = None  # the IDLE command's tag while idling
        self.auth: Any = None  # ops.authenticate state while waiting for a SASL response
        self.tag_done: str | None = None  # set by an op that answers its tag later itself
        self.enc = ResponseEncoder(rev2=False, utf8=False)
        self._flag_cache: dict[tuple[frozenset[str], bool], bytes] = {}

    # --- who and what ------------------------------------------------------------------------

    @property
    def user(self) -> str:
        """The authenticated account. Every store call for mail goes through this."""
        if self.principal is None:
            raise Reply("NO", "Not authenticated")
        return self.principal.user

    @property
    def rev2(self) -> bool:
        return "IMAP4REV2" in self.enabled

    @property
    def utf8(self) -> bool:
        return self.rev2 or "UTF8=ACCEPT" in self.enabled

    @property
    def condstore(self) -> bool:
        return self.condstore_used or "CONDSTORE" in self.enabled or "QRESYNC" in self.enabled

    @property
    def qresync(self) -> bool:
        return "QRESYNC" in self.enabled

    @property
    def is_tls(self) -> bool:
        return self.conn.is_tls

    @property
    def login_allowed(self) -> bool:
        return self.is_tls or self.ctx.allow_plaintext

    def capabilities(self) -> list[str]:
        caps = ["IMAP4rev1", "IMAP4rev2", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE"]
        if self.state == NOT_AUTH:
            if not self.is_tls and self.conn.tls_available:
                caps.append("STARTTLS")
            if self.login_allowed:
                caps.append("AUTH=PLAIN")
            else:
                caps.append("LOGINDISABLED")
            return caps
        caps += [
            "NAMESPACE", "UNSELECT", "UIDPLUS", "MOVE", "CONDSTORE", "QRESYNC", "SPECIAL-USE", "CREATE-SPECIAL-USE",
            "LIST-EXTENDED", "LIST-STATUS", "CHILDREN", "ESEARCH", "SEARCHRES", "SORT", "SORT=DISPLAY", "ESORT",
            "THREAD=REFERENCES", "THREAD=ORDEREDSUBJECT", "MULTIAPPEND", "BINARY", "QUOTA", "QUOTA=RES-STORAGE",
            "QUOTA=RES-MESSAGE", f"APPENDLIMIT={self.ctx.limits.appendlimit}", "STATUS=SIZE", "UTF8=ACCEPT",
            "WITHIN",
        ]
        if not self.io.compressed:
            caps.append("COMPRESS=DEFLATE")
        return caps

    def authenticated(self, principal: Principal) -> None:
        """LOGIN / AUTHENTICATE succeeded: the session is the user's, with the full limits."""
        self.principal = principal
        self.state = AUTH
        self.receiver.max_line = self.ctx.limits.max_line
        self.receiver.max_literal = self.ctx.limits.appendlimit
        self.receiver.max_command = MAX_COMMAND
        self.receiver.max_arg_literal = None

    # --- output ------------------------------------------------------------------------------

    # Every byte of a response comes from the sans-IO encoder (`self.enc`, proto.imap.responses),
    # so one sanitiser sees all of it: these only queue what it made.

    def write(self, data: bytes) -> None:
        self.io.write(data)

    def tagged(self, tag: str, status: str, text: str, code: str | None = None) -> None:
        self.io.write(self.enc.tagged(tag, status, text, code))

    def untagged_status(self, status: str, text: str, code: str | None = None) -> None:
        self.io.write(self.enc.untagged_status(status, text, code))

    def continuation(self, text: str | bytes = "Ready") -> None:
        self.io.write(self.enc.continuation(text))

    # --- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        self.untagged_status("OK", "mailcove ready", "CAPABILITY " + " ".join(self.capabilities()))
        await self.io.flush()
        closing = asyncio.ensure_future(self.conn.closing.wait())
        clock = self.ctx.clock
        # login_timeout is a deadline from connect, not a per-read timeout: a client sending one
        # byte every few seconds must not keep an unauthenticated connection for ever.
        login_deadline = clock.monotonic() + self.ctx.limits.login_timeout
        # After login, idle_timeout is a deadline too: the next command must be complete within it
        # of the previous response (plus an allowance for the bytes it brings), so trickling a
        # command one byte at a time does not keep the session for ever.
        request = RequestDeadline(self.ctx.limits.idle_timeout, self.ctx.limits.min_data_rate)
        request.begin(clock.monotonic())
        try:
            while self.state != LOGOUT:
                if self.state == NOT_AUTH:
                    timeout = max(0.0, login_deadline - clock.monotonic())
                else:
                    timeout = max(0.0, request.remaining(clock.monotonic()))
                read = asyncio.ensure_future(self.io.read())
                waits: set[asyncio.Future[Any]] = {read, closing}
                while True:
                    wake = None
                    if self.idling is not None and self.view is not None:
                        wake = asyncio.ensure_future(self.view.wakeup.wait())
                        waits.add(wake)
                    done = await wait_first(clock, waits, timeout)
                    if wake is not None:
                        waits.discard(wake)
                        if wake in done and read not in done:
                            # New mail / flags / expunges while idling: tell the client at once.
                            await self.announce(allow_expunge=True)
                            await self.io.flush()
                            continue
                        wake.cancel()
                    break
                if read not in done:
                    read.cancel()
                    with contextlib.suppress(BaseException):
                        await read
                    if closing in done:
                        text = "Server shutting down"
                    elif self.state == NOT_AUTH:
                        text = "Login timeout: no login within the time allowed"
                    else:
                        text = "Autologout; idle for too long"
                    self.untagged_status("BYE", text)
                    await self.io.flush()
                    return
                data = read.result()
                if not data:
                    if self.io.corrupt:
                        # RFC 4978 gives no way to resynchronise a broken deflate stream: BYE, as
                        # Dovecot does, and end the session as at EOF, with no traceback.
                        self.untagged_status("BYE", CORRUPT_TEXT)
                        with contextlib.suppress(Exception):
                            await self.io.flush()
                    return
                request.add(len(data))
                self.receiver.receive_data(data)
                await self.process_events()
                await self.io.flush()
                if not self.receiver.in_command:
                    request.begin(clock.monotonic())
        except CloseConnection:
            with contextlib.suppress(Exception):
                await self.io.flush()
        except MailboxGone as gone:
            self.untagged_status("BYE", gone.text)
            with contextlib.suppress(Exception):
                await self.io.flush()
        finally:
            closing.cancel()
            if self.append is not None:
                self.append.discard()
                self.append = None
            self.close_view()

    async def refuse(self, text: str) -> None:
        """Turn the connection away before any greeting (the connection caps): BYE instead of OK,
        which RFC 9051 7.1.5 allows as the first response."""
        self.untagged_status("BYE", text)
        with contextlib.suppress(Exception):
            await self.ctx.clock.wait_for(self.io.flush(), 5)

    async def process_events(self) -> None:
        await self.ctx.process(self)

    # --- the selected mailbox ----------------------------------------------------------------

    def close_view(self) -> None:
        if self.view is not None:
            self.view.close()
        self.view = None
        self.mailbox = None
        self.saved_search = None
        if self.state == SELECTED:
            self.state = AUTH

    def require_view(self) -> SelectedView:
        if self.view is None:
            raise Reply("BAD", "No mailbox selected")
        return self.view

    def use_condstore(self) -> None:
        """A CONDSTORE-enabling command (RFC 7162 3.1: FETCH/SEARCH/SORT with MODSEQ, CHANGEDSINCE,
        UNCHANGEDSINCE, STATUS HIGHESTMODSEQ). The first one while a mailbox is selected gets an
        untagged OK [HIGHESTMODSEQ], as a SELECT (CONDSTORE) would have sent."""
        if self.condstore:
            return
        self.condstore_used = True
        view = self.view
        if view is not None:
            highest = max(self.mailbox.highestmodseq if self.mailbox is not None else 0, view.cache.highestmodseq, 1)
            self.untagged_status("OK", "Highest", f"HIGHESTMODSEQ {highest}")

    def announce_flags(self, view: SelectedView) -> None:
        """FLAGS and PERMANENTFLAGS with every keyword the mailbox has: at SELECT, and again
        before any FETCH that would show a keyword this client has not been told of."""
        keywords = frozenset(view.cache.keywords)
        view.announced_keywords = keywords
        names = [*SYSTEM_FLAGS, *sorted(keywords)]
        self.io.write(self.enc.flags(names))
        if view.readonly:
            self.untagged_status("OK", "Read-only mailbox", "PERMANENTFLAGS ()")
        else:
            self.io.write(self.enc.permanentflags(names))

    def check_keywords(self) -> None:
        """Announce new keywords (FLAGS) before a response that may use them."""
        view = self.view
        if view is not None and view.unannounced_keywords():
            self.announce_flags(view)

    async def announce(self, *, allow_expunge: bool) -> None:
        """Send what changed in the selected mailbox since the client was last told. 100,000
        EXPUNGE or FETCH lines pause within the loop's time slice (core/cooperative)."""
        view = self.view
        if view is None:
            return
        if view.cache.deleted:
            # The selected mailbox was deleted by another session: nothing this client knows of
            # it is true any more and no command on it can succeed. Dovecot disconnects too.
            raise MailboxGone()
        view.wakeup.clear()  # a change arriving while this runs wakes an IDLE session again
        self.check_keywords()
        if allow_expunge and view.pending_expunged:
            seqs, uids = view.take_expunges()
            if self.qresync:
                self.io.write(self.enc.vanished(uids))
            else:
                for n, s in enumerate(seqs):
                    if not n % 512:
                        await cooperative.pause()
                    self.io.write(self.enc.expunge(s))
        added = view.take_new()
        if added:
            self.io.write(self.enc.exists(len(view)))
        if not self.rev2:
            recent = view.recent_count()
            if recent != view.announced_recent:
                view.announced_recent = recent
                self.io.write(self.enc.recent(recent))
        for n, uid in enumerate(view.take_flag_changes()):
            if not n % 256:
                await cooperative.pause()
                self.check_keywords()  # a keyword stored by another session during the pause
            seq = view.seq_of(uid)
            if seq is None:
                continue
            items = [("UID", b"%d" % uid), ("FLAGS", self.flags_bytes(view.flags_of(uid), uid in view.recent))]
            if self.condstore:
                items.append(("MODSEQ", b"(%d)" % view.modseq_of(uid)))
            self.io.write(self.enc.fetch_bytes(seq, items))

    def visible_flags(self, flags: frozenset[str]) -> frozenset[str]:
        return flags - {"\\Recent"} if self.rev2 else flags

    def flags_bytes(self, flags: frozenset[str], recent: bool = False) -> bytes:
        """``(\\Seen foo)`` for a flag set (plus \\Recent for a rev1 client when `recent`); cached
        per set: a mailbox has few distinct sets, and 100,000 FETCH FLAGS lines then cost one dict
        lookup each instead of a sort and a join."""
        cache = self._flag_cache
        key = (flags, recent)
        out = cache.get(key)
        if out is None:
            out = flag_list(self.visible_flags(flags | {"\\Recent"} if recent else flags))
            if len(cache) > 4096:
                cache.clear()
            cache[key] = out
        return out

    def update_encoding(self) -> None:
        self.enc = ResponseEncoder(rev2=self.rev2, utf8=self.utf8)
        self.receiver.utf8 = self.utf8
        self._flag_cache.clear()

    async def bye(self, text: str) -> None:
        self.untagged_status("BYE", text)
        await self.io.flush()
        raise CloseConnection()

