"""Mail import: Dovecot mail_location strings, the source mailboxes they name, and the driver
that moves their messages into the store keeping UIDVALIDITY, UIDs, flags and dates.

    loc = parse_location("mbox:~/mail:INBOX=/var/mail/%u", login="a", home=Path("/home/a"))
    report = await import_mail(store, "a@hamap.local", list_sources(loc), progress=...)

Rules (docs/import.md, "Mail"):

- A source mailbox with a UIDVALIDITY (mbox X-IMAPbase, Maildir dovecot-uidlist) keeps it and
  its UIDs when the mailcove mailbox is empty or already has that UIDVALIDITY (a second run).
  Messages without a UID of their own get the next ones, as Dovecot would have given them.
  Running the import again skips every UID already there (store.import_messages).
- Otherwise (no UIDVALIDITY, or the mailbox already holds other mail) new UIDs are given, and a
  message already present with the same Message-ID, INTERNALDATE (to the second) and size is
  skipped: each copy in the mailbox stands for one copy in the source.
- POP3: each message keeps the UIDL the old server gave it, stored with it
  (importers/dovecot_uidl.py says which: Dovecot's saved UIDL, X-UIDL, or pop3_uidl_format).
- Line ends: a message with only LF line ends is stored with CRLF (what IMAP serves); one with
  CRLF, or mixed ends, is stored as it is. Export converts CRLF-only messages back to the line
  end asked for (`--newline`), so a uniform source comes back byte for byte.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import mmap
import os
import pwd
import re
import stat
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from mailcove.core.errors import MailboxExists, MailError
from mailcove.importers import dovecot_uidl as du
from mailcove.importers import maildir as md
from mailcove.importers.mbox import MboxBase, read_mbox, split_message
from mailcove.message import is_crlf_clean
from mailcove.proto.imap import utf7
from mailcove.proto.pop3.uidl import own_uidl
from mailcove.store.api import ImportMessage, MailStore
from mailcove.store.names import normalize_name

BATCH_MESSAGES = 500
BATCH_BYTES = 16 * 1024 * 1024
Progress = Callable[[int], None]  # called with bytes of source read


class LocationError(ValueError):
    """A mail_location that cannot be used."""


@dataclass(frozen=True, slots=True)
class Location:
    kind: str  # "mbox" | "maildir"
    root: Path
    inbox: Path | None  # None: the format's default place
    layout: str = "maildir++"  # Maildir: "maildir++" (.Foo.Bar) or "fs" (Foo/Bar)


@dataclass(frozen=True, slots=True)
class SourceBox:
    name: str  # the mailcove mailbox name ("/" separated)
    kind: str  # "mbox" | "maildir"
    path: Path
    size: int  # bytes to read, for the progress bar


@dataclass(slots=True)
class BoxReport:
    name: str
    added: int = 0
    skipped: int = 0
    uidvalidity_kept: bool = False
    renumbered: int = 0  # UID mode: messages whose old UID was taken meanwhile, given a new one
    note: str = ""
    uidls_kept: int = 0  # messages stored with the old server's POP3 UIDL
    uidls_lost: Counter[str] = field(default_factory=Counter)  # why a message's old UIDL is not known
    pop3_hidden: int = 0  # messages the old server's POP3 had deleted (pop3_deleted_flag)

    def keep_uidl(self, cfg: du.OldPop3, facts: du.Facts, plan: _Plan, uid: int | None) -> str | None:
        own = own_uidl(plan.uidvalidity, uid) if plan.keep_uids and plan.uidvalidity and uid else b""
        try:
            value = du.kept_uidl(cfg, facts, own)
        except du.Unknown as exc:
            self.uidls_lost[str(exc)] += 1
            return None
        self.uidls_kept += 1
        return value


@dataclass(slots=True)
class ImportReport:
    boxes: list[BoxReport] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    newlines: Counter[str] = field(default_factory=Counter)  # "lf" / "crlf" / "mixed" message counts
    subscriptions: list[str] | None = None

    @property
    def added(self) -> int:
        return sum(b.added for b in self.boxes)

    @property
    def skipped(self) -> int:
        return sum(b.skipped for b in self.boxes)


class SourceError(ValueError):
    """A source file that must not or cannot be read; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Policy:
    """Limits on what is read. `owners`: when set, every file must belong to one of these UIDs
    (the user's and root's): an import run as root must not follow a user's symlink or hard
    link into another user's mail. `max_message`: a larger message stops the import (it cannot
    be skipped: its UID would be lost), to be run again with a higher limit."""

    max_message: int = 64 * 1024 * 1024
    owners: frozenset[int] | None = None


