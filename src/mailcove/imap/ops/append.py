"""APPEND with MULTIAPPEND (RFC 3502), LITERAL+ / literal8, UIDPLUS APPENDUID (RFC 4315).

Each message is streamed into `store.new_spool(normalize_newlines=True)` as its literal arrives
(memory up to the store's inline limit, then a temp file), and committed with `store.append()`
when the command's final line has arrived. The mailbox and the quota are checked when the first
literal is announced, so a synchronising literal that would be refused is never sent at all.
The store has no multi-message transaction: if a later message of a MULTIAPPEND fails, the
earlier ones of the same command are expunged again, so the command is all or nothing as the
RFC asks (another session may briefly see them)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mailcove.core.errors import MailboxNotFound, MailError, QuotaExceeded
from mailcove.imap.session import AUTH, SELECTED, Session
from mailcove.message import is_crlf_clean
from mailcove.message.binary import encode_binary_parts
from mailcove.proto.imap.commands import AppendData, AppendEnd, AppendStart
from mailcove.proto.imap.seqset import compact
from mailcove.store.api import IndexEntry


@dataclass
class _Message:
    spool: Any
    flags: tuple[str, ...]
    date: datetime | None
    binary: bool = False  # a literal8: spooled as sent, line ends not normalised
    raw_binary: bool = False  # a literal8 chunk had a NUL or a line end other than CRLF


@dataclass
class AppendState:
    tag: str
    mailbox: str
    mailbox_id: int = 0
    messages: list[_Message] = field(default_factory=list)
    refused: bool = False

    def discard(self) -> None:
        for m in self.messages:
            m.spool.discard()
        self.messages.clear()


async def on_event(s: Session, ev: AppendStart | AppendData | AppendEnd) -> None:
    if isinstance(ev, AppendStart):
        await _start(s, ev)
    elif isinstance(ev, AppendData):
        st = s.append
        if st is not None and not st.refused and st.messages:
            m = st.messages[-1]
            if m.binary and not m.raw_binary:
                # a chunk may end between CR and LF: a false alarm only costs the slow path
                m.raw_binary = b"\x00" in ev.data or not is_crlf_clean(ev.data)
            m.spool.write(ev.data)
    else:
        await _end(s, ev)


async def _refuse(s: Session, tag: str, status: str, text: str, code: str | None) -> None:
    s.receiver.reject_literal()
    if s.append is not None:
        s.append.discard()
    s.append = None
    s.tagged(tag, status, text, code)


async def _start(s: Session, ev: AppendStart) -> None:
    if s.state not in (AUTH, SELECTED):
        await _refuse(s, ev.tag, "BAD", "APPEND needs authentication first", None)
        return
    st = s.append
    if ev.index == 0 or st is None:
        if st is not None:
            st.discard()
        st = s.append = AppendState(ev.tag, ev.mailbox)
        try:
            mb = await s.store.get_mailbox(s.user, ev.mailbox)
            if mb.noselect:
                raise MailboxNotFound("not selectable")
        except MailboxNotFound:
            await _refuse(s, ev.tag, "NO", "Mailbox does not exist", "TRYCREATE")
            return
        except MailError as exc:
            await _refuse(s, ev.tag, "NO", exc.text, "CANNOT")
            return
        st.mailbox_id = mb.id
    if any(f == "\\Recent" for f in ev.flags):
        await _refuse(s, ev.tag, "BAD", "\\Recent cannot be set", None)
        return
    usage = await s.store.usage(s.user)
    pending = sum(m.spool.size for m in st.messages)
    if (usage.max_bytes and usage.bytes + pending + ev.size > usage.max_bytes) or (
        usage.max_messages and usage.messages + len(st.messages) + 1 > usage.max_messages
    ):
        await _refuse(s, ev.tag, "NO", "Quota exceeded", "OVERQUOTA")
        return
    # A literal8 may hold binary parts whose bare CR/LF are content: spool it as sent and let
    # `_source` re-encode those parts before the line ends are normalised (RFC 3516 4.4).
    spool = s.store.new_spool(normalize_newlines=not ev.binary)
    st.messages.append(_Message(spool, ev.flags, ev.date, binary=ev.binary))


def _read_spool(spool: Any) -> bytes:
    spool.finish()
    data = spool.getvalue() if spool.inline else spool.path.read_bytes()
    spool.discard()
    return data


async def _source(m: _Message) -> Any:
    """The spool, or for a literal8 with binary content the message with its binary parts
    re-encoded as base64 (`message.binary`); `store.append` normalises the line ends of bytes.
    The size is bounded by APPENDLIMIT."""
    if not m.raw_binary:
        return m.spool
    data = await asyncio.to_thread(_read_spool, m.spool)
    return await asyncio.to_thread(encode_binary_parts, data)


async def _end(s: Session, ev: AppendEnd) -> None:
    st = s.append
    s.append = None
    if st is None or st.refused:
        return
    done: list[tuple[int, int, int]] = []  # (uidvalidity, uid, modseq)
    try:
        for m in st.messages:
            when = m.date.timestamp() if m.date is not None else None
            r = await s.store.append(s.user, st.mailbox, await _source(m), flags=m.flags, internaldate=when)
            done.append((r.uidvalidity, r.uid, r.modseq))
            cache = s.ctx.registry.caches.get(r.mailbox_id)
            if cache is not None:
                await s.ctx.registry.add_appended(cache, [r.uid], [IndexEntry(r.uid, frozenset(m.flags), r.modseq)])
    except MailError as exc:
        for m in st.messages[len(done):]:
            m.spool.discard()
        if done:
            await s.store.expunge(st.mailbox_id, [d[1] for d in done])
        code = "OVERQUOTA" if isinstance(exc, QuotaExceeded) else (
            "TRYCREATE" if isinstance(exc, MailboxNotFound) else "CANNOT")
        s.tagged(ev.tag, "NO", exc.text, code)
        return
    if s.state == SELECTED:
        await s.announce(allow_expunge=True)
    code = f"APPENDUID {done[0][0]} {compact(d[1] for d in done)}" if done else None
    s.tagged(ev.tag, "OK", "APPEND completed", code)
