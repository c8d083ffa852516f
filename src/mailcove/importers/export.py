"""Mail export: a user's mailboxes written out as mbox files or a Maildir++ tree, with flags,
dates, UIDVALIDITY and UIDs, in the layouts the importer reads (so `mailcove import` of an
export gives back the same mailboxes, messages and UIDs).

- mbox (`mbox:DEST` for Dovecot): INBOX is DEST/inbox, every other mailbox DEST/<name> with "/"
  as directories, names in modified UTF-7 as Dovecot keeps them on disk. A mailbox that holds
  messages and has children cannot be both a file and a directory: its messages go to
  DEST/<name>.mbox and that is reported. DEST/.subscriptions lists the subscribed mailboxes.
  Each file's first message carries X-IMAPbase (UIDVALIDITY, last UID, keywords); each message
  X-UID, Status, X-Status, X-Keywords at the end of its header; Content-Length only when a body
  line would otherwise read as a `From ` line (the default quoting "none", as Dovecot writes).
- Maildir++ (`maildir:DEST`): INBOX is DEST itself, other mailboxes DEST/.Name.Sub; every message
  is cur/<base>:2,<flags> with mtime = INTERNALDATE; dovecot-uidlist (v3) and dovecot-keywords per
  folder, DEST/subscriptions (v2).
- Line ends: a message stored with CRLF only is written with `newline` (LF by default, as Dovecot
  and mail.local write); a message with mixed line ends is written as stored.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mailcove.importers import maildir as md
from mailcove.importers.mbox import QUOTINGS, MboxBase, from_line, write_message
from mailcove.message import is_crlf_clean
from mailcove.proto.imap import utf7
from mailcove.store.api import Mailbox, MailStore

READ_CHUNK = 200  # messages per read_messages call
READ_BYTES = 32 * 1024 * 1024


@dataclass(slots=True)
class ExportReport:
    mailboxes: int = 0
    messages: int = 0
    files: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def from_store_bytes(data: bytes, nl: bytes) -> bytes:
    if nl == b"\n" and is_crlf_clean(data):
        return data.replace(b"\r\n", b"\n")
    return data


_RETURN_PATH = re.compile(rb"(?im)^Return-Path:[ \t]*<?([^\s<>]*)>?[ \t]*\r?$")


def envelope_sender(data: bytes) -> str:
    """The `From ` line's sender: the Return-Path (as the delivering MTA wrote it), else
    MAILER-DAEMON, the traditional stand-in."""
    end = data.find(b"\r\n\r\n")
    head = data if end < 0 else data[:end]
    m = _RETURN_PATH.search(head)
    if m is None or not m.group(1):
        return "MAILER-DAEMON"
    return m.group(1).decode("ascii", "replace")


def _disk_name(name: str) -> list[str]:
    return [utf7.encode(p) for p in name.split("/")]


async def _messages(store: MailStore, box: Mailbox) -> list[tuple[int, frozenset[str], float, bytes]]:
    """Every message of a mailbox, in UID order, read in bounded chunks."""
    index = await store.index(box.id)
    uids = list(index.uids)
    out: list[tuple[int, frozenset[str], float, bytes]] = []
    for i in range(0, len(uids), READ_CHUNK):
        chunk = uids[i : i + READ_CHUNK]
        metas = await store.fetch_meta(box.id, chunk)
        bodies: dict[int, bytes] = {}
        run: list[int] = []
        size = 0
        for m in metas:
            run.append(m.uid)
            size += m.size
            if size >= READ_BYTES:
                bodies.update(await store.read_messages(box.id, run))
                run, size = [], 0
        if run:
            bodies.update(await store.read_messages(box.id, run))
        out.extend((m.uid, m.flags, m.internaldate, bodies[m.uid]) for m in metas if m.uid in bodies)
    return out


async def _selected(store: MailStore, user: str, only: str | None) -> list[Mailbox]:
    boxes = [b for b in await store.list_mailboxes(user) if not b.noselect]
    if only is not None:
        boxes = [b for b in boxes if b.name == only or (only.upper() == "INBOX" and b.name == "INBOX")]
        if not boxes:
            raise ValueError(f"no such mailbox: {only}")
    return boxes


async def export_mbox(
    store: MailStore,
    user: str,
    dest: Path,
    *,
    mailbox: str | None = None,
    newline: bytes = b"\n",
    quoting: str = "none",
    progress: Callable[[int], None] | None = None,
) -> ExportReport:
    if quoting not in QUOTINGS:
        raise ValueError(f"quoting must be one of {', '.join(QUOTINGS)}")
    report = ExportReport()
    all_boxes = await store.list_mailboxes(user)
    boxes = await _selected(store, user, mailbox)
    parents = {b.name.rsplit("/", 1)[0] for b in all_boxes if "/" in b.name}
    dest.mkdir(parents=True, exist_ok=True)
    for box in boxes:
        parts = _disk_name(box.name)
        if any(p.startswith(".") for p in parts):
            report.problems.append(f"{box.name}: a name starting with '.' is hidden in an mbox tree, skipped")
            continue
        msgs = await _messages(store, box)
        if box.name == "INBOX":
            path = dest / "inbox"
        else:
            path = dest.joinpath(*parts)
            if box.name in parents:
                if not msgs:
                    path.mkdir(parents=True, exist_ok=True)
                    continue
                path = path.with_name(path.name + ".mbox")
                report.problems.append(f"{box.name}: has sub-mailboxes, so its messages went to {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        keywords = sorted({f for _u, fl, _d, _b in msgs for f in fl if not f.startswith("\\")})
        tmp = path.with_name(path.name + ".mailcove-tmp")
        with open(tmp, "wb") as f:
            for i, (uid, flags, when, data) in enumerate(msgs):
                base = MboxBase(box.uidvalidity, box.uidnext - 1, keywords) if i == 0 else None
                fline = from_line(envelope_sender(data), when)
                f.write(write_message(from_store_bytes(data, newline), fline, flags, uid, newline,
                                      base=base, quoting=quoting))
                if progress is not None:
                    progress(1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        report.files.append(path)
        report.mailboxes += 1
        report.messages += len(msgs)
    if mailbox is None:
        subs = [b.name for b in all_boxes if b.subscribed and b.name != "INBOX"]
        (dest / ".subscriptions").write_text("".join(f"{'/'.join(_disk_name(n))}\n" for n in subs))
    return report


async def export_maildir(
    store: MailStore,
    user: str,
    dest: Path,
    *,
    mailbox: str | None = None,
    newline: bytes = b"\n",
    progress: Callable[[int], None] | None = None,
) -> ExportReport:
    report = ExportReport()
    all_boxes = await store.list_mailboxes(user)
    boxes = await _selected(store, user, mailbox)
    dest.mkdir(parents=True, exist_ok=True)
    for box in boxes:
        if box.name == "INBOX":
            folder = dest
        else:
            parts = _disk_name(box.name)
            if any("." in p for p in parts):
                report.problems.append(f"{box.name}: '.' is the Maildir++ separator, so this name cannot be kept;"
                                       " skipped (export as mbox instead)")
                continue
            folder = dest / ("." + ".".join(parts))
        for sub in ("cur", "new", "tmp"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        if folder != dest:
            (folder / "maildirfolder").touch()
        msgs = await _messages(store, box)
        keywords = sorted({f for _u, fl, _d, _b in msgs for f in fl if not f.startswith("\\") and
                           f not in md.LETTER_OF})
        if len(keywords) > md.MAX_KEYWORDS:
            report.problems.append(f"{box.name}: only {md.MAX_KEYWORDS} keywords fit in Maildir file names;"
                                   f" {', '.join(keywords[md.MAX_KEYWORDS:])} dropped")
        kindex = {k: i for i, k in enumerate(keywords[: md.MAX_KEYWORDS])}
        entries: list[tuple[int, str]] = []
        for uid, flags, when, data in msgs:
            out = from_store_bytes(data, newline)
            base = md.file_name(when, uid, len(out), len(data) if is_crlf_clean(data) else len(out))
            tmp = folder / "tmp" / base
            with open(tmp, "wb") as f:
                f.write(out)
            os.utime(tmp, (when, when))
            os.replace(tmp, folder / "cur" / (base + md.info_suffix(set(flags), kindex)))
            entries.append((uid, base))
            if progress is not None:
                progress(1)
        (folder / "dovecot-keywords").write_text(md.format_keywords(keywords))
        (folder / "dovecot-uidlist").write_text(md.format_uidlist(box.uidvalidity, box.uidnext, entries))
        report.mailboxes += 1
        report.messages += len(msgs)
        report.files.append(folder)
    if mailbox is None:
        subs = [b.name for b in all_boxes if b.subscribed and b.name != "INBOX"]
        (dest / "subscriptions").write_text("V\t2\n\n" + "".join("\t".join(n.split("/")) + "\n" for n in subs))
    return report