def open_source(path: Path, owners: frozenset[int] | None) -> BinaryIO:
    """Open a source file without following a symbolic link, checking who owns it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SourceError(f"{path}: a symbolic link, skipped") from None
        raise SourceError(f"{path}: {exc.strerror}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise SourceError(f"{path}: not a regular file, skipped")
    if owners is not None and st.st_uid not in owners:
        os.close(fd)
        raise SourceError(f"{path}: owned by UID {st.st_uid}, not by the user: skipped (--any-owner to accept)")
    return os.fdopen(fd, "rb")


MAX_META_FILE = 64 * 1024 * 1024  # dovecot-uidlist of a million messages is about 60 MB


def read_meta(path: Path, owners: frozenset[int] | None, report: ImportReport) -> str | None:
    """A small Dovecot file (uidlist, keywords, subscriptions) read like the mail: no symlinks,
    the user's own, and bounded; None when it is missing or refused (refusals are reported)."""
    if not os.path.lexists(path):
        return None
    try:
        with open_source(path, owners) as f:
            data = f.read(MAX_META_FILE + 1)
    except SourceError as exc:
        report.problems.append(f"{exc}; read as missing")
        return None
    if len(data) > MAX_META_FILE:
        report.problems.append(f"{path}: larger than {MAX_META_FILE} bytes, read as missing")
        return None
    return data.decode("utf-8", "replace")


# --- locations ------------------------------------------------------------------------------


def expand(text: str, *, login: str, home: Path | None) -> str:
    """Dovecot's variables: %u (login), %n (its user part), %d (its domain), %h (home), %%, and
    the long forms %{user} %{username} %{domain} %{home}; a leading ~ is the home directory."""
    user, _, domain = login.partition("@")
    values = {"u": login, "n": user, "d": domain, "h": str(home or ""), "%": "%",
              "user": login, "username": user, "domain": domain, "home": str(home or "")}

    def sub(m: re.Match[str]) -> str:
        key = m.group(1) or m.group(2)
        if key in ("h", "home") and home is None:
            raise LocationError("the location uses %h but no home directory is known (give --home)")
        if key not in values:
            raise LocationError(f"unsupported variable %{key} in the location")
        return values[key]

    out = re.sub(r"%(?:\{([a-z]+)\}|([a-zA-Z%]))", sub, text)
    if out == "~" or out.startswith("~/"):
        if home is None:
            raise LocationError("the location starts with ~ but no home directory is known (give --home)")
        out = str(home) + out[1:]
    return out


def parse_location(text: str, *, login: str, home: Path | None) -> Location:
    """`mbox:~/mail:INBOX=/var/mail/%u`, `maildir:~/Maildir`, `maildir:~/Maildir:LAYOUT=fs`."""
    kind, sep, rest = text.partition(":")
    if not sep or kind not in ("mbox", "maildir"):
        raise LocationError(f"unsupported mail_location {text!r}: mbox:... or maildir:... expected")
    parts = rest.split(":")
    root = Path(expand(parts[0], login=login, home=home)) if parts[0] else None
    inbox: Path | None = None
    layout = "maildir++" if kind == "maildir" else "fs"
    for opt in parts[1:]:
        key, eq, value = opt.partition("=")
        key = key.upper()
        if key == "INBOX" and eq:
            inbox = Path(expand(value, login=login, home=home))
        elif key == "LAYOUT" and eq:
            if value.lower() not in ("fs", "maildir++"):
                raise LocationError(f"unsupported LAYOUT={value}")
            layout = value.lower()
        # INDEX=, CONTROL=, VOLATILEDIR=, UTF8 ... concern Dovecot's own files, not the mail
    if root is None:
        raise LocationError(f"mail_location {text!r} has no root directory")
    return Location(kind, root, inbox, layout)


