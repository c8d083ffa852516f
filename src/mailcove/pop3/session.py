"""One POP3 session: the sans-IO core's commands -> directory and store; replies -> the socket.

Policy lives here: who may log in and when (TLS, [auth] allow_plaintext, the shared throttle),
the maildrop lock, what each command answers, and the UPDATE state. The protocol's syntax and
states live in mailcove.proto.pop3.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from typing import TYPE_CHECKING

from mailcove.core.clock import SYSTEM_CLOCK, Clock, Timer
from mailcove.core.errors import StoreError
from mailcove.directory.errors import DirectoryError
from mailcove.logs import auth_failed
from mailcove.net.limits import RequestDeadline
from mailcove.pop3.maildrop import Maildrop, MaildropCache, MaildropLocks, open_maildrop
from mailcove.proto.pop3 import commands as c
from mailcove.proto.pop3.connection import NEED_DATA, BadCommand, ServerConnection, State
from mailcove.proto.pop3.responses import (
    AUTH,
    IN_USE,
    SYS_PERM,
    SYS_TEMP,
    Continue,
    Err,
    Ok,
    Reply,
    capabilities,
    listing,
)
from mailcove.proto.pop3.sasl import SaslError, parse_plain
from mailcove.proto.pop3.stuffing import DotStuffer

if TYPE_CHECKING:
    from mailcove.config.settings import Pop3Settings
    from mailcove.net.listeners import Connection
    from mailcove.pop3.server import Pop3Deps
    from mailcove.store.api import MailStore

READ_SIZE = 64 * 1024
# Message bodies are read from the store and written in chunks of this size: bounded memory per
# session, and one large RETR never holds up other sessions for long. Bodies up to the store's
# inline limit (128 KiB) come in one read.
CHUNK = 128 * 1024
# Replies to pipelined commands are collected and written together up to this size.
FLUSH_AT = 64 * 1024
SASL_MECHANISMS = ("PLAIN",)


class _Stop(Exception):
    """Raised into a pending read: the server is shutting down or the client idled too long."""

    def __init__(self, reply: bytes) -> None:
        super().__init__(reply)
        self.reply = reply


class Pop3Shared:
    """What all POP3 sessions of one server process share (both listeners)."""

    def __init__(self, settings: Pop3Settings, store: MailStore, clock: Clock = SYSTEM_CLOCK) -> None:
        self.settings = settings
        self.clock = clock  # login and command deadlines, the lock's renewals, write stalls
        self.locks = MaildropLocks(store, settings.lock_ttl)
        self.cache = MaildropCache(settings.cache_messages)
        # Lease owners name this process and one of its sessions (host and pid for the logs).
        self.owner_prefix = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._next_session = 0

    def new_owner(self) -> str:
        self._next_session += 1
        return f"{self.owner_prefix}:{self._next_session}"


class Pop3Session:
    def __init__(self, ctx: Pop3Deps, shared: Pop3Shared, conn: Connection) -> None:
        self.ctx = ctx
        self.shared = shared
        self.settings = shared.settings
        self.conn = conn
        self.core = ServerConnection(
            max_line=self.settings.max_line_length, max_bad_commands=self.settings.max_bad_commands
        )
        self.store = ctx.store
        self.directory = ctx.directory
        self.maildrop: Maildrop | None = None
        self.locked_user: str | None = None
        self.lock_owner = shared.new_owner()
        self._renewer: asyncio.Task[None] | None = None
        self.auth_failures = 0
        self._out: list[bytes] = []
        self._out_size = 0
        self._reading = False
        # Deadlines, not per-read timeouts: login within login_timeout of connecting, then each
        # command within idle_timeout of the previous reply, however the bytes trickle in.
        self.clock = shared.clock
        now = self.clock.monotonic()
        self._login_deadline = now + self.settings.login_timeout
        self._request = RequestDeadline(self.settings.idle_timeout)
        self._request.begin(now)
        self._idle_handle: Timer | None = None
        self._stats = {"retr": 0, "retr_bytes": 0, "top": 0, "dele": 0}
        self._expunged = 0
        # Clients RETR in order (fetchmail, getmail, Thunderbird): while one message goes out, the
        # next is already read from the store, so the store round trip is off the client's path.
        self._prefetch: tuple[int, asyncio.Future[bytes]] | None = None

    # --- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        watcher = loop.create_task(self._watch_closing())
        self._idle_handle = self.clock.call_later(self._remaining(self.clock.monotonic()), self._check_idle)
        try:
            await self._serve()
        finally:
            watcher.cancel()
            self._drop_prefetch()
            if self._idle_handle is not None:
                self._idle_handle.cancel()
            await self._release()
            if self.maildrop is not None:
                s = self._stats
                self.conn.log.info(
                    "logout user=%s retr=%d/%d top=%d dele=%d expunged=%d",
                    self.maildrop.user, s["retr"], s["retr_bytes"], s["top"], s["dele"], self._expunged,
                )

    async def refuse(self, text: str) -> None:
        """Turn the connection away instead of greeting it (the connection caps)."""
        self._emit(Err(text, SYS_TEMP).to_bytes())
        with contextlib.suppress(Exception):
            await self.clock.wait_for(self._flush(), 5)

    async def _serve(self) -> None:
        core = self.core
        self._emit(Ok("mailcove POP3 ready.").to_bytes())
        while core.state is not State.CLOSED:
            event = core.next_event()
            if event is NEED_DATA:
                await self._flush()
                if self.conn.closing.is_set():
                    self._emit(Err("Server shutting down.", SYS_TEMP).to_bytes())
                    await self._flush()
                    return
                try:
                    data = await self._read()
                except _Stop as stop:
                    self._emit(stop.reply)
                    await self._flush()
                    return
                if not data:
                    return  # the client went away: nothing is deleted without QUIT
                core.receive_data(data)
                continue
            await self._dispatch(event)  # type: ignore[arg-type]
            if not core.has_complete_line():
                self._request.begin(self.clock.monotonic())
            if self._out_size >= FLUSH_AT or not core.has_complete_line():
                await self._flush()
        await self._flush()

    async def _read(self) -> bytes:
        self._reading = True
        try:
            data = await self.conn.reader.read(READ_SIZE)
        finally:
            self._reading = False
        return data

    async def _watch_closing(self) -> None:
        await self.conn.closing.wait()
        if self._reading:
            # Wake the pending read; a busy session checks `closing` before its next read.
            self.conn.reader.set_exception(_Stop(Err("Server shutting down.", SYS_TEMP).to_bytes()))

    def _remaining(self, now: float) -> float:
        if self.core.state is State.AUTHORIZATION:
            return min(self._login_deadline, self._request.at) - now
        return self._request.remaining(now)

    def _check_idle(self) -> None:
        remaining = self._remaining(self.clock.monotonic())
        if remaining > 0 or not self._reading:
            self._idle_handle = self.clock.call_later(max(remaining, 1.0), self._check_idle)
            return
        if self.core.state is State.AUTHORIZATION and self.clock.monotonic() >= self._login_deadline:
            self.conn.log.info("no login within %.0f s, disconnecting", self.settings.login_timeout)
            self.conn.reader.set_exception(_Stop(Err("Login timeout.", SYS_TEMP).to_bytes()))
            return
        self.conn.log.info("no complete command within %.0f s, disconnecting", self.settings.idle_timeout)
        self.conn.reader.set_exception(_Stop(Err("Disconnected for inactivity.").to_bytes()))

    def _emit(self, data: bytes) -> None:
        self._out.append(data)
        self._out_size += len(data)

    async def _flush(self) -> None:
        if not self._out:
            return
        data = self._out[0] if len(self._out) == 1 else b"".join(self._out)
        self._out.clear()
        self._out_size = 0
        writer = self.conn.writer
        writer.write(data)
        if writer.transport.get_write_buffer_size() > FLUSH_AT:
            # drain() will wait for the client to read. A client that never does must not hold the
            # session (and the maildrop lock) forever: TimeoutError ends the connection.
            await self.clock.wait_for(writer.drain(), self.settings.idle_timeout)
        else:
            await writer.drain()

    def _reply(self, reply: Reply) -> None:
        self._emit(self.core.send(reply))

    # --- commands ----------------------------------------------------------------------------

    async def _dispatch(self, event: c.Command | BadCommand) -> None:
        if isinstance(event, BadCommand):
            if event.fatal:
                self.conn.log.info("too many bad commands, disconnecting")
                self._reply(Err(f"{event.reason}. Too many bad commands, closing connection."))
            else:
                self._reply(Err(event.reason))
            return
        handler = _HANDLERS[type(event)]
        await handler(self, event)

    # AUTHORIZATION ---------------------------------------------------------------------------

    def _login_allowed(self) -> bool:
        return self.conn.is_tls or self.ctx.settings.auth.allow_plaintext

    def _plaintext_refused(self) -> Err:
        return Err("Plaintext authentication disallowed on non-secure (SSL/TLS) connections.", AUTH)

    async def _capa(self, cmd: c.Capa) -> None:
        authz = self.core.state is State.AUTHORIZATION
        allowed = authz and self._login_allowed()
        caps = capabilities(
            user=allowed,
            sasl=SASL_MECHANISMS if allowed else (),
            stls=authz and self.conn.tls_available and not self.conn.is_tls,
        )
        self._reply(Ok("Capability list follows"))
        self._emit(listing(caps))

    async def _stls(self, cmd: c.Stls) -> None:
        if self.conn.is_tls:
            self._reply(Err("TLS is already active."))
            return
        if not self.conn.tls_available:
            self._reply(Err("TLS is not available."))
            return
        reply = self.core.send(Ok("Begin TLS negotiation now."))
        await self._flush()  # replies to commands pipelined before STLS go out in plaintext first
        await self.conn.start_tls(reply)
        self.conn.log.info("TLS started")

    async def _user(self, cmd: c.User) -> None:
        if not self._login_allowed():
            self._reply(self._plaintext_refused())
            return
        self._reply(Ok("Send PASS."))

    async def _pass(self, cmd: c.Pass) -> None:
        login = self.core.user or ""
        await self._login(login, cmd.password, "USER")

    async def _auth(self, cmd: c.Auth) -> None:
        if cmd.mechanism is None:
            # Bare AUTH (draft-era mechanism listing, still sent by some clients).
            self._reply(Ok("Supported SASL mechanisms follow"))
            self._emit(listing([m.encode() for m in SASL_MECHANISMS]))
            return
        if cmd.mechanism not in SASL_MECHANISMS:
            self._reply(Err(f"Unsupported SASL mechanism {cmd.mechanism}."))
            return
        if not self._login_allowed():
            self._reply(self._plaintext_refused())
            return
        if cmd.initial is None:
            self._reply(Continue(b""))
            return
        await self._auth_plain(cmd.initial)

    async def _auth_data(self, cmd: c.AuthData) -> None:
        await self._auth_plain(cmd.data)

    async def _auth_cancel(self, cmd: c.AuthCancel) -> None:
        self._reply(Err("Authentication cancelled."))

    async def _auth_plain(self, data: bytes) -> None:
        try:
            creds = parse_plain(data)
        except SaslError as exc:
            self._reply(Err(str(exc) + "."))
            return
        if creds.authzid and creds.authzid != creds.authcid:
            # Logging in as someone else needs a master-user concept this server does not have.
            await self._login_failed(creds.authcid, "authzid-differs")
            return
        await self._login(creds.authcid, creds.password, "PLAIN")

    async def _login(self, login: str, password: str, mech: str) -> None:
        ip = self.conn.peer_ip
        verdict = self.directory.throttle.check(ip)
        if not verdict.allowed:
            auth_failed(self.conn.log, self.conn.listener, ip, login, "throttled")
            self._reply(Err("Too many failed logins; try again later.", SYS_TEMP))
            await self._count_auth_failure()
            return
        try:
            principal = await self.directory.authenticate(login, password, client_ip=ip)
        except DirectoryError as exc:
            self.conn.log.warning("login of %r failed: %s", login, exc)
            self._reply(Err("Authentication service unavailable; try again later.", SYS_TEMP))
            return
        if principal is None:
            await self._login_failed(login, "wrong-credentials")
            return
        user = principal.user
        try:
            locked = await self.shared.locks.acquire(user, self.lock_owner)
        except StoreError as exc:
            self.conn.log.warning("login user=%s: cannot take the maildrop lock: %s", user, exc)
            self._reply(Err("Cannot open the mailbox; try again later.", SYS_TEMP))
            return
        if not locked:
            self.conn.log.info("login user=%s refused: maildrop in use", user)
            self._reply(Err("Mailbox is locked by another POP3 session.", IN_USE))
            return
        self.locked_user = user
        self._renewer = asyncio.get_running_loop().create_task(self._renew_lock(user))
        try:
            self.maildrop = await open_maildrop(
                self.store, user, self.shared.cache, reuse_xuidl=self.settings.reuse_xuidl,
                hidden_flag=self.settings.deleted_flag,
            )
        except StoreError as exc:
            await self._release()
            self.conn.log.warning("login user=%s: cannot open maildrop: %s", user, exc)
            self._reply(Err("Cannot open the mailbox; try again later.", SYS_TEMP))
            return
        md = self.maildrop
        self.conn.log.info("login user=%s mech=%s messages=%d octets=%d", user, mech, md.count, md.octets)
        self._reply(Ok(f"Logged in, {md.count} messages ({md.octets} octets)."))

    async def _login_failed(self, login: str, why: str) -> None:
        auth_failed(self.conn.log, self.conn.listener, self.conn.peer_ip, login, why)
        self._reply(Err("Authentication failed.", AUTH))
        await self._count_auth_failure()

    async def _count_auth_failure(self) -> None:
        self.auth_failures += 1
        if self.auth_failures >= self.settings.max_auth_failures:
            self._emit(Err("Too many failed logins, closing connection.").to_bytes())
            await self._flush()
            self.core.close()

    async def _release(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            self._renewer = None
        if self.locked_user is not None:
            user, self.locked_user = self.locked_user, None
            await self.shared.locks.release(user, self.lock_owner)

    async def _renew_lock(self, user: str) -> None:
        """Keep the lease while the session lives. A lease lost anyway (this node stalled past
        the TTL and another session took the maildrop) ends the session without UPDATE: two
        sessions must never both act on one maildrop."""
        every = self.shared.locks.ttl / 3
        while True:
            await self.clock.sleep(every)
            try:
                held = await self.shared.locks.renew(user, self.lock_owner)
            except StoreError as exc:  # try again next time; the TTL leaves two more chances
                self.conn.log.warning("renewing the maildrop lock of %s failed: %s", user, exc)
                continue
            if not held:
                self.conn.log.warning("maildrop lock of %s lost; ending the session", user)
                self.locked_user = None
                self._renewer = None
                self.conn.reader.set_exception(_Stop(Err("Maildrop lock lost; log in again.", SYS_TEMP).to_bytes()))
                return

    # TRANSACTION -----------------------------------------------------------------------------

    def _md(self) -> Maildrop:
        assert self.maildrop is not None
        return self.maildrop

    def _no_such(self, msg: int) -> Err:
        md = self._md()
        if md.exists(msg):
            return Err(f"Message {msg} is deleted.")
        return Err(f"No such message {msg}.")

    async def _stat(self, cmd: c.Stat) -> None:
        md = self._md()
        self._reply(Ok(f"{md.count} {md.octets}"))

    async def _list(self, cmd: c.List) -> None:
        md = self._md()
        if cmd.msg is None:
            self._reply(Ok(f"{md.count} messages ({md.octets} octets)"))
            self._emit(listing([md.list_lines()] if md.count else []))
            return
        i = md.index_of(cmd.msg)
        self._reply(self._no_such(cmd.msg) if i is None else Ok(f"{cmd.msg} {md.sizes[i]}"))

    async def _uidl(self, cmd: c.Uidl) -> None:
        md = self._md()
        if cmd.msg is None:
            self._reply(Ok())
            self._emit(listing([md.uidl_lines()] if md.count else []))
            return
        i = md.index_of(cmd.msg)
        if i is None:
            self._reply(self._no_such(cmd.msg))
        else:
            self._reply(Ok(f"{cmd.msg} {md.uidls[i].decode('ascii')}"))

    async def _noop(self, cmd: c.Noop) -> None:
        self._reply(Ok())

    async def _dele(self, cmd: c.Dele) -> None:
        md = self._md()
        i = md.index_of(cmd.msg)
        if i is None:
            self._reply(self._no_such(cmd.msg))
            return
        md.delete(i)
        self._stats["dele"] += 1
        self._reply(Ok(f"Message {cmd.msg} deleted."))

    async def _rset(self, cmd: c.Rset) -> None:
        md = self._md()
        md.reset()
        self._reply(Ok(f"{md.count} messages ({md.octets} octets)."))

    async def _retr(self, cmd: c.Retr) -> None:
        md = self._md()
        i = md.index_of(cmd.msg)
        if i is None:
            self._reply(self._no_such(cmd.msg))
            return
        uid, size = md.uids[i], md.sizes[i]
        # The first chunk is read before +OK, so a message expunged by another session meanwhile
        # still gets a clean -ERR.
        try:
            first = await self._read_first(md, i, uid, size)
        except StoreError:
            self._reply(Err(f"Message {cmd.msg} was removed by another session.", SYS_PERM))
            return
        md.retrieved[i] = 1
        self._stats["retr"] += 1
        self._stats["retr_bytes"] += size
        self._reply(Ok(f"{size} octets"))
        stuffer = DotStuffer()
        self._emit(stuffer.feed(first))
        if size > CHUNK and len(first) == CHUNK:
            await self._stream(md.mailbox_id, uid, CHUNK, size, stuffer)
        self._emit(stuffer.end())

    async def _read_first(self, md: Maildrop, i: int, uid: int, size: int) -> bytes:
        pre = self._prefetch
        self._prefetch = None
        if pre is not None and pre[0] == i:
            first = await pre[1]
        else:
            if pre is not None:
                _discard(pre[1])
            first = await self.store.read_message(md.mailbox_id, uid, 0, CHUNK if size > CHUNK else None)
        nxt = i + 1
        if nxt < len(md.uids) and not md.deleted[nxt] and md.sizes[nxt] <= CHUNK:
            fut = asyncio.ensure_future(self.store.read_message(md.mailbox_id, md.uids[nxt]))
            self._prefetch = (nxt, fut)
        return first

    def _drop_prefetch(self) -> None:
        if self._prefetch is not None:
            _discard(self._prefetch[1])
            self._prefetch = None

    async def _stream(self, mailbox_id: int, uid: int, start: int, end: int, stuffer: DotStuffer) -> None:
        pos = start
        while pos < end:
            await self._flush()
            try:
                chunk = await self.store.read_message(mailbox_id, uid, pos, min(CHUNK, end - pos))
            except StoreError:
                # The +OK is out; the only honest thing left is to end the connection.
                self.conn.log.warning("message uid=%d vanished while being sent; closing", uid)
                raise ConnectionAbortedError("message removed during RETR") from None
            if not chunk:
                break
            self._emit(stuffer.feed(chunk))
            pos += len(chunk)

    async def _top(self, cmd: c.Top) -> None:
        md = self._md()
        i = md.index_of(cmd.msg)
        if i is None:
            self._reply(self._no_such(cmd.msg))
            return
        uid, size = md.uids[i], md.sizes[i]
        try:
            metas = await self.store.fetch_meta(md.mailbox_id, [uid])
            if not metas:
                raise StoreError("gone")
            body_start = metas[0].info.root.body_start
            head = await self.store.read_message(md.mailbox_id, uid, 0, min(body_start, CHUNK))
        except StoreError:
            self._reply(Err(f"Message {cmd.msg} was removed by another session.", SYS_PERM))
            return
        self._stats["top"] += 1
        self._reply(Ok(f"Top of message {cmd.msg} follows"))
        stuffer = DotStuffer()
        self._emit(stuffer.feed(head))
        if body_start > CHUNK:
            await self._stream(md.mailbox_id, uid, CHUNK, body_start, stuffer)
        remaining = cmd.lines
        pos = body_start
        while remaining > 0 and pos < size:
            await self._flush()
            try:
                chunk = await self.store.read_message(md.mailbox_id, uid, pos, min(CHUNK, size - pos))
            except StoreError:
                raise ConnectionAbortedError("message removed during TOP") from None
            if not chunk:
                break
            n = chunk.count(b"\n")
            if n >= remaining:
                cut = -1
                for _ in range(remaining):
                    cut = chunk.index(b"\n", cut + 1)
                chunk = chunk[: cut + 1]
                remaining = 0
            else:
                remaining -= n
            self._emit(stuffer.feed(chunk))
            pos += len(chunk)
        self._emit(stuffer.end())

    async def _quit(self, cmd: c.Quit) -> None:
        if self.core.state is State.AUTHORIZATION:
            self._reply(Ok("Logging out."))
            return
        md = self._md()
        self.core.begin_update()
        expunge, seen = md.marked()
        try:
            if seen and self.settings.mark_seen:
                await self.store.store_flags(md.mailbox_id, seen, "+", ["\\Seen"])
            if expunge and self.settings.deleted_flag:
                # Dovecot's pop3_deleted_flag: hidden from POP3 for good, kept for IMAP
                await self.store.store_flags(md.mailbox_id, expunge, "+", [self.settings.deleted_flag])
            elif expunge:
                removed = await self.store.expunge(md.mailbox_id, expunge)
                self._expunged = len(removed)
        except StoreError as exc:
            self.conn.log.warning("UPDATE failed for user=%s: %s", md.user, exc)
            await self._release()
            self._reply(Err("Some deleted messages were not removed.", SYS_TEMP))
            return
        left = md.count
        # Free the maildrop before the client can read +OK: a client that logs in again right
        # after QUIT must not find its own old session still holding the lock.
        await self._release()
        self._reply(Ok(f"Logging out, {len(expunge)} messages deleted, {left} left."))


def _discard(fut: asyncio.Future[bytes]) -> None:
    """Drop a prefetch nobody will use; its outcome (even an error) is consumed, not logged."""
    if fut.done():
        if not fut.cancelled():
            fut.exception()
    else:
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())
        fut.cancel()


_HANDLERS = {
    c.Capa: Pop3Session._capa,
    c.Stls: Pop3Session._stls,
    c.User: Pop3Session._user,
    c.Pass: Pop3Session._pass,
    c.Auth: Pop3Session._auth,
    c.AuthData: Pop3Session._auth_data,
    c.AuthCancel: Pop3Session._auth_cancel,
    c.Stat: Pop3Session._stat,
    c.List: Pop3Session._list,
    c.Uidl: Pop3Session._uidl,
    c.Noop: Pop3Session._noop,
    c.Dele: Pop3Session._dele,
    c.Rset: Pop3Session._rset,
    c.Retr: Pop3Session._retr,
    c.Top: Pop3Session._top,
    c.Quit: Pop3Session._quit,
}
