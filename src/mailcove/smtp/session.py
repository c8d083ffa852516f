"""SMTP session policy: core events in, directory/store decisions, replies out.

One `SmtpSession` per connection; one `SmtpService` per server process holds what sessions
share (settings, store, directory, counters). The only I/O this module does is through the
`SessionIO` it is given (server.py wraps a net Connection in it), so the policy can be driven
by tests without sockets.

Checks run in stages, like maddy's: connection (access Connect:, limits), sender (MAIL: auth,
ownership, access From:, rate), recipient (RCPT: access To:, resolve, relay, quota, rate),
body (after the data: loop detection, From: ownership, inbound checks), then one `store.submit`.

The message is spooled exactly as it arrives and stored that way. At the end of DATA the session
builds the trace (Authentication-Results, Received) as a value, `delivery.Trace`, which the store
serves in front of the body; nothing is ever written into the message."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from mailcove import delivery, mailauth
from mailcove.core.clients import client_key
from mailcove.core.clock import SYSTEM_CLOCK, Clock
from mailcove.core.errors import MailError
from mailcove.delivery import Trace
from mailcove.directory.access import is_localhost
from mailcove.directory.api import Action, Alias, Invalid, Local, Principal, Remote
from mailcove.directory.errors import DirectoryBusy
from mailcove.logs import auth_failed
from mailcove.net.limits import ConnectionCounter, RequestDeadline
from mailcove.proto.smtp import (
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
    Reply,
    Rset,
    ServerConnection,
    StartTls,
    State,
    Vrfy,
)
from mailcove.proto.smtp import replies as R
from mailcove.proto.smtp.params import unquote_local
from mailcove.proto.smtp.sasl import MECHANISMS as SASL_MECHANISMS
from mailcove.proto.smtp.sasl import Challenge, Credentials, SaslFailure, ServerMechanism, server_mechanism
from mailcove.queue import srs
from mailcove.smtp.header_check import check_originators
from mailcove.smtp.limits import HourlyRate

if TYPE_CHECKING:
    from mailcove.config.settings import Settings
    from mailcove.directory.api import Directory
    from mailcove.mailauth import InboundChecker
    from mailcove.queue import QueueRunner
    from mailcove.store.api import MailStore, Usage
    from mailcove.store.spool import Spool

log = logging.getLogger("mailcove.smtp")

SUBMISSION_LISTENERS = frozenset({"submission", "submissions"})
READ_CHUNK = 256 * 1024
HEADER_SCAN_MAX = 256 * 1024  # the From: and Received: checks look no further into a message
USAGE_CACHE_SECONDS = 2.0
QUEUE_CHECK_SECONDS = 10.0


class SessionIO(Protocol):
    """What a session needs from its connection (net.listeners.Connection provides it)."""

    peer_ip: str
    session_id: str
    log: logging.LoggerAdapter[Any]
    closing: asyncio.Event

    @property
    def is_tls(self) -> bool: ...
    @property
    def tls_available(self) -> bool: ...
    async def start_tls(self, reply: bytes = b"") -> None: ...
    def tls_info(self) -> tuple[str, str, int] | None:
        """(protocol version, cipher, bits) once TLS is on, for Received:; None before."""


class SmtpService:
    """Per-process state shared by every SMTP session (all three listeners)."""

    def __init__(self, settings: Settings, store: MailStore, directory: Directory,
                 connections: ConnectionCounter | None = None, clock: Clock = SYSTEM_CLOCK) -> None:
        self.settings = settings
        self.clock = clock  # timeouts, sending rates, caches: everything the sessions time
        self.store = store
        self.directory = directory
        s = settings.smtp
        self.connections = connections or ConnectionCounter(s.max_connections, s.max_connections_per_ip)
        self.messages_rate = HourlyRate(s.send_messages_per_hour, clock=clock)
        self.rcpts_rate = HourlyRate(s.send_recipients_per_hour, clock=clock)
        self.sessions: set[SmtpSession] = set()
        self._usage: dict[str, tuple[float, Usage]] = {}
        self._queue_checked = 0.0
        self._queue_alarmed = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self.hostname = settings.hostname
        self.queue_runner: QueueRunner | None = None  # the outbound queue, when the server runs one
        self.mailauth: InboundChecker | None = None  # inbound SPF/DKIM/DMARC, or None
        self._date_cache: tuple[int, str] = (0, "")
        self._srs_secret: bytes | None = None

    def is_srs(self, address: str) -> bool:
        """Is this an SRS0 address in our SRS domain (where bounces to mail our queue forwarded
        come back)?"""
        local, at, domain = address.rpartition("@")
        q = self.settings.queue
        return bool(at) and local[:5].upper() == "SRS0=" and domain.lower() == (q.srs_domain or self.hostname).lower()

    def srs_reverse(self, address: str) -> tuple[str | None, srs.Check]:
        """The original sender of one of our SRS addresses (None unless the check is OK)."""
        if self._srs_secret is None:
            self._srs_secret = srs.read_secret(self.settings.data_dir / "srs.key")
            if self._srs_secret is None:
                return None, srs.Check.MALFORMED  # no SRS address was ever made here
        return srs.verify(address, self._srs_secret, self.clock.time())  # its age on our clock

    async def usage(self, user: str) -> Usage | None:
        """Quota usage for the RCPT-time check, cached briefly: the store's own check at commit
        is the exact one, this one only avoids accepting mail that is sure to fail."""
        now = self.clock.monotonic()
        hit = self._usage.get(user)
        if hit is not None and now - hit[0] < USAGE_CACHE_SECONDS:
            return hit[1]
        try:
            u = await self.store.usage(user)
        except MailError:
            return None
        if len(self._usage) > 10_000:
            self._usage.clear()
        self._usage[user] = (now, u)
        return u

    def count_delivery(self, users: list[str], size: int) -> None:
        """Keep cached usage current after our own delivery, so the next RCPT sees it."""
        for u in users:
            hit = self._usage.get(u)
            if hit is not None:
                old = hit[1]
                new = type(old)(old.bytes + size, old.messages + 1, old.max_bytes, old.max_messages)
                self._usage[u] = (hit[0], new)

    def forget_usage(self, users: list[str]) -> None:
        for u in users:
            self._usage.pop(u, None)

    def date(self) -> str:
        now = int(self.clock.time())
        if self._date_cache[0] != now:
            self._date_cache = (now, email.utils.formatdate(now, localtime=True))
        return self._date_cache[1]

    def queued(self) -> None:
        """A message went into the outbound queue: wake the queue runner, and check the alarm
        threshold now and then."""
        if self.queue_runner is not None:
            self.queue_runner.wake()
        alarm = self.settings.smtp.queue_alarm
        now = self.clock.monotonic()
        if not alarm or now - self._queue_checked < QUEUE_CHECK_SECONDS:
            return
        self._queue_checked = now
        self.spawn(self._check_queue(alarm))

    async def _check_queue(self, alarm: int) -> None:
        size = await self.store.queue_size()
        if size > alarm:
            log.warning("outbound queue holds %d entries, above the alarm threshold %d ([smtp] queue_alarm)",
                        size, alarm)
            self._queue_alarmed = True
        elif self._queue_alarmed:
            log.info("outbound queue back to %d entries (threshold %d)", size, alarm)
            self._queue_alarmed = False

    def spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def sweep(self) -> None:
        """Timeouts and shutdown for every session, from one task: a session waiting for input
        longer than its timeout, or idle at shutdown, gets 421 and is closed. One loop here is
        cheaper than a timer per read (thousands of reads a second)."""
        s = self.settings.smtp
        while True:
            await self.clock.sleep(max(0.05, min(1.0, s.command_timeout / 4, s.data_timeout / 4)))
            now = self.clock.monotonic()
            for sess in list(self.sessions):
                sess.check_timeout(now)


@dataclass
class Transaction:
    mail: Mail
    plan: delivery.DeliveryPlan = field(default_factory=delivery.DeliveryPlan)
    discard: bool = False
    relayed: int = 0  # remote recipients accepted without authentication
    srs: bool = False  # a bounce to one of our SRS addresses: its only recipient
    accepted: list[str] = field(default_factory=list)  # recipients as given, for Received/logs
    body: Spool | None = None  # the message as received
    header: bytearray | None = None
    header_done: bool = False
    header_overflow: bool = False  # the header block went past HEADER_SCAN_MAX


class SmtpSession:
    def __init__(self, service: SmtpService, io: SessionIO, listener: str, reader: Any, writer: Any) -> None:
        self.svc = service
        self.io = io
        self.listener = listener
        self.reader = reader
        self.writer = writer
        self.settings = service.settings
        s = self.settings.smtp
        self.submission = listener in SUBMISSION_LISTENERS
        self.core = ServerConnection(
            max_line=s.max_line_length, max_size=s.max_message_bytes, max_recipients=s.max_recipients
        )
        self.core.tls = io.is_tls
        self.ip = io.peer_ip
        self._counted = False  # counted in the service's connections (released by release())
        self.helo = ""
        self.principal: Principal | None = None
        self.txn: Transaction | None = None
        self.errors = 0
        self.auth_failures = 0
        self.mech: ServerMechanism | None = None
        self.connect_reject: Reply | None = None
        self.connect_discard = False
        self.last_input = service.clock.monotonic()
        # The deadline of the request in progress (the next command, or the message data), set
        # at each reply; bytes trickled in one at a time do not move it (finding 5 of issue 13).
        self.request = RequestDeadline(s.command_timeout, s.min_data_rate)
        self.request.begin(self.last_input)
        self.waiting = False  # blocked on a read: the sweeper may close us
        self.owned: set[str] = set()
        self._trusted: bool | None = None
        self.log = io.log
        self._update_extensions()

    # --- the pump -----------------------------------------------------------------------------

    async def run(self) -> None:
        greeting = await self._connect_checks()
        core = self.core
        out = bytearray(core.send(greeting))
        reader, writer = self.reader, self.writer
        self.svc.sessions.add(self)
        try:
            while core.state is not State.CLOSED:
                ev = core.next_event()
                if ev is NEED_DATA:
                    if out:
                        writer.write(out)
                        out.clear()
                        if writer.transport.get_write_buffer_size() > 256 * 1024:
                            # A client that stops reading is timed out like one that stops writing.
                            self.waiting = True
                            try:
                                await writer.drain()
                            finally:
                                self.waiting = False
                    if self.io.closing.is_set() and core.state not in (State.DATA, State.BDAT):
                        out += core.send(R.SHUTTING_DOWN)
                        break
                    self.waiting = True
                    try:
                        data = await reader.read(READ_CHUNK)
                    finally:
                        self.waiting = False
                    if not data:
                        self._abort_txn()
                        return
                    self.last_input = self.svc.clock.monotonic()
                    self.request.add(len(data))
                    core.receive_data(data)
                    continue
                reply = await self._dispatch(ev)
                if reply is None:
                    continue
                self.request.begin(self.svc.clock.monotonic())
                if reply.code >= 400 and reply.code != 421 and type(ev) is not DataEnd and type(ev) is not ChunkEnd:
                    self.errors += 1
                    if self.settings.smtp.max_errors and self.errors >= self.settings.smtp.max_errors:
                        # One reply per command: the 421 replaces the refusal it would have had.
                        out += core.send(R.TOO_MANY_ERRORS)
                        self.log.info("too many errors (%d), disconnecting", self.errors)
                        break
                if type(ev) is StartTls and reply.code == 220:
                    data = bytes(out) + core.send(reply)
                    out.clear()
                    await self.io.start_tls(data)
                    core.start_tls()
                    self.helo = ""
                    self._update_extensions()
                    self.log.info("STARTTLS: %s", self._tls_text() or "?")
                    continue
                out += core.send(reply)
            if out:
                writer.write(out)
                out.clear()
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
        finally:
            self.svc.sessions.discard(self)
            self._abort_txn()

    def check_timeout(self, now: float) -> None:
        if not self.waiting:
            return
        if self.io.closing.is_set() and self.core.state not in (State.DATA, State.BDAT):
            self._close_with(R.SHUTTING_DOWN)
            return
        s = self.settings.smtp
        if self.core.state in (State.DATA, State.BDAT):
            # Message data: data_timeout plus one second per min_data_rate bytes since the
            # reply that began it, and never data_timeout without a byte.
            self.request.timeout = s.data_timeout
            stalled = now - self.last_input > s.data_timeout
        else:
            self.request.timeout = s.command_timeout
            stalled = False
        if stalled or self.request.expired(now):
            self.log.info("timeout: %.0fs since the last reply (%d bytes since), %.0fs since the last byte, "
                          "in state %s", now - self.request.started, self.request.received,
                          now - self.last_input, self.core.state.value)
            self._close_with(R.TIMEOUT)

    def _close_with(self, reply: Reply) -> None:
        # The session task is blocked in read(); write the goodbye and close the transport, which
        # ends that read with EOF.
        with contextlib.suppress(Exception):
            self.writer.write(self.core.send(reply))
        self.writer.close()

    # --- stages -------------------------------------------------------------------------------

    async def _connect_checks(self) -> Reply:
        host = self.svc.hostname
        if not self.svc.connections.try_add(self.ip):
            self.log.info("too many connections: %s", self.svc.connections.describe(self.ip))
            self._counted = False
            return Reply(421, "4.7.0", f"{host} Too many connections, try again later")
        self._counted = True
        rule = await self.svc.directory.match_connect(self.ip)
        if rule is not None:
            if rule.action is Action.REJECT:
                code, enh, text = rule.reply()
                self.connect_reject = Reply(code, enh, text)
                self.log.info("connection refused by access rule %s", rule.display.split("\t")[0])
                return Reply(554 if code >= 500 else code, enh, f"{host} {text}")
            if rule.action is Action.DISCARD:
                self.connect_discard = True
        return Reply(220, "", f"{host} ESMTP mailcove")

    def release(self) -> None:
        if self._counted:
            self.svc.connections.remove(self.ip)
            self._counted = False

    def _update_extensions(self) -> None:
        tls_on = self.core.tls
        ext = {"SIZE", "8BITMIME", "SMTPUTF8", "PIPELINING", "CHUNKING", "DSN", "ENHANCEDSTATUSCODES"}
        if not tls_on and self.io.tls_available:
            ext.add("STARTTLS")
        # The core always parses AUTH, so that a client trying it before TLS hears why it is
        # refused (538 5.7.11) instead of "not implemented"; EHLO announces it only when usable.
        ext.add("AUTH")
        self.auth_offered = tls_on or self.settings.auth.allow_plaintext
        self.core.extensions = frozenset(ext)

    def _ehlo_reply(self, name: str) -> Reply:
        ext = self.core.extensions
        lines = []
        size = self.settings.smtp.max_message_bytes
        for kw in ("PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8", "CHUNKING", "DSN", "ENHANCEDSTATUSCODES",
                   "STARTTLS", "AUTH"):
            if kw not in ext or (kw == "AUTH" and not self.auth_offered):
                continue
            if kw == "SIZE":
                lines.append(f"SIZE {size}" if size else "SIZE")
            elif kw == "AUTH":
                lines.append("AUTH " + " ".join(SASL_MECHANISMS))
            else:
                lines.append(kw)
        return Reply(250, "", f"{self.svc.hostname} Hello {name} [{self.ip}]", tuple(lines))

    async def _dispatch(self, ev: Event) -> Reply | None:
        t = type(ev)
        if t is DataChunk:
            self._body_chunk(ev.data)  # type: ignore[attr-defined]
            return None
        if t is Rcpt:
            return await self._rcpt(ev)  # type: ignore[arg-type]
        if t is Mail:
            return await self._mail(ev)  # type: ignore[arg-type]
        if t is Data:
            return self._start_body(R.START_DATA)
        if t is DataEnd:
            return await self._end_body(ev.too_big)  # type: ignore[attr-defined]
        if t is Bdat:
            if self.txn is not None and self.txn.body is None:
                self._start_body(R.OK)
            return None
        if t is ChunkEnd:
            assert isinstance(ev, ChunkEnd)
            if ev.too_big or ev.last:
                return await self._end_body(ev.too_big)
            return Reply(250, "2.0.0", f"{ev.size} octets received")
        if t is Rejected:
            assert isinstance(ev, Rejected)
            self.mech = None
            if self.txn is not None and self.core.state is State.READY:
                self._abort_txn()
            return ev.reply
        if t is Ehlo or t is Helo:
            self._abort_txn()
            if self.connect_reject is not None:
                return Reply(503, "5.7.1", self.connect_reject.text)
            self.helo = ev.name  # type: ignore[attr-defined]
            self._update_extensions()
            if t is Helo:
                return Reply(250, "", f"{self.svc.hostname} Hello {self.helo} [{self.ip}]")
            return self._ehlo_reply(self.helo)
        if t is Quit:
            return R.BYE
        if t is Rset:
            self._abort_txn()
            return R.RESET_OK
        if t is Noop:
            return R.NOOP_OK
        if t is Vrfy:
            return R.VRFY_CANNOT
        if t is Help:
            return R.HELP
        if t is StartTls:
            if not self.io.tls_available:
                return Reply(454, "4.7.0", "TLS not available")
            return R.READY_TLS
        if t is Auth:
            return await self._auth_start(ev)  # type: ignore[arg-type]
        if t is AuthResponse:
            return await self._auth_step(ev.line)  # type: ignore[attr-defined]
        return R.UNKNOWN_COMMAND

    # --- MAIL ---------------------------------------------------------------------------------

    async def _mail(self, ev: Mail) -> Reply:
        if self.connect_reject is not None:
            return self.connect_reject
        if self.principal is None and self.submission:
            return R.AUTH_REQUIRED
        sender = ev.sender
        if self.principal is not None:
            if not sender or not await self._owns(sender):
                self.log.info("MAIL FROM:<%s> refused: not an address of %s", sender, self.principal.user)
                return Reply(553, "5.7.1", f"Sender address <{sender}> not owned by user {self.principal.user}")
            if not self.svc.messages_rate.allows(f"user:{self.principal.user}"):
                self.log.info("sending limit: %s over [smtp] send_messages_per_hour", self.principal.user)
                return Reply(451, "4.7.1", "Sending limit exceeded (messages per hour), try again later")
        discard = self.connect_discard
        if sender:
            rule = await self.svc.directory.match_from(sender)
            if rule is not None:
                if rule.action is Action.REJECT:
                    code, enh, text = rule.reply()
                    return Reply(code, enh, text)
                if rule.action is Action.DISCARD:
                    discard = True
        self.txn = Transaction(ev, discard=discard)
        return R.SENDER_OK

    async def _owns(self, address: str) -> bool:
        assert self.principal is not None
        key = address.lower()
        if key in self.owned:
            return True
        if key == self.principal.user or key == self.principal.address.lower():
            self.owned.add(key)
            return True
        res = await self.svc.directory.resolve(address)
        users: list[str] = []
        if isinstance(res, Local):
            users = [res.user]
        elif isinstance(res, Alias):
            users = [t.user for t in res.targets if isinstance(t, Local)]
        if self.principal.user in users:
            if len(self.owned) < 100:
                self.owned.add(key)
            return True
        return False

    # --- RCPT ---------------------------------------------------------------------------------

    async def _rcpt(self, ev: Rcpt) -> Reply:
        txn = self.txn
        if txn is None:  # the core only lets RCPT through after a successful MAIL
            return R.NEED_MAIL
        addr = unquote_local(ev.recipient)
        if txn.srs:
            self.log.info("RCPT TO:<%s> deferred: the transaction is a bounce to an SRS address", addr)
            return Reply(452, "4.5.3", "Too many recipients: a bounce to an SRS address must be the only one")
        d = self.svc.directory
        rule = await d.match_to(addr) if addr != "postmaster" else None
        if rule is not None:
            if rule.action is Action.REJECT:
                code, enh, text = rule.reply()
                return Reply(code, enh, text)
            if rule.action is Action.DISCARD:
                txn.accepted.append(addr)
                return R.RCPT_OK  # accepted and dropped: never delivered
        srs_bounce = self.svc.is_srs(addr)
        if srs_bounce:
            res: Local | Alias | Remote | Invalid | Reply = await self._srs_rcpt(txn, addr)
        else:
            res = await delivery.resolve(d, addr)
        if isinstance(res, Reply):
            return res
        if isinstance(res, Invalid):
            self.log.info("RCPT TO:<%s> refused: %s", addr, res.reason)
            if res.reason.startswith("bad address syntax"):
                return Reply(553, "5.1.3", f"<{addr}>: Bad recipient address syntax")
            return Reply(550, "5.1.1", f"<{addr}>: Recipient address rejected: User unknown")
        relaying = 0
        if isinstance(res, Remote) and self.principal is None and not srs_bounce:
            if not await d.relay_allowed(self.ip, addr, sender=txn.mail.sender or None):
                self.log.info("RCPT TO:<%s> refused: relaying denied for %s", addr, self.ip)
                return Reply(550, "5.7.1", f"<{addr}>: Relay access denied")
            relaying = 1
        rate_key = self._rate_key(relaying or txn.relayed or srs_bounce)
        if rate_key is not None:
            pending = txn.plan.count + 1
            if not self.svc.rcpts_rate.allows(rate_key, pending) or (
                not txn.plan and not self.svc.messages_rate.allows(rate_key)
            ):
                self.log.info("sending limit reached for %s", rate_key)
                return Reply(451, "4.7.1", "Sending limit exceeded, try again later")
        assert not isinstance(res, Invalid)
        for user in txn.plan.local_users(res):
            u = await self.svc.usage(user)
            if u is None:
                continue
            size = txn.mail.size or 0
            if (u.max_bytes and u.bytes + size > u.max_bytes) or (u.max_messages and u.messages >= u.max_messages):
                self.log.info("RCPT TO:<%s> deferred: %s over quota", addr, user)
                return Reply(452, "4.2.2", f"<{addr}>: Mailbox full")
        txn.srs = srs_bounce
        if self.connect_discard or txn.discard:
            txn.accepted.append(addr)
            return R.RCPT_OK
        txn.plan.add(res, notify=ev.notify, orcpt=ev.orcpt)  # type: ignore[arg-type]
        txn.relayed += relaying
        txn.accepted.append(addr)
        return R.RCPT_OK

    async def _srs_rcpt(self, txn: Transaction, addr: str) -> Remote | Invalid | Reply:
        """A bounce to one of our SRS addresses goes on to the original sender, which any client
        may reach through us: the forwarded mail left in our name. Only a bounce (MAIL FROM:<>)
        with this as its one recipient qualifies, as a DSN has (RFC 3464): a valid address is
        then no relay for other mail. A hash that does not match counts as a failed login in the
        shared throttle, so guessing one is refused after [auth] max_failures_per_ip (issue 13,
        finding 4). Checks that do not depend on the secret come first and are not counted: they
        tell a guesser nothing."""
        if txn.mail.sender:
            self.log.info("RCPT TO:<%s> refused: an SRS address takes only bounces, not mail from <%s>",
                          addr, txn.mail.sender)
            return Reply(550, "5.7.1", f"<{addr}>: SRS address: only a bounce (MAIL FROM:<>) is forwarded")
        if txn.accepted:
            self.log.info("RCPT TO:<%s> deferred: a bounce to an SRS address must be the only recipient", addr)
            return Reply(452, "4.5.3", "Too many recipients: a bounce to an SRS address must be the only one")
        throttle = self.svc.directory.throttle
        if not throttle.check(self.ip).allowed:
            self.log.info("RCPT TO:<%s> deferred: %s is throttled after failures", addr, self.ip)
            return Reply(450, "4.7.1", f"<{addr}>: Too many failures from {self.ip}, try again later")
        original, check = self.svc.srs_reverse(addr)
        if original is not None:
            return Remote(original)
        if check is srs.Check.FORGED:
            verdict = throttle.record_failure(self.ip)
            if verdict.delay:
                await self.svc.clock.sleep(verdict.delay)
        return Invalid(f"SRS address {check.value}")

    def _rate_key(self, relaying: int) -> str | None:
        if self.principal is not None:
            return f"user:{self.principal.user}"
        if relaying:
            return f"ip:{client_key(self.ip)}"  # an IPv6 client per /64, as the connection caps
        return None

    # --- the body -----------------------------------------------------------------------------

    def _start_body(self, reply: Reply) -> Reply:
        txn = self.txn
        assert txn is not None
        txn.body = self.svc.store.new_spool()
        txn.header = bytearray()
        return reply

    def _body_chunk(self, data: bytes) -> None:
        txn = self.txn
        if txn is None or txn.body is None:
            return
        if not txn.header_done:
            assert txn.header is not None
            # Only the header block is kept aside (bounded), for the loop and From: checks.
            start = max(0, len(txn.header) - 3)
            # Up to 4 bytes past the limit, so a blank line that ends right at it is still seen.
            txn.header += data[: HEADER_SCAN_MAX + 4 - len(txn.header)]
            end = txn.header.find(b"\r\n\r\n", start)
            if txn.header.startswith(b"\r\n"):
                end = 0
            if end >= 0 and end + 2 <= HEADER_SCAN_MAX:
                del txn.header[end + 2 :]
                txn.header_done = True
            elif len(txn.header) >= HEADER_SCAN_MAX:
                # The rest of the header is never looked at: the From: check refuses it.
                del txn.header[HEADER_SCAN_MAX:]
                txn.header_done = txn.header_overflow = True
        txn.body.write(data)

    async def _end_body(self, too_big: bool) -> Reply:
        txn = self.txn
        self.txn = None
        if txn is None or txn.body is None:
            return R.NEED_RCPT
        body = txn.body
        try:
            if too_big:
                self.log.info("message refused: larger than %d bytes", self.settings.smtp.max_message_bytes)
                return R.TOO_BIG
            header = bytes(txn.header or b"")
            received = header.lower().count(b"\nreceived:") + header[:9].lower().startswith(b"received:")
            limit = self.settings.smtp.max_received_headers
            if limit and received > limit:
                self.log.info("message refused: %d Received headers (mail loop)", received)
                return Reply(554, "5.4.6", f"Too many hops ({received} Received headers): mail loop")
            if self.principal is not None:
                refusal = await self._check_originators(header, txn.header_overflow)
                if refusal is not None:
                    return refusal
            if not txn.plan:
                self.log.info("message from <%s> to %d recipients discarded by access rules",
                              txn.mail.sender, len(txn.accepted))
                return Reply(250, "2.0.0", "OK")
            return await self._submit(txn, body)
        finally:
            with contextlib.suppress(Exception):
                body.discard()

    async def _submit(self, txn: Transaction, body: Spool) -> Reply:
        mail = txn.mail
        plan = txn.plan
        results = b""
        header = None
        if self.svc.mailauth is not None and not txn.relayed and not await self._trusted_client():
            checked = await mailauth.check_inbound(self.svc.mailauth, body, ip=self.ip, helo=self.helo,
                                                   mail_from=mail.sender)
            if checked.reject is not None:
                self.log.info("message from <%s> refused: %s", mail.sender, checked.reject[2])
                return Reply(*checked.reject)
            if checked.junk:
                plan.local = {u: replace(t, mailbox="Junk") for u, t in plan.local.items()}
            results, header = checked.results, checked.header
        # Ours above our Received, below the Return-Path the final delivery adds (RFC 8601 and
        # RFC 5321 4.4): the order in which they are served.
        return await self._store(txn, body, Trace(results + self._received(txn), header))

    async def _trusted_client(self) -> bool:
        """Mail from our own users' machines is not checked against the sender's DNS: an
        authenticated session, or a client whose address may relay (a Connect RELAY rule, or
        localhost with relay_from_localhost), as Postfix's permit_mynetworks skips milters'
        verdicts. SPF for a LAN address would fail and DMARC p=reject would refuse a colleague."""
        if self.principal is not None:
            return True
        if self._trusted is None:
            rule = await self.svc.directory.match_connect(self.ip, None)
            if rule is not None:
                self._trusted = rule.action is Action.RELAY
            else:
                self._trusted = self.svc.settings.directory.relay_from_localhost and is_localhost(self.ip)
        return self._trusted

    async def _store(self, txn: Transaction, body: Spool, trace: Trace) -> Reply:
        mail = txn.mail
        plan = txn.plan
        try:
            result = await plan.submit(
                self.svc.store,
                body,
                trace,
                sender=mail.sender,
                envid=mail.envid,
                ret=mail.ret,
                body=mail.body,
                smtputf8=mail.smtputf8,
                auth_user=self.principal.user if self.principal else None,
                client=self.ip,
            )
        except MailError as exc:
            self.log.info("message from <%s> not stored: %s %s %s", mail.sender, exc.code, exc.enhanced, exc.text)
            self.svc.forget_usage(list(plan.local))
            # After the data one reply answers for every recipient: a refusal for one local
            # recipient (quota, disk) is a temporary failure for all, never an acceptance
            # followed by a bounce.
            if exc.code >= 500:
                return Reply(451, "4.3.0", f"Message not stored: {exc.text}")
            return Reply(exc.code, exc.enhanced, exc.text)
        except Exception:
            self.log.exception("message from <%s> not stored", mail.sender)
            return R.LOCAL_ERROR
        self.svc.count_delivery(list(plan.local), body.size)
        key = self._rate_key(txn.relayed or txn.srs)
        if key is not None:
            self.svc.messages_rate.add(key)
            self.svc.rcpts_rate.add(key, plan.count)
        ids = [f"{r.user}:{r.uid}" for r in result.local]
        if result.queue_id is not None:
            ids.append(f"queue:{result.queue_id}")
            self.svc.queued()
        self.log.info("accepted from=<%s> size=%d rcpts=%d %s", mail.sender, body.size, plan.count, " ".join(ids))
        qid = f"Q{result.queue_id}" if result.queue_id is not None else (
            f"U{result.local[0].uid}" if result.local else "")
        return Reply(250, "2.0.0", f"OK {qid} {self.io.session_id}".replace("  ", " "))

    async def _check_originators(self, header: bytes, overflow: bool) -> Reply | None:
        """A logged-in user's message may name only them in From:, Sender:, Resent-From: and
        Resent-Sender:, and its header must be one that every reader parses the same way
        (smtp/header_check.py). None: accepted."""
        assert self.principal is not None
        user = self.principal.user
        if overflow:
            self.log.info("message refused: header over %d bytes, From: not checked", HEADER_SCAN_MAX)
            return Reply(552, "5.6.0", f"Message header longer than {HEADER_SCAN_MAX // 1024} KiB")
        check = check_originators(header)
        if check.error is not None:
            self.log.info("message refused: malformed header from %s: %s", user, check.error)
            return Reply(550, "5.6.0", f"Malformed message header: {check.error}")
        for name, addr in check.addresses:
            if not await self._owns(addr):
                self.log.info("message refused: %s: <%s> not owned by %s", name, addr, user)
                return Reply(550, "5.7.1", f"{name.title()}: address <{addr}> not owned by user {user}")
        return None

    def _received(self, txn: Transaction) -> bytes:
        """Our Received field (RFC 5321 4.4)."""
        mail = txn.mail
        key = (mail.smtputf8, self.core.esmtp, self.core.tls, self.principal, self.helo)
        if self._trace_key != key:
            # The part that only changes with EHLO, STARTTLS or AUTH is built once per session.
            proto = "UTF8SMTP" if mail.smtputf8 else ("ESMTP" if self.core.esmtp else "SMTP")
            if self.core.tls:
                proto += "S"
            if self.principal is not None:
                proto += "A"
            tls = self._tls_text()
            by = f"by {self.svc.hostname} (mailcove) with {proto} id {self.io.session_id}"
            if tls:
                by += f"\r\n\t({tls})"
            if self.principal is not None:
                by += f"\r\n\t(authenticated as {self.principal.user})"
            helo = _clean(self.helo) or "unknown"
            self._trace_prefix = f"Received: from {helo} ([{self.ip}])\r\n\t{by}"
            self._trace_key = key
        rcpt = f"\r\n\tfor <{txn.accepted[0]}>" if len(txn.accepted) == 1 else ""
        return f"{self._trace_prefix}{rcpt};\r\n\t{self.svc.date()}\r\n".encode("utf-8", "replace")

    _trace_key: tuple[Any, ...] | None = None
    _trace_prefix = ""

    def _tls_text(self) -> str:
        t = self.io.tls_info()
        if t is None:
            return ""
        version, cipher, bits = t
        return f"using {version} with cipher {cipher} ({bits}/{bits} bits)"

    def _abort_txn(self) -> None:
        txn, self.txn = self.txn, None
        if txn is not None and txn.body is not None:
            with contextlib.suppress(Exception):
                txn.body.discard()

    # --- AUTH ---------------------------------------------------------------------------------

    async def _auth_start(self, ev: Auth) -> Reply:
        if not self.core.tls and not self.settings.auth.allow_plaintext:
            return R.ENCRYPTION_REQUIRED
        if not self.svc.directory.throttle.check(self.ip).allowed:
            auth_failed(self.log, self.listener, self.ip, "", "throttled")
            return Reply(454, "4.7.0", "Too many failed logins, try again later")
        mech = server_mechanism(ev.mechanism)
        if mech is None:
            return R.AUTH_MECH_UNKNOWN
        self.mech = mech
        return await self._sasl(mech.start(ev.initial))

    async def _auth_step(self, line: str) -> Reply:
        if self.mech is None:
            return R.BAD_SEQUENCE
        return await self._sasl(self.mech.step(line))

    async def _sasl(self, step: Challenge | Credentials | SaslFailure) -> Reply:
        if isinstance(step, Challenge):
            return Reply(334, "", base64.b64encode(step.data).decode())
        self.mech = None
        if isinstance(step, SaslFailure):
            return R.AUTH_CANCELLED if step.reason == "cancelled" else R.AUTH_BAD_BASE64
        try:
            principal = await self.svc.directory.authenticate(step.username, step.password, client_ip=self.ip)
        except DirectoryBusy:
            return Reply(454, "4.7.0", "Temporary authentication failure, try again later")
        if principal is None:
            self.auth_failures += 1
            auth_failed(self.log, self.listener, self.ip, step.username, "wrong-credentials")
            if self.auth_failures >= self.settings.smtp.max_auth_failures:
                return Reply(421, "4.7.0", "Too many failed authentication attempts")
            return R.AUTH_FAILED
        self.principal = principal
        self._update_extensions()
        self.log.info("AUTH as %s", principal.user)
        return R.AUTH_OK


def _clean(text: str) -> str:
    """A client-supplied name for a trace header: printable ASCII, bounded."""
    return "".join(c if 32 < ord(c) < 127 and c not in "()\\" else "?" for c in text[:100])