def home_of(login: str) -> Path | None:
    try:
        return Path(pwd.getpwnam(login.partition("@")[0]).pw_dir)
    except KeyError:
        return None


def _decode_name(part: str) -> str:
    try:
        return utf7.decode(part)
    except ValueError:
        return part


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return 0


def _maildir_size(folder: Path) -> int:
    total = 0
    for sub in ("cur", "new"):
        try:
            total += sum(e.stat().st_size for e in os.scandir(folder / sub) if e.is_file())
        except OSError:
            pass
    return total


def list_sources(loc: Location, report: ImportReport | None = None) -> list[SourceBox]:
    """The mailboxes a location holds, INBOX first; Dovecot's own files are left out. Reads the
    subscriptions file into `report.subscriptions` when there is one."""
    report = report if report is not None else ImportReport()
    out: list[SourceBox] = []
    if loc.kind == "mbox":
        inbox = loc.inbox
        if inbox is None:
            for cand in ("inbox", "INBOX"):
                if (loc.root / cand).is_file():
                    inbox = loc.root / cand
        if inbox is not None and inbox.is_file():
            out.append(SourceBox("INBOX", "mbox", inbox, _size(inbox)))
        if loc.root.is_dir():
            for path in sorted(_walk_mbox(loc.root, loc.root, report)):
                rel = path.relative_to(loc.root).parts
                if len(rel) == 1 and rel[0].lower() == "inbox":
                    if inbox != path:  # Dovecot shows INBOX= instead: this file is not reachable
                        report.problems.append(f"{path}: hidden by INBOX={inbox} (as in Dovecot), skipped")
                    continue
                name = "/".join(_decode_name(p) for p in rel)
                out.append(SourceBox(name, "mbox", path, _size(path)))
            _read_subscriptions(loc.root / ".subscriptions", "/", report)
        elif loc.inbox is None:
            raise LocationError(f"{loc.root} is not a directory")
    else:
        inbox = loc.inbox or loc.root
        if md.is_maildir(inbox):
            out.append(SourceBox("INBOX", "maildir", inbox, _maildir_size(inbox)))
        if not loc.root.is_dir():
            raise LocationError(f"{loc.root} is not a directory")
        if loc.layout == "maildir++":
            for e in sorted(os.scandir(loc.root), key=lambda e: e.name):
                folder = e.name.startswith(".") and e.name not in (".", "..") and e.is_dir(follow_symlinks=False)
                if folder and md.is_maildir(Path(e.path)):
                    parts = e.name[1:].split(".")
                    if not all(parts):
                        report.problems.append(f"{e.path}: folder name with an empty part skipped")
                        continue
                    name = "/".join(_decode_name(p) for p in parts)
                    if name.upper() == "INBOX":
                        name = "INBOX"
                        if out and out[0].name == "INBOX":
                            report.problems.append(f"{e.path}: a second INBOX skipped")
                            continue
                    out.append(SourceBox(name, "maildir", Path(e.path), _maildir_size(Path(e.path))))
            _read_subscriptions(loc.root / "subscriptions", ".", report)
        else:
            for path in sorted(_walk_fs_maildirs(loc.root)):
                if path == inbox:
                    continue
                name = "/".join(_decode_name(p) for p in path.relative_to(loc.root).parts)
                if name.upper() == "INBOX":
                    continue
                out.append(SourceBox(name, "maildir", path, _maildir_size(path)))
            _read_subscriptions(loc.root / "subscriptions", "/", report)
    if not out:
        raise LocationError(f"no mailboxes found at {loc.root}" + (f" or {loc.inbox}" if loc.inbox else ""))
    return out


_SKIP_FILES = re.compile(r"^(\..*|.*\.lock|dovecot[.-].*|subscriptions)$")


def _walk_mbox(root: Path, d: Path, report: ImportReport) -> Iterator[Path]:
    for e in os.scandir(d):
        if _SKIP_FILES.match(e.name):
            continue  # .imap/ index dirs, .subscriptions, lock files
        if e.is_symlink():
            report.problems.append(f"{e.path}: a symbolic link, skipped (follow it by hand if it is meant)")
        elif e.is_dir(follow_symlinks=False):
            yield from _walk_mbox(root, Path(e.path), report)
        elif e.is_file(follow_symlinks=False):
            try:
                with open_source(Path(e.path), None) as f:
                    head = f.read(5)
            except SourceError as exc:
                report.problems.append(str(exc))
                continue
            if head and head != b"From ":
                report.problems.append(f"{e.path}: not an mbox file (no From line at the start), skipped")
                continue
            yield Path(e.path)


