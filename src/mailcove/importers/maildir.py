"""Maildir and Maildir++ as Dovecot keeps them: file names, dovecot-uidlist, dovecot-keywords.

The formats are parsed and written by small pure functions (`parse_info`, `parse_uidlist`,
`parse_keywords`, `file_name`, `format_uidlist`); `scan_folder` is the only part that looks at
the disk, and it only lists names and stats files (the importer reads the bodies).

- File name: `<base>[:2,<flags>]`; Dovecot puts `,S=<size>` (bytes on disk) and `,W=<size>`
  (size with CRLF line ends) in the base. Flags: S \\Seen, R \\Answered, F \\Flagged, T \\Deleted,
  D \\Draft, P (passed) $Forwarded; lowercase a..z are keywords numbered by dovecot-keywords.
- A message's INTERNALDATE is its file's mtime (as in Dovecot). Files in new/ and cur/ are read
  alike: new/ only means no client has seen the file yet, which mailcove tracks per session.
- dovecot-uidlist v3: `3 V<uidvalidity> N<uidnext> G<guid>`, then `<uid> [<ext fields>] :<base>`;
  of the fields, G (the message's GUID) and P (the UIDL POP3 saved, empty: the base name) are kept.
  Version 1 (`1 <uidvalidity> <uidnext>`, `<uid> <base>`) is read too.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

FLAG_LETTERS = {"S": "\\Seen", "R": "\\Answered", "F": "\\Flagged", "T": "\\Deleted", "D": "\\Draft",
                "P": "$Forwarded"}
LETTER_OF = {v: k for k, v in FLAG_LETTERS.items()}
MAX_KEYWORDS = 26
_ATOM_BAD = re.compile(r'[\x00-\x20\x7f(){%*"\\\]]')


@dataclass(slots=True)
class MaildirFile:
    path: Path
    base: str  # the name without the ":2,..." info part
    flags: frozenset[str]
    mtime: float
    size: int


@dataclass(slots=True)
class UidList:
    uidvalidity: int | None = None
    uidnext: int | None = None
    uids: dict[str, int] = field(default_factory=dict)  # base name -> UID
    # base name -> the G (GUID) and P (saved POP3 UIDL) fields of its line, where there are any
    ext: dict[str, dict[str, str]] = field(default_factory=dict)


def _is_num(text: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts "²" and other digits int() refuses."""
    return text.isascii() and text.isdigit()


def parse_info(name: str, keywords: dict[int, str]) -> tuple[str, frozenset[str]]:
    """(base, flags) of a Maildir file name."""
    base, sep, info = name.partition(":")
    if not sep:
        # some systems (Windows-safe Maildir) use ';' or '!' instead of ':'
        for alt in ("!", ";"):
            base, sep, info = name.partition(alt)
            if sep:
                break
        else:
            return name, frozenset()
    flags: set[str] = set()
    if info.startswith("2,"):
        for c in info[2:]:
            if c in FLAG_LETTERS:
                flags.add(FLAG_LETTERS[c])
            elif "a" <= c <= "z":
                kw = keywords.get(ord(c) - ord("a"))
                if kw:
                    flags.add(kw)
    return base, frozenset(flags)


def info_suffix(flags: frozenset[str] | set[str], keyword_index: dict[str, int]) -> str:
    """`:2,` and the letters in ASCII order, as the Maildir spec asks."""
    letters = [LETTER_OF[f] for f in flags if f in LETTER_OF]
    letters += [chr(ord("a") + keyword_index[f]) for f in flags if f in keyword_index]
    return ":2," + "".join(sorted(letters))


def parse_keywords(text: str) -> dict[int, str]:
    out: dict[int, str] = {}
    for line in text.splitlines():
        num, _, name = line.partition(" ")
        if _is_num(num) and int(num) < MAX_KEYWORDS and name and not _ATOM_BAD.search(name):
            out[int(num)] = name
    return out


def format_keywords(names: list[str]) -> str:
    return "".join(f"{i} {n}\n" for i, n in enumerate(names[:MAX_KEYWORDS]))


def parse_uidlist(text: str) -> UidList:
    lines = text.splitlines()
    out = UidList()
    if not lines:
        return out
    head = lines[0].split()
    if head and head[0] == "3":
        for fld in head[1:]:
            if fld[:1] == "V" and _is_num(fld[1:]):
                out.uidvalidity = int(fld[1:])
            elif fld[:1] == "N" and _is_num(fld[1:]):
                out.uidnext = int(fld[1:])
        for line in lines[1:]:
            # maildir-uidlist.c: "<uid> <field>... :<base>", fields space-separated up to the one
            # starting with ':' (a field's value may itself hold a ':')
            uid, _, rest = line.partition(" ")
            fields: dict[str, str] = {}
            base = ""
            while rest:
                rest = rest.lstrip(" ")
                if rest.startswith(":"):
                    base = rest[1:]
                    break
                tok, _, rest = rest.partition(" ")
                if tok[:1] in ("G", "P"):
                    fields[tok[0]] = tok[1:]
            if _is_num(uid) and base:
                out.uids[base] = int(uid)
                if fields:
                    out.ext[base] = fields
    elif head and head[0] == "1" and len(head) >= 3 and _is_num(head[1]) and _is_num(head[2]):
        out.uidvalidity, out.uidnext = int(head[1]), int(head[2])
        for line in lines[1:]:
            parts = line.split()
            if len(parts) == 2 and _is_num(parts[0]):
                out.uids[parts[1]] = int(parts[0])
    # values a broken or hostile file may hold: out of IMAP's 32-bit range means "not known"
    if out.uidvalidity is not None and not 0 < out.uidvalidity < 2**32:
        out.uidvalidity = None
    if out.uidnext is not None and not 0 < out.uidnext < 2**32:
        out.uidnext = None
    out.uids = {b: u for b, u in out.uids.items() if 0 < u < 2**32}
    return out


def format_uidlist(uidvalidity: int, uidnext: int, entries: list[tuple[int, str]]) -> str:
    head = f"3 V{uidvalidity} N{uidnext} G{os.urandom(16).hex()}\n"
    return head + "".join(f"{uid} :{base}\n" for uid, base in entries)


def file_name(internaldate: float, uid: int, size: int, vsize: int, host: str = "mailcove") -> str:
    """A base name in Dovecot's style (time.unique.host), with S= and W= sizes; `uid` makes it
    unique within a folder."""
    return f"{int(internaldate)}.M{uid}.{host},S={size},W={vsize}"


def scan_folder(folder: Path, keywords: dict[int, str]) -> list[MaildirFile]:
    """The messages of one Maildir folder (its cur/ and new/), oldest first."""
    out: list[MaildirFile] = []
    for sub in ("cur", "new"):
        d = folder / sub
        if d.is_symlink():
            continue  # never followed: it could lead into another user's Maildir
        try:
            entries = list(os.scandir(d))
        except FileNotFoundError:
            continue
        for e in entries:
            if e.name.startswith(".") or not e.is_file(follow_symlinks=False):
                continue
            st = e.stat(follow_symlinks=False)
            base, flags = parse_info(e.name, keywords)
            out.append(MaildirFile(Path(e.path), base, flags, st.st_mtime, st.st_size))
    out.sort(key=lambda f: (f.mtime, f.base))
    return out


def is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() or (path / "new").is_dir()
