"""~/.forward for system users, read at delivery time with Sendmail's safety checks.

Sendmail (and Postfix's local(8), which copies it) trusts a .forward only if nobody but its owner
could have written it: otherwise any local user who can write to it, or to the directory holding
it, redirects another user's mail. So, as Sendmail with the default DontBlameSendmail=safe:
- the file is a regular file (opened with O_NOFOLLOW: a symlink is refused, never followed),
  owned by the user or by root, and neither group- nor world-writable;
- the home directory holding it is owned by the user or root and is not group- or world-writable.
A .forward that fails a check is ignored (the mail is delivered to the mailbox) and the reason is
logged, which is what Sendmail does ("forward: ... writable" in its log).

Entries are addresses separated by commas or newlines; `#` starts a comment line. `\\user` means
"deliver to user's own mailbox without forwarding again" (Sendmail's backslash). `|program`,
`/file` and `:include:` entries are recognised but not run: running a program or writing a file as
the user needs root, and mailcove never runs anything as root (docs/system-users.md).
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from dataclasses import dataclass
from enum import StrEnum

log = logging.getLogger("mailcove.directory")

FORWARD_NAME = ".forward"
MAX_FORWARD_BYTES = 64 * 1024  # a .forward larger than this is a mistake or an attack
MAX_FORWARD_ENTRIES = 100


class Kind(StrEnum):
    ADDRESS = "address"  # forward to this address (local or remote)
    LOCAL = "local"  # \user: deliver to that user's mailbox, no further forwarding
    PROGRAM = "program"  # |command: not supported
    FILE = "file"  # /path: not supported
    INCLUDE = "include"  # :include:/path: not supported


@dataclass(frozen=True, slots=True)
class Entry:
    kind: Kind
    value: str


def _tokens(text: str) -> list[str]:
    """Split on commas and newlines outside double quotes ("|prog, with a comma" is one entry)."""
    out: list[str] = []
    cur: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
            continue
        if not quoted and ch in ",\n":
            out.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur))
    return [t.strip() for t in out if t.strip()]


def parse_forward(text: str) -> list[Entry]:
    """The entries of a .forward, in order, without duplicates. Pure: no file access."""
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    entries: list[Entry] = []
    seen: set[tuple[Kind, str]] = set()
    for tok in _tokens("\n".join(lines)):
        if tok.startswith("|"):
            e = Entry(Kind.PROGRAM, tok[1:].strip())
        elif tok.startswith("/"):
            e = Entry(Kind.FILE, tok)
        elif tok.lower().startswith(":include:"):
            e = Entry(Kind.INCLUDE, tok[len(":include:"):].strip())
        elif tok.startswith("\\"):
            e = Entry(Kind.LOCAL, tok[1:].strip().lower())
        else:
            addr = tok
            if "<" in addr and addr.endswith(">"):  # "Name <a@b>": the angle address
                addr = addr[addr.rindex("<") + 1 : -1].strip()
            if not addr or any(c.isspace() for c in addr):
                log.info(".forward: entry %r is not an address; skipped", tok[:80])
                continue
            e = Entry(Kind.ADDRESS, addr)
        key = (e.kind, e.value.lower())
        if key in seen or not e.value:
            continue
        seen.add(key)
        entries.append(e)
        if len(entries) >= MAX_FORWARD_ENTRIES:
            log.info(".forward: more than %d entries; the rest is ignored", MAX_FORWARD_ENTRIES)
            break
    return entries


class UnsafeForward(Exception):
    """The .forward exists but may not be trusted (or read); the message says why."""


def _check_dir(home: str, uid: int) -> None:
    st = os.stat(home)
    if st.st_uid not in (uid, 0):
        raise UnsafeForward(f"{home} is owned by uid {st.st_uid}, not by the user or root")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeForward(f"{home} is group- or world-writable")


def read_forward(home: str, uid: int) -> list[Entry] | None:
    """The entries of `home`/.forward, or None when there is none to honour (no file, empty, or
    unsafe: the reason is logged). Blocking: call it from a worker thread."""
    path = os.path.join(home, FORWARD_NAME)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            log.warning("%s is a symbolic link; ignored (deliver to the mailbox)", path)
        elif exc.errno in (errno.EACCES, errno.EPERM):
            log.warning(
                "%s cannot be read by uid %d (permission denied); ignored. The home directory must be"
                " searchable and the file readable by the server's user (docs/system-users.md)",
                path, os.geteuid(),
            )
        elif exc.errno != errno.ENOTDIR:
            log.warning("%s: %s; ignored", path, exc.strerror or exc)
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeForward("not a regular file")
        if st.st_uid not in (uid, 0):
            raise UnsafeForward(f"owned by uid {st.st_uid}, not by the user (uid {uid}) or root")
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise UnsafeForward("group- or world-writable")
        _check_dir(home, uid)
        if st.st_size > MAX_FORWARD_BYTES:
            raise UnsafeForward(f"larger than {MAX_FORWARD_BYTES} bytes")
        data = os.read(fd, MAX_FORWARD_BYTES + 1)
    except UnsafeForward as exc:
        log.warning("%s is not safe (%s); ignored, mail goes to the mailbox", path, exc)
        return None
    except OSError as exc:
        log.warning("%s: %s; ignored", path, exc.strerror or exc)
        return None
    finally:
        os.close(fd)
    entries = parse_forward(data[:MAX_FORWARD_BYTES].decode("utf-8", "replace"))
    return entries or None