def _walk_fs_maildirs(d: Path) -> Iterator[Path]:
    for e in os.scandir(d):
        if e.name in ("cur", "new", "tmp") or e.name.startswith(".") or not e.is_dir(follow_symlinks=False):
            continue
        p = Path(e.path)
        if md.is_maildir(p):
            yield p
        yield from _walk_fs_maildirs(p)


def _read_subscriptions(path: Path, sep: str, report: ImportReport) -> None:
    """Dovecot's subscriptions file: v2 ("V\\t2", a blank line, names with TAB between levels) or
    the old one-name-per-line form with the namespace's separator."""
    text = read_meta(path, None, report)
    if text is None:
        return
    lines = text.splitlines()
    names: list[str] = []
    if lines and lines[0].startswith("V\t"):
        names = ["/".join(line.split("\t")) for line in lines[1:] if line]
    else:
        names = ["/".join(_decode_name(p) for p in line.split(sep)) for line in lines if line.strip()]
    report.subscriptions = names


# --- import ---------------------------------------------------------------------------------


def to_store_bytes(data: bytes, crlf_source: bool, counts: Counter[str]) -> bytes:
    """LF-only messages become CRLF; CRLF and mixed ones stay as they are (see module doc)."""
    if b"\r" not in data:
        if b"\n" in data:
            counts["lf"] += 1
            return data.replace(b"\n", b"\r\n")
        counts["crlf" if crlf_source else "lf"] += 1
        return data
    if is_crlf_clean(data):
        counts["crlf"] += 1
    else:
        counts["mixed"] += 1
    return data


@dataclass(slots=True)
class _Plan:
    """How one source mailbox goes in: UID mode (the old UIDVALIDITY kept) or fingerprint mode."""

    store: MailStore
    mailbox_id: int
    keep_uids: bool
    uidvalidity: int | None
    skip_below: int  # UID mode: the mailbox's UIDNEXT when this run began
    had_mail: int  # messages in the mailbox when this run began
    _fingerprints: Counter[tuple[str | None, int, int]] | None = None
    _dates: dict[int, int] | None = None

    async def _load(self) -> None:
        """What the mailbox held when this run began: fingerprints and each UID's date."""
        self._fingerprints, self._dates = Counter(), {}
        if not self.had_mail:
            return
        index = await self.store.index(self.mailbox_id)
        uids = list(index.uids)
        for i in range(0, len(uids), 1000):
            for m in await self.store.fetch_meta(self.mailbox_id, uids[i : i + 1000]):
                self._fingerprints[(m.info.message_id, int(m.internaldate), m.size)] += 1
                self._dates[m.uid] = int(m.internaldate)

    async def seen_before(self, data: bytes, when: float | None) -> bool:
        """True if the mailbox held this message (Message-ID, INTERNALDATE to the second, size)
        before this run; each stored copy answers for one copy in the source."""
        if not self.had_mail:
            return False
        if self._fingerprints is None:
            await self._load()
        assert self._fingerprints is not None
        fp = (_message_id(data), int(when if when is not None else 0), len(data))
        if self._fingerprints[fp] > 0:
            self._fingerprints[fp] -= 1
            return True
        return False

    async def date_of(self, uid: int) -> int | None:
        if self._dates is None:
            await self._load()
        assert self._dates is not None
        return self._dates.get(uid)


async def _ensure_mailbox(store: MailStore, user: str, name: str) -> None:
    try:
        if not (await store.get_mailbox(user, name)).noselect:
            return
    except MailError:
        pass
    try:
        await store.create_mailbox(user, name)  # also turns a \Noselect placeholder into a mailbox
    except MailboxExists:  # a client created it meanwhile
        pass


