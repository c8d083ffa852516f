"""FETCH and UID FETCH (RFC 9051 6.4.5 / 6.4.9), BINARY (RFC 3516), CONDSTORE CHANGEDSINCE and
MODSEQ (RFC 7162 3.1.4), QRESYNC VANISHED (3.2.6).

Three speeds:
- FLAGS / UID / MODSEQ only: no store call at all. The lines are built from the mailbox cache
  with one bytes-format per message and a per-flag-set cache of the encoded list (a mailbox has
  few distinct flag sets), written in slices so 100,000 lines never sit in one buffer.
- Metadata items (ENVELOPE, BODYSTRUCTURE, INTERNALDATE, RFC822.SIZE): the process's MetaCache
  (imap/metacache.py), which reads only its misses with `store.fetch_meta`, in batches; the
  serialisers (imap/fmt.py) work from the MessageInfo scanned at delivery. No message is parsed
  at FETCH time.
- Body sections: byte ranges from the MessageInfo offsets, read with `store.read_message(start,
  length)`. Up to `EAGER_MAX` bytes are read before the response is started; larger ones are
  streamed in `CHUNK` slices, each written and drained before the next is read, so one 50 MB
  message costs 256 KiB of memory and never holds up other sessions.

A message another session expunged, that this client has not been told of yet, is answered from
what is left: its flags and modseq (kept by the view) for FLAGS/UID/MODSEQ, and nothing for items
that need the store's copy, which is gone. The command then ends `OK [EXPUNGEISSUED]`, as
Dovecot's does, never NO: a FETCH that names a message it may still see has not failed (RFC 9051
7.4.1 keeps the sequence numbers valid, and RFC 2180 4.1 allows either answer for the data). The
stronger choice of RFC 2180 4.1.1 (keep the bytes readable until every session was told) would
need a reference count in the store that outlives processes and nodes; not worth it for data
the client is about to be told is gone.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailcove.core import cooperative
from mailcove.core.errors import MailboxNotFound
from mailcove.imap import fmt
from mailcove.imap.session import Reply, Session
from mailcove.message import SectionNotFound, UnknownTransferEncoding, decode_transfer, find_part, find_section
from mailcove.proto.imap.commands import Fetch, FetchAtt
from mailcove.proto.imap.responses import LiteralRef, internaldate, literal_header

if TYPE_CHECKING:
    from mailcove.imap.metacache import Formatter
    from mailcove.imap.selected import SelectedView
    from mailcove.message.model import MessageInfo
    from mailcove.store.api import MessageMeta

FAST_ITEMS = frozenset({"FLAGS", "UID", "MODSEQ"})
META_BATCH = 200
EAGER_MAX = 256 * 1024
# Items that need message bytes; for those, small messages are read many per store call
# (one hop to a reader thread per batch instead of one per message), up to this many bytes.
BODY_ITEMS = frozenset({"RFC822", "RFC822.HEADER", "RFC822.TEXT", "BINARY", "BINARY.SIZE"})
PREFETCH_BYTES = 4 * 1024 * 1024
HEADER_TEXTS = frozenset({"HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT"})
CHUNK = 256 * 1024
FAST_SLICE = 2000


@dataclass(frozen=True, slots=True)
class _Range:
    start: int
    end: int


async def run(s: Session, cmd: Fetch) -> tuple[str, str] | str:
    view = s.require_view()
    if not cmd.uid and view.bad_seqs(cmd.seqset):
        raise Reply("BAD", "Invalid message sequence number")
    names = {a.name for a in cmd.items}
    if cmd.changedsince is not None or "MODSEQ" in names:
        s.use_condstore()
    uids = view.resolve(cmd.seqset, cmd.uid, s.saved_search)
    cache = view.cache
    if cmd.changedsince is not None:
        since = cmd.changedsince
        uids = [u for u in uids if (cache.modseq_of(u) or 0) > since]
        if cmd.vanished:
            ranges = cmd.seqset.resolve(view.max_uid)
            gone = await s.store.expunged_since(cache.mailbox_id, since)
            gone = [u for u in gone if any(a <= u <= b for a, b in ranges)]
            if gone:
                s.write(s.enc.vanished(gone, earlier=True))
    with_uid = cmd.uid or "UID" in names
    # RFC 7162 3.1.4.1: once CONDSTORE is on, every FETCH that carries FLAGS carries MODSEQ too.
    with_modseq = s.condstore and ("MODSEQ" in names or "FLAGS" in names or cmd.changedsince is not None)
    seen_now: set[int] = set()
    if not view.readonly and any(a.sets_seen for a in cmd.items):
        unseen = [u for u in uids if "\\Seen" not in view.flags_of(u) and not view.is_expunged(u)]
        if unseen:
            result = await s.store.store_flags(cache.mailbox_id, unseen, "+", ["\\Seen"])
            await cache.apply_flags(result.changed, origin=view)
            seen_now = {e.uid for e in result.changed}
    if names <= FAST_ITEMS:
        await _fast(s, view, uids, with_uid, "FLAGS" in names, with_modseq)
        return "FETCH completed"
    missing = await _full(s, view, cmd.items, uids, with_uid, with_modseq, seen_now)
    view.pending_flags.difference_update(seen_now)
    if missing:
        return "EXPUNGEISSUED", "Some messages were already expunged"
    return "FETCH completed"


async def _fast(s: Session, view: SelectedView, uids: list[int], with_uid: bool, with_flags: bool,
                with_modseq: bool) -> None:
    cache = view.cache
    fb = s.flags_bytes
    recent = view.recent
    in_step = view.in_step
    for i in range(0, len(uids), FAST_SLICE):
        await cooperative.pause()
        chunk = uids[i : i + FAST_SLICE]
        # Another session's new keyword may have arrived while the last slice was flushed.
        s.check_keywords()
        first = view.seq_of(chunk[0]) or 1
        # The common case (UID FETCH 1:* (FLAGS)): a contiguous run whose positions in view and
        # cache agree, encoded in one call.
        if (in_step and with_uid and with_flags and not with_modseq
                and view.uids[first + len(chunk) - 2] == chunk[-1]):
            flags = cache.flags
            if recent:
                encoded = [fb(flags[i], uid in recent) for i, uid in enumerate(chunk, first - 1)]
            else:
                encoded = [fb(flags[i]) for i in range(first - 1, first - 1 + len(chunk))]
            s.write(s.enc.fetch_uid_flags(first, chunk, encoded))
        else:
            for uid in chunk:
                seq = view.seq_of(uid)
                if seq is None:
                    continue
                items: list[tuple[str, bytes]] = []
                if with_uid:
                    items.append(("UID", b"%d" % uid))
                if with_flags:
                    items.append(("FLAGS", fb(view.flags_of(uid), uid in recent)))
                if with_modseq:
                    items.append(("MODSEQ", b"(%d)" % view.modseq_of(uid)))
                s.write(s.enc.fetch_bytes(seq, items))
        await s.io.maybe_flush()


async def _full(s: Session, view: SelectedView, items: tuple[FetchAtt, ...], uids: list[int], with_uid: bool,
                with_modseq: bool, seen_now: set[int]) -> bool:
    """Every other FETCH. Returns True when some messages could not be fetched (expunged)."""
    cache = view.cache
    kept = cache.registry.metas
    missing = False
    names = {a.name for a in items}
    body_items = [a for a in items if a.name in BODY_ITEMS or (a.name == "BODY" and a.section is not None)]
    # Only the top-level header is asked for: answered from the header the MetaCache keeps.
    header_only = bool(body_items) and all(_header_only(a) for a in body_items)
    for i in range(0, len(uids), META_BATCH):
        chunk = uids[i : i + META_BATCH]
        metas = await kept.get(cache.mailbox_id, cache.uidvalidity, chunk)
        bodies: dict[int, bytes] = {}
        for pos, uid in enumerate(chunk):
            await cooperative.pause()  # a BODYSTRUCTURE of 100 parts costs ~1 ms: others run between
            seq = view.seq_of(uid)
            meta = metas.get(uid)
            if seq is None:
                continue
            if meta is None:
                missing = True
                continue
            body = bodies.get(uid)
            if body is None and header_only:
                body = kept.header(cache.mailbox_id, cache.uidvalidity, meta)
            if body_items and body is None and meta.size <= EAGER_MAX:
                have = {u for u in chunk[pos + 1 :] if u in metas
                        and kept.header(cache.mailbox_id, cache.uidvalidity, metas[u]) is not None} \
                    if header_only else set()
                bodies = await _prefetch(s, cache.mailbox_id, chunk[pos:], metas, have)
                for read, served in bodies.items():
                    kept.keep_header(cache.mailbox_id, cache.uidvalidity, metas[read], served)
                body = bodies.get(uid)
            values: list[tuple[str, bytes | LiteralRef]] = []
            if with_uid:
                values.append(("UID", b"%d" % uid))
            try:
                for att in items:
                    if att.name == "UID":
                        continue
                    if att.name == "MODSEQ":
                        if s.condstore:
                            values.append(("MODSEQ", b"(%d)" % view.modseq_of(uid)))
                        continue
                    values.append((att.response_name(), await _value(s, view, att, meta, body)))
            except MailboxNotFound:
                # Expunged between the metadata read and the body read: nothing was written yet.
                missing = True
                continue
            if uid in seen_now and "FLAGS" not in names:
                values.append(("FLAGS", s.flags_bytes(view.flags_of(uid), uid in view.recent)))
            if with_modseq and "MODSEQ" not in names:
                values.append(("MODSEQ", b"(%d)" % view.modseq_of(uid)))
            # The values were read with awaits in between: a keyword stored meanwhile by another
            # session may be in these flags, and must be in FLAGS first.
            s.check_keywords()
            try:
                await _write(s, view, uid, s.enc.fetch(seq, values))
            except MailboxNotFound:
                # Expunged while we streamed it: the literal was announced, the connection
                # cannot be resynchronised.
                await s.bye("Message vanished while it was being sent")
    return missing


def _header_only(att: FetchAtt) -> bool:
    """Whether the item needs no more of the message than its top-level header."""
    if att.name == "RFC822.HEADER":
        return True
    sec = att.section
    return att.name == "BODY" and sec is not None and not sec.part and sec.text in HEADER_TEXTS


async def _prefetch(s: Session, mailbox_id: int, uids: list[int], metas: dict[int, MessageMeta],
                    have: Collection[int] = ()) -> dict[int, bytes]:
    """Read the next run of small messages (from the first of `uids`, leaving out those in
    `have`) in one store call."""
    batch: list[int] = []
    total = 0
    for uid in uids:
        meta = metas.get(uid)
        if meta is None or meta.size > EAGER_MAX or uid in have:
            continue
        if batch and total + meta.size > PREFETCH_BYTES:
            break
        batch.append(uid)
        total += meta.size
    if len(batch) == 1:  # one message: the read the store may run in place when it is small
        uid = batch[0]
        try:
            return {uid: await s.store.read_message(mailbox_id, uid, 0, metas[uid].size)}
        except MailboxNotFound:
            return {}  # expunged meanwhile: the item's own read says so
    return await s.store.read_messages(mailbox_id, batch)


def _envelope(info: MessageInfo, utf8: bool) -> bytes:
    return fmt.envelope(info.envelope, utf8)


# Items that depend on the message alone, formatted once per message and kept in the MetaCache.
FORMATTED: dict[str, Formatter] = {"ENVELOPE": _envelope, "BODYSTRUCTURE": fmt.bodystructure, "BODY": fmt.body}


async def _value(s: Session, view: SelectedView, att: FetchAtt, meta: MessageMeta,
                 body: bytes | None = None) -> bytes | LiteralRef:
    name = att.name
    info = meta.info
    utf8 = s.utf8
    if name == "FLAGS":
        return s.flags_bytes(view.flags_of(meta.uid), meta.uid in view.recent)
    if name == "INTERNALDATE":
        return internaldate(meta.internaldate)
    if name == "RFC822.SIZE":
        return b"%d" % meta.size
    if name in FORMATTED and (name != "BODY" or att.section is None):
        cache = view.cache
        return cache.registry.metas.formatted(cache.mailbox_id, cache.uidvalidity, meta, name, utf8, FORMATTED[name])
    if name == "RFC822":
        return await _range(s, view, meta, 0, info.size, None, body)
    if name == "RFC822.HEADER":
        return await _range(s, view, meta, info.root.header_start, info.root.body_start, None, body)
    if name == "RFC822.TEXT":
        return await _range(s, view, meta, info.root.body_start, info.root.body_end, None, body)
    sec = att.section
    assert sec is not None
    if name in ("BINARY", "BINARY.SIZE"):
        data = await _binary(s, view, meta, sec.part, body)
        if name == "BINARY.SIZE":
            return b"%d" % len(data)
        data = _partial(data, att.partial)
        return LiteralRef(len(data), data, binary=b"\x00" in data)
    # BODY[section]<partial>
    spec = ".".join(map(str, sec.part))
    if sec.text:
        spec = f"{spec}.{sec.text}" if spec else sec.text
    try:
        start, end = find_section(info, spec)
    except SectionNotFound:
        return b'""'
    if sec.text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        header = (body[start:end] if body is not None
                  else await s.store.read_message(view.cache.mailbox_id, meta.uid, start, end - start))
        data = _partial(fmt.filter_header_fields(header, sec.fields, sec.text == "HEADER.FIELDS.NOT"), att.partial)
        return LiteralRef(len(data), data)
    return await _range(s, view, meta, start, end, att.partial, body)


def _partial(data: bytes, partial: tuple[int, int] | None) -> bytes:
    if partial is None:
        return data
    return data[partial[0] : partial[0] + partial[1]]


async def _range(s: Session, view: SelectedView, meta: MessageMeta, start: int, end: int,
                 partial: tuple[int, int] | None, body: bytes | None = None) -> LiteralRef:
    if partial is not None:
        start = min(end, start + partial[0])
        end = min(end, start + partial[1])
    size = max(0, end - start)
    if body is not None:
        data = body[start : start + size]
        return LiteralRef(len(data), data)
    if size <= EAGER_MAX:
        data = await s.store.read_message(view.cache.mailbox_id, meta.uid, start, size) if size else b""
        return LiteralRef(len(data), data)
    return LiteralRef(size, _Range(start, end))


async def _binary(s: Session, view: SelectedView, meta: MessageMeta, path: tuple[int, ...],
                  body: bytes | None = None) -> bytes:
    info = meta.info
    if not path:
        if body is not None:
            return body
        return await s.store.read_message(view.cache.mailbox_id, meta.uid, 0, info.size)
    part = find_part(info.root, path)
    if part is None:
        raise Reply("NO", "No such body part", "NONEXISTENT")
    if body is not None:
        raw = body[part.body_start : part.body_start + part.size]
    else:
        raw = await s.store.read_message(view.cache.mailbox_id, meta.uid, part.body_start, part.size)
    if part.type in ("multipart", "message"):
        return raw
    try:
        return decode_transfer(raw, part.cte)
    except UnknownTransferEncoding:
        raise Reply("NO", f"Unknown Content-Transfer-Encoding {part.cte}", "UNKNOWN-CTE") from None


async def _write(s: Session, view: SelectedView, uid: int, segments: list[bytes | LiteralRef]) -> None:
    for seg in segments:
        if isinstance(seg, bytes):
            s.io.write(seg)
            continue
        src = seg.source
        if isinstance(src, bytes | bytearray):
            s.io.write(bytes(src))
            await s.io.maybe_flush()
            continue
        assert isinstance(src, _Range)
        pos = src.start
        while pos < src.end:
            n = min(CHUNK, src.end - pos)
            data = await s.store.read_message(view.cache.mailbox_id, uid, pos, n)
            if len(data) != n:
                raise MailboxNotFound("message changed while being sent")
            s.io.write(data)
            await s.io.flush()
            pos += n
    await s.io.maybe_flush()


__all__ = ["literal_header", "run"]
