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
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from mailcove.importers import maildir as md
from mailcove.importers.mbox import QUOTINGS, MboxBase, from_line, write_message
from mailcove.message import is_crlf_clean, to_crlf
from mailcove.proto.imap import utf7
from mailcove.store.api import Mailbox, MailStore, MessageMeta

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


async def _messages(store: MailStore, box: Mailbox) -> AsyncIterator[tuple[int, frozenset[str], float, bytes]]:
    """Every message of a mailbox in UID order, read in bounded runs (never the whole mailbox in
    memory): at most READ_CHUNK messages or about READ_BYTES at a time."""
    index = await store.index(box.id)
    uids = list(index.uids)
    for i in range(0, len(uids), READ_CHUNK):
        metas = await store.fetch_meta(box.id, uids[i : i + READ_CHUNK])
        run: list[MessageMeta] = []
        size = 0
        for j, m in enumerate(metas):
            run.append(m)
            size += m.size
            if size >= READ_BYTES or j == len(metas) - 1:
                bodies = await store.read_messages(box.id, [r.uid for r in run])
                for r in run:
                    if r.uid in bodies:  # expunged meanwhile: left out
                        yield r.uid, r.flags, r.internaldate, bodies[r.uid]
                run, size = [], 0


async def _keywords(store: MailStore, box: Mailbox) -> list[str]:
    index = await store.index(box.id)
    return sorted({f for flags in set(index.flags) for f in flags if not f.startswith("\\")})


def _check_dest(dest: Path) -> None:
    """An export goes into a new or empty directory: writing over an older export would leave
    messages expunged since (and, in a Maildir, a second copy of every message) behind."""
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ValueError(f"{dest} exists and is not an empty directory: export into a new one")


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
    _check_dest(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for box in boxes:
        parts = _disk_name(box.name)
        if any(p.startswith(".") for p in parts):
            report.problems.append(f"{box.name}: a name starting with '.' is hidden in an mbox tree, skipped")
            continue
        if box.name == "INBOX":
            path = dest / "inbox"
        else:
            path = dest.joinpath(*parts)
            if box.name in parents:
                if box.messages == 0:
                    path.mkdir(parents=True, exist_ok=True)
                    continue
                path = path.with_name(path.name + ".mbox")
                report.problems.append(f"{box.name}: has sub-mailboxes, so its messages went to {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        keywords = await _keywords(store, box)
        tmp = path.with_name(path.name + ".mailcove-tmp")
        count = 0
        with open(tmp, "wb") as f:
            async for uid, flags, when, data in _messages(store, box):
                base = MboxBase(box.uidvalidity, box.uidnext - 1, keywords) if count == 0 else None
                fline = from_line(envelope_sender(data), when)
                f.write(write_message(from_store_bytes(data, newline), fline, flags, uid, newline,
                                      base=base, quoting=quoting))
                count += 1
                if progress is not None:
                    progress(1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        report.files.append(path)
        report.mailboxes += 1
        report.messages += count
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
    _check_dest(dest)
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
        keywords = [k for k in await _keywords(store, box) if k not in md.LETTER_OF]
        if len(keywords) > md.MAX_KEYWORDS:
            report.problems.append(f"{box.name}: only {md.MAX_KEYWORDS} keywords fit in Maildir file names;"
                                   f" {', '.join(keywords[md.MAX_KEYWORDS:])} dropped")
        kindex = {k: i for i, k in enumerate(keywords[: md.MAX_KEYWORDS])}
        entries: list[tuple[int, str]] = []
        async for uid, flags, when, data in _messages(store, box):
            out = from_store_bytes(data, newline)
            # W= is the size with CRLF line ends, what Dovecot reports as RFC822.SIZE
            vsize = len(data) if is_crlf_clean(data) else len(to_crlf(data))
            base = md.file_name(when, uid, len(out), vsize, f"V{box.uidvalidity}.mailcove")
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
        report.messages += len(entries)
        report.files.append(folder)
    if mailbox is None:
        subs = [b.name for b in all_boxes if b.subscribed and b.name != "INBOX"]
        (dest / "subscriptions").write_text("V\t2\n\n" + "".join("\t".join(n.split("/")) + "\n" for n in subs))
    return report