async def _plan(store: MailStore, user: str, name: str, base: MboxBase, box: BoxReport) -> _Plan:
    await _ensure_mailbox(store, user, name)
    target = await store.get_mailbox(user, name)
    if base.uidvalidity and (target.messages == 0 or target.uidvalidity == base.uidvalidity):
        skip = target.uidnext if target.uidvalidity == base.uidvalidity else 1
        box.uidvalidity_kept = True
        return _Plan(store, target.id, True, base.uidvalidity, skip, target.messages)
    if base.uidvalidity:
        box.note = (f"already held {target.messages} messages under another UIDVALIDITY: new UIDs given, "
                    "so clients download this mailbox again")
    return _Plan(store, target.id, False, None, 0, target.messages)


def _message_id(data: bytes) -> str | None:
    """The Message-ID as message.scan reports it (only needed for fingerprints)."""
    from mailcove.message import scan

    return scan(data).message_id


class _Batcher:
    """Sends ImportMessages in batches, one batch in flight while the next is being read."""

    def __init__(self, store: MailStore, user: str, name: str, plan: _Plan, box: BoxReport) -> None:
        self.store, self.user, self.name, self.plan, self.box = store, user, name, plan, box
        self.items: list[ImportMessage] = []
        self.bytes = 0
        self.pending: asyncio.Task[None] | None = None
        self.max_uid = 0

    def uidnext(self, uidlast: int | None) -> int | None:
        """The UIDNEXT to leave: the old server's, or above the last UID sent (none burnt on skips)."""
        return max((uidlast or 0) + 1, self.max_uid + 1) if self.plan.keep_uids else None

    async def add(self, item: ImportMessage) -> None:
        if item.uid is not None:
            self.max_uid = max(self.max_uid, item.uid)
        self.items.append(item)
        self.bytes += len(item.source)  # type: ignore[arg-type]
        if len(self.items) >= BATCH_MESSAGES or self.bytes >= BATCH_BYTES:
            items, self.items, self.bytes = self.items, [], 0
            if self.pending is not None:
                await self.pending
            self.pending = asyncio.create_task(self._send(items, None))

    async def finish(self, uidnext: int | None) -> None:
        """Send the rest (with the old server's UIDNEXT in UID mode) and wait for everything."""
        if self.pending is not None:
            await self.pending
            self.pending = None
        if self.items or self.plan.keep_uids:
            items, self.items, self.bytes = self.items, [], 0
            await self._send(items, uidnext)

    async def _send(self, items: list[ImportMessage], uidnext: int | None) -> None:
        keep = self.plan.keep_uids
        res = await self.store.import_messages(
            self.user, self.name, items, uidvalidity=self.plan.uidvalidity if keep else None,
            uidnext=uidnext if keep else None,
        )
        self.box.added += len(res.added)
        if res.skipped:
            # Every UID sent was at or above UIDNEXT when this run began, so the store skipping one
            # means the mailbox moved on meanwhile (the running server delivered new mail into it):
            # that message is not there yet. It goes in with a new UID rather than not at all.
            taken = set(res.skipped)
            again = [dataclasses.replace(i, uid=None) for i in items if i.uid in taken]
            res2 = await self.store.import_messages(self.user, self.name, again)
            self.box.added += len(res2.added)
            self.box.renumbered += len(res2.added)

    async def abort(self) -> None:
        if self.pending is not None:
            self.pending.cancel()
            try:
                await self.pending
            except BaseException:  # the first error is the one reported
                pass


SKIP = -1


async def _choose(plan: _Plan, assign: _UidAssigner, box: BoxReport, old_uid: int | None,
                  when: float | None) -> tuple[int | None, bool]:
    """(the UID to store a message under, whether its fingerprint must be checked first); SKIP
    when it is already there.

    A UID the old server gave keeps the message's identity: below the UIDNEXT this run began
    with, the message was imported before, unless mailcove holds another message (another date)
    under that UID: the old server and mailcove both numbered new mail after an earlier import.
    Then, and for messages numbered here, the fingerprint decides."""
    if not plan.keep_uids:
        return None, True
    uid = assign(old_uid)
    if uid != old_uid:
        return uid, True
    if uid >= plan.skip_below:
        return uid, False
    have = await plan.date_of(uid)
    if have is None or have == int(when or 0):  # there, or expunged since: IMAP never reuses a UID
        return SKIP, False
    box.renumbered += 1
    return assign(None), True


