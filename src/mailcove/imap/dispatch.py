"""The IMAP command table, and the loop from receiver events to it: state checks, the tagged
reply, the BAD counter, and the moments the selected mailbox's changes are announced.

`COMMANDS` is the one table of commands: keyed by the parsed command's type (what
`proto.imap.commands` produces), each entry names its handler, imported directly, and the states
that allow it. The parser side (name -> parser -> that type) is the sans-IO core's own table; a
test checks that every type the parser can produce has an entry here and no entry is dead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mailcove.core import cooperative
from mailcove.core.errors import MailboxNotFound, MailError, QuotaExceeded
from mailcove.imap.ops import (
    append,
    authenticate,
    capability,
    check,
    close,
    compress,
    copy,
    create,
    delete,
    enable,
    expunge,
    fetch,
    id,
    idle,
    list,
    login,
    logout,
    namespace,
    noop,
    quota,
    rename,
    search,
    select,
    sort,
    starttls,
    status,
    store,
    subscribe,
    thread,
    unselect,
)
from mailcove.imap.session import AUTH, NOT_AUTH, SELECTED, CloseConnection, MailboxGone, Reply, Session
from mailcove.proto.imap import (
    NEED_DATA,
    AppendData,
    AppendEnd,
    AppendStart,
    AuthLine,
    BadCommand,
    IdleDone,
    NeedContinuation,
    ProtocolViolation,
)
from mailcove.proto.imap import commands as c
from mailcove.proto.imap.commands import Command

ANY = frozenset({NOT_AUTH, AUTH, SELECTED})
NOT_AUTHENTICATED = frozenset({NOT_AUTH})
AUTHENTICATED = frozenset({AUTH, SELECTED})
SELECTED_ONLY = frozenset({SELECTED})


@dataclass(frozen=True, slots=True)
class Entry:
    """How a command runs: its handler and the states it is allowed in (RFC 9051 section 6).
    `seq_bound`: answered by sequence number, so no EXPUNGE may be sent with it (RFC 9051
    7.4.1); its UID form may."""

    run: Callable[[Session, Any], Awaitable[Any]]
    states: frozenset[str]
    seq_bound: bool = False


COMMANDS: dict[type[Command], Entry] = {
    c.Capability: Entry(capability.run, ANY),
    c.Noop: Entry(noop.run, ANY),
    c.Logout: Entry(logout.run, ANY),
    c.Id: Entry(id.run, ANY),
    c.StartTLS: Entry(starttls.run, NOT_AUTHENTICATED),
    c.Authenticate: Entry(authenticate.run, NOT_AUTHENTICATED),
    c.Login: Entry(login.run, NOT_AUTHENTICATED),
    c.Enable: Entry(enable.run, AUTHENTICATED),
    c.Select: Entry(select.run, AUTHENTICATED),
    c.Examine: Entry(select.run, AUTHENTICATED),
    c.Create: Entry(create.run, AUTHENTICATED),
    c.Delete: Entry(delete.run, AUTHENTICATED),
    c.Rename: Entry(rename.run, AUTHENTICATED),
    c.Subscribe: Entry(subscribe.run, AUTHENTICATED),
    c.Unsubscribe: Entry(subscribe.run, AUTHENTICATED),
    c.List: Entry(list.run, AUTHENTICATED),
    c.Lsub: Entry(list.run, AUTHENTICATED),
    c.Namespace: Entry(namespace.run, AUTHENTICATED),
    c.Status: Entry(status.run, AUTHENTICATED),
    c.Idle: Entry(idle.run, AUTHENTICATED),
    c.GetQuota: Entry(quota.run, AUTHENTICATED),
    c.GetQuotaRoot: Entry(quota.run, AUTHENTICATED),
    c.SetQuota: Entry(quota.run, AUTHENTICATED),
    c.Compress: Entry(compress.run, AUTHENTICATED),
    c.Check: Entry(check.run, SELECTED_ONLY),
    c.Close: Entry(close.run, SELECTED_ONLY),
    c.Unselect: Entry(unselect.run, SELECTED_ONLY),
    c.Expunge: Entry(expunge.run, SELECTED_ONLY),
    c.Search: Entry(search.run, SELECTED_ONLY, seq_bound=True),
    c.Sort: Entry(sort.run, SELECTED_ONLY, seq_bound=True),
    c.Thread: Entry(thread.run, SELECTED_ONLY, seq_bound=True),
    c.Fetch: Entry(fetch.run, SELECTED_ONLY, seq_bound=True),
    c.Store: Entry(store.run, SELECTED_ONLY, seq_bound=True),
    c.Copy: Entry(copy.run, SELECTED_ONLY),
    c.Move: Entry(copy.run, SELECTED_ONLY),
}


async def process(s: Session) -> None:
    while True:
        # Pipelined commands (200,000 NOOPs inflated from a few KB after COMPRESS) are answered
        # without any read waiting: other clients get their turns between them.
        await cooperative.pause()
        ev = s.receiver.next_event()
        if ev is NEED_DATA:
            return
        if isinstance(ev, ProtocolViolation):
            if ev.tag:
                s.tagged(ev.tag, "BAD", ev.text)
            await s.bye(ev.text)
        if isinstance(ev, BadCommand):
            await _bad(s, ev)
            continue
        if isinstance(ev, NeedContinuation):
            if ev.append and s.append is not None and s.append.refused:
                continue
            s.continuation("Ready for literal data")
            await s.io.flush()
            continue
        if isinstance(ev, AppendStart | AppendData | AppendEnd):
            try:
                await append.on_event(s, ev)
            except (CloseConnection, MailboxGone, ConnectionError):
                raise
            except Exception:
                s.log.exception("APPEND failed")
                if s.append is not None:
                    tag = s.append.tag
                elif isinstance(ev, AppendStart | AppendEnd):
                    tag = ev.tag
                else:
                    tag = "*"  # a chunk with no APPEND in progress: nothing to tag the NO with
                if s.append is not None:
                    s.append.discard()
                    s.append = None
                if not isinstance(ev, AppendEnd):
                    s.receiver.reject_literal()
                s.tagged(tag, "NO", "APPEND failed: internal error", "SERVERBUG")
            continue
        if isinstance(ev, IdleDone):
            await idle.done(s)
            continue
        if isinstance(ev, AuthLine):
            await authenticate.on_line(s, ev)
            continue
        if isinstance(ev, Command):
            s.bads = 0
            try:
                await run_command(s, ev)
            except CloseConnection:
                raise
            await s.io.maybe_flush()
            if s.idling is not None:
                return  # IDLE: the session loop now waits for DONE or mailbox changes


async def _bad(s: Session, ev: BadCommand) -> None:
    if ev.status == "BAD":
        s.bads += 1
    if s.append is not None:
        s.append.discard()
        s.append = None
    tag = ev.tag or "*"
    if s.idling is not None and ev.tag is None:
        # Anything but DONE in IDLE: the receiver is back in command mode; end the IDLE command
        # with that BAD, as Dovecot does.
        tag, s.idling = s.idling, None
    s.tagged(tag, ev.status, ev.text, ev.code)
    if s.bads >= s.ctx.limits.max_bads:
        await s.bye("Too many invalid commands")


async def run_command(s: Session, cmd: Command) -> None:
    name = cmd.name
    entry = COMMANDS[type(cmd)]
    if s.state not in entry.states:
        if s.state == NOT_AUTH:
            s.tagged(cmd.tag, "BAD", f"{name} needs authentication first")
        elif entry.states == NOT_AUTHENTICATED:
            s.tagged(cmd.tag, "BAD", "Already authenticated")
        else:
            s.tagged(cmd.tag, "BAD", f"{name} needs a selected mailbox")
        return
    code: str | None = None
    text = f"{name} completed"
    status = "OK"
    try:
        result: Any = await entry.run(s, cmd)
        if isinstance(result, tuple):
            code, text = result
        elif isinstance(result, str):
            text = result
    except Reply as r:
        status, code, text = r.status, r.code, r.text
    except QuotaExceeded as exc:
        status, code, text = "NO", "OVERQUOTA", exc.text
    except MailboxNotFound as exc:
        status, code, text = "NO", "NONEXISTENT", exc.text
    except MailError as exc:
        status, code, text = "NO", "CANNOT" if not exc.temporary else "UNAVAILABLE", exc.text
    except (CloseConnection, MailboxGone, ConnectionError, asyncio.CancelledError):
        raise
    except Exception:
        # A bug must cost one command, not the session: log it with the session id, answer NO.
        s.log.exception("%s failed", name)
        status, code, text = "NO", "SERVERBUG", f"{name} failed: internal error"
    if status == "BAD":
        s.bads += 1
    if s.state in (SELECTED,) and s.view is not None and s.idling is None:
        await s.ctx.registry.settle(s.view.cache.user)
        seq_bound = entry.seq_bound and not cmd.uid
        await s.announce(allow_expunge=not seq_bound)
    if s.tag_done is not None:
        # The op answered the tag itself (IDLE, AUTHENTICATE waiting for lines).
        s.tag_done = None
        return
    s.tagged(cmd.tag, status, text, code)
    if s.bads >= s.ctx.limits.max_bads:
        await s.bye("Too many invalid commands")
