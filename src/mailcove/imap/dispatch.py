"""Events from the receiver -> ops/<command>.py, with state checks, the tagged reply, the BAD
counter, and the moments the selected mailbox's changes are announced."""

from __future__ import annotations

import asyncio
import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

from mailcove.core.errors import MailboxNotFound, MailError, QuotaExceeded
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
from mailcove.proto.imap.commands import Command

if TYPE_CHECKING:
    from mailcove.imap.session import Session

# command name -> ops module (one module per command; a few share one for a pair of twins)
_OPS = {
    "CAPABILITY": "capability", "NOOP": "noop", "LOGOUT": "logout", "STARTTLS": "starttls",
    "AUTHENTICATE": "authenticate", "LOGIN": "login", "ENABLE": "enable", "ID": "id",
    "SELECT": "select", "EXAMINE": "select", "CREATE": "create", "DELETE": "delete", "RENAME": "rename",
    "SUBSCRIBE": "subscribe", "UNSUBSCRIBE": "subscribe", "LIST": "list", "LSUB": "list",
    "NAMESPACE": "namespace", "STATUS": "status", "IDLE": "idle", "CHECK": "check", "CLOSE": "close",
    "UNSELECT": "unselect", "EXPUNGE": "expunge", "SEARCH": "search", "SORT": "sort", "THREAD": "thread",
    "FETCH": "fetch", "STORE": "store", "COPY": "copy", "MOVE": "copy", "GETQUOTA": "quota",
    "GETQUOTAROOT": "quota", "SETQUOTA": "quota", "COMPRESS": "compress",
}
_modules: dict[str, ModuleType] = {}


def _op(name: str) -> ModuleType:
    mod = _modules.get(name)
    if mod is None:
        mod = importlib.import_module(f"mailcove.imap.ops.{_OPS[name]}")
        _modules[name] = mod
    return mod


async def process(s: Session) -> None:
    from mailcove.imap.session import CloseConnection, MailboxGone

    while True:
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
            s.send(b"+ Ready for literal data")
            await s.io.flush()
            continue
        if isinstance(ev, AppendStart | AppendData | AppendEnd):
            from mailcove.imap.ops import append

            try:
                await append.on_event(s, ev)
            except (CloseConnection, MailboxGone, ConnectionError):
                raise
            except Exception:
                s.log.exception("APPEND failed")
                tag = s.append.tag if s.append is not None else getattr(ev, "tag", "*")
                if s.append is not None:
                    s.append.discard()
                    s.append = None
                if not isinstance(ev, AppendEnd):
                    s.receiver.reject_literal()
                s.tagged(tag, "NO", "APPEND failed: internal error", "SERVERBUG")
            continue
        if isinstance(ev, IdleDone):
            from mailcove.imap.ops import idle

            await idle.done(s)
            continue
        if isinstance(ev, AuthLine):
            from mailcove.imap.ops import authenticate

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
    from mailcove.imap.session import (
        AUTH,
        AUTH_CMDS,
        NO_EXPUNGE_DURING,
        NOT_AUTH,
        NOT_AUTH_ONLY,
        SELECTED,
        CloseConnection,
        MailboxGone,
        Reply,
    )

    name = cmd.name
    allowed = (
        name in ("CAPABILITY", "NOOP", "LOGOUT", "ID")
        or (name in NOT_AUTH_ONLY and s.state == NOT_AUTH)
        or (name in AUTH_CMDS and s.state in (AUTH, SELECTED))
        or (name not in AUTH_CMDS and name not in NOT_AUTH_ONLY and s.state == SELECTED)
    )
    if not allowed:
        if s.state == NOT_AUTH:
            s.tagged(cmd.tag, "BAD", f"{name} needs authentication first")
        elif name in NOT_AUTH_ONLY:
            s.tagged(cmd.tag, "BAD", "Already authenticated")
        else:
            s.tagged(cmd.tag, "BAD", f"{name} needs a selected mailbox")
        return
    code: str | None = None
    text = f"{name} completed"
    status = "OK"
    try:
        result: Any = await _op(name).run(s, cmd)
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
        seq_bound = name in NO_EXPUNGE_DURING and not cmd.uid
        s.announce(allow_expunge=not seq_bound)
    if s.tag_done is not None:
        # The op answered the tag itself (IDLE, AUTHENTICATE waiting for lines).
        s.tag_done = None
        return
    s.tagged(cmd.tag, status, text, code)
    if s.bads >= s.ctx.limits.max_bads:
        await s.bye("Too many invalid commands")