def _pop3_flags(flags: frozenset[str], pop3: du.OldPop3, box: BoxReport) -> frozenset[str]:
    """Counts the messages the old server's POP3 had deleted; their keyword is kept as it is."""
    if pop3.deleted_flag and pop3.deleted_flag in flags:
        box.pop3_hidden += 1
    return flags


def too_big(path: Path, what: str, size: int, policy: Policy) -> str:
    return (f"{path}: {what} is {size} bytes, over the import limit of {policy.max_message} bytes"
            " ([server] max_message_bytes or --max-message-size); everything before it is imported:"
            " raise the limit and run the import again")


def _read_source(path: Path, owners: frozenset[int] | None) -> bytes:
    try:
        f = open_source(path, owners)
    except SourceError:
        if not os.path.lexists(path):
            raise FileNotFoundError(path) from None
        raise
    with f:
        return f.read()


class _UidAssigner:
    """The old server's UIDs where they are usable (strictly increasing), else the next ones
    after its last UID, as Dovecot numbers messages it has not seen yet."""

    def __init__(self, uidlast: int | None, floor: int = 1) -> None:
        # `floor`: never below the mailbox's UIDNEXT, so a message the old server had not numbered
        # yet gets a UID no message of this mailbox ever had
        self.next = max((uidlast or 0) + 1, floor)
        self.last = 0

    def __call__(self, uid: int | None) -> int:
        if uid is None or uid <= self.last:
            uid = max(self.next, self.last + 1)
        self.next = max(self.next, uid + 1)
        self.last = uid
        return uid


def _dovecot_uid(old_uid: int | None, uid: int | None, plan: _Plan) -> int | None:
    """The UID the old server had for a message: its own, or (UID mode) the one it would have
    given a message it had not numbered yet, which is the one the message gets here."""
    if old_uid is not None:
        return old_uid
    return uid if plan.keep_uids else None


async def _import_mbox(
    store: MailStore, user: str, src: SourceBox, name: str, quoting: str, report: ImportReport,
    progress: Progress | None, policy: Policy, pop3: du.OldPop3,
) -> BoxReport | None:
    try:
        f = open_source(src.path, policy.owners)
    except SourceError as exc:
        report.problems.append(str(exc))
        return None
    box = BoxReport(name)
    report.boxes.append(box)
    if os.fstat(f.fileno()).st_size == 0:
        f.close()
        await _ensure_mailbox(store, user, name)
        return box
    with f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        reader = read_mbox(mm, quoting=quoting)  # type: ignore[arg-type]
        crlf = reader.nl == b"\r\n"
        it = iter(reader)
        first = next(it, None)  # X-IMAPbase is in the first message
        plan = await _plan(store, user, name, reader.base, box)
        assign = _UidAssigner(reader.base.uidlast, plan.skip_below)
        batcher = _Batcher(store, user, name, plan, box)
        done = 0
        try:
            msg = first
            while msg is not None:
                if len(msg.data) > policy.max_message:
                    await batcher.finish(None)
                    raise SourceError(too_big(src.path, f"the message at offset {msg.offset}", len(msg.data), policy))
                uid, check = await _choose(plan, assign, box, msg.uid, msg.internaldate)
                data = to_store_bytes(msg.data, crlf, report.newlines)
                if uid == SKIP or (check and await plan.seen_before(data, msg.internaldate)):
                    box.skipped += 1
                else:
                    facts = du.Facts("mbox", split_message(msg.data, reader.nl)[0],
                                     _dovecot_uid(msg.uid, uid, plan), reader.base.uidvalidity)
                    uidl = box.keep_uidl(pop3, facts, plan, uid)
                    await batcher.add(ImportMessage(data, uid, _pop3_flags(msg.flags, pop3, box), msg.internaldate,
                                                    uidl))
                if progress is not None:
                    progress(msg.end - done)
                    done = msg.end
                msg = next(it, None)
            await batcher.finish(batcher.uidnext(reader.base.uidlast))
        except BaseException:
            await batcher.abort()
            raise
        report.problems.extend(f"{src.path}: {p}" for p in reader.problems)
    return box


async def _import_maildir(
    store: MailStore, user: str, src: SourceBox, name: str, report: ImportReport, progress: Progress | None,
    policy: Policy, pop3: du.OldPop3,
) -> BoxReport:
    box = BoxReport(name)
    report.boxes.append(box)
    folder = src.path
    keywords = md.parse_keywords(read_meta(folder / "dovecot-keywords", policy.owners, report) or "")
    uidlist = md.parse_uidlist(read_meta(folder / "dovecot-uidlist", policy.owners, report) or "")
    files = await asyncio.to_thread(md.scan_folder, folder, keywords)
    known = sorted((f for f in files if f.base in uidlist.uids), key=lambda f: uidlist.uids[f.base])
    new = [f for f in files if f.base not in uidlist.uids]
    base = MboxBase(uidlist.uidvalidity, (uidlist.uidnext - 1) if uidlist.uidnext else None)
    plan = await _plan(store, user, name, base, box)
    assign = _UidAssigner(base.uidlast, plan.skip_below)
    batcher = _Batcher(store, user, name, plan, box)
    try:
        for f in known + new:
            uid, check = await _choose(plan, assign, box, uidlist.uids.get(f.base), f.mtime)
            if uid == SKIP:  # already imported: not even read
                box.skipped += 1
            else:
                if f.size > policy.max_message:
                    await batcher.finish(None)
                    raise SourceError(too_big(f.path, "the message", f.size, policy))
                try:
                    raw = await asyncio.to_thread(_read_source, f.path, policy.owners)
                except FileNotFoundError:  # moved by a still-running old server: not fatal
                    report.problems.append(f"{f.path}: vanished while importing, skipped")
                    continue
                except SourceError as exc:
                    report.problems.append(str(exc))
                    continue
                data = to_store_bytes(raw, False, report.newlines)
                if check and await plan.seen_before(data, f.mtime):
                    box.skipped += 1
                else:
                    ext = uidlist.ext.get(f.base, {})
                    facts = du.Facts("maildir", du.header_of(raw), _dovecot_uid(uidlist.uids.get(f.base), uid, plan),
                                     uidlist.uidvalidity, f.base, ext.get("G"), ext.get("P"))
                    uidl = box.keep_uidl(pop3, facts, plan, uid)
                    await batcher.add(ImportMessage(data, uid, _pop3_flags(f.flags, pop3, box), f.mtime, uidl))
            if progress is not None:
                progress(f.size)
        await batcher.finish(batcher.uidnext(base.uidlast))
    except BaseException:
        await batcher.abort()
        raise
    return box


async def import_mail(
    store: MailStore,
    user: str,
    sources: list[SourceBox],
    *,
    into: str | None = None,
    quoting: str = "none",
    subscriptions: list[str] | None = None,
    report: ImportReport | None = None,
    progress: Progress | None = None,
    policy: Policy | None = None,
    pop3: du.OldPop3 | None = None,
) -> ImportReport:
    """Import `sources` into `user`'s mailboxes (the account must exist). `into` renames a single
    source mailbox (`mailcove import mbox --mailbox`). `pop3`: the old server's POP3 settings
    (default: Dovecot's defaults). Raises SourceError for a message over `policy.max_message`
    (what came before it is stored)."""
    policy = policy if policy is not None else Policy()
    pop3 = pop3 if pop3 is not None else du.OldPop3()
    report = report if report is not None else ImportReport()
    if into is not None and len(sources) != 1:
        raise ValueError("a target mailbox name needs exactly one source mailbox")
    imported: list[str] = []
    for src in sources:
        try:
            name = normalize_name(into or src.name)
        except MailError as exc:
            report.problems.append(f"{src.path}: mailbox name {src.name!r} not usable ({exc.text}), skipped")
            continue
        if src.kind == "mbox":
            if await _import_mbox(store, user, src, name, quoting, report, progress, policy, pop3) is None:
                continue
        else:
            await _import_maildir(store, user, src, name, report, progress, policy, pop3)
        imported.append(name)
    subs = subscriptions if subscriptions is not None else report.subscriptions
    if subs is not None and into is None:
        wanted = {normalize_name(s) for s in subs if s.strip()}
        for name in imported:
            if name != "INBOX":
                await store.set_subscribed(user, name, name in wanted)
    return report

