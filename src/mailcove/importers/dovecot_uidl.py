"""The UIDL Dovecot's POP3 server gave a message, so an imported message keeps it.

Dovecot 2.3 (src/pop3/pop3-commands.c, pop3_get_uid) takes, in this order:

1. a saved UIDL: the `P` field of the message's dovecot-uidlist line (written by
   `pop3_save_uidl = yes`, or by a Courier migration); an empty `P` means the base file name.
   Only Maildir has one: Dovecot 2.3 saves none for mbox (its mbox storage has no place for it);
2. the first `X-UIDL:` header, only with `pop3_reuse_xuidl = yes` (default no);
3. `pop3_uidl_format` (default `%08Xu%08Xv`) expanded as src/lib/var-expand.c does:
   `%u` the UID and `%v` the UIDVALIDITY (decimal), `%m` the header MD5 (mbox only: the
   `mbox_md5` algorithm over the header), `%g` the GUID (Maildir: the dovecot-uidlist `G` field,
   else the base file name; mbox: the header MD5), `%f` the base file name (Maildir only), `%%`;
   with `[<offset>.][0]<width>` and the modifiers L U E X R M D T (`X`: the decimal value in
   lowercase hex, so `%08Xu` of UID 3 is `00000003`).

Where Dovecot's own POP3 server fails (`%m` or `%f` where the storage has none, an unknown
variable, a format without a short variable), no UIDL can be kept: `Unknown` says why.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache

from mailcove.importers.mbox import header_fields
from mailcove.proto.pop3.uidl import usable_kept_uidl, valid_uidl

DEFAULT_FORMAT = "%08Xu%08Xv"
MD5_ALGORITHMS = ("apop3d", "all")
_LONG_KEYS = {"uidvalidity": "v", "uid": "u", "md5": "m", "filename": "f", "guid": "g"}
_MODIFIERS = "LUEXRHNMDT"
# mbox_md5 = apop3d (mbox-md5-apop3d.c): these headers only, Date and Message-ID only before the
# first Received header, and of the Received headers only the first.
_APOP3D = frozenset({b"date", b"delivered-to", b"message-id", b"received", b"x-delivery-id"})


class FormatError(ValueError):
    """A pop3_uidl_format Dovecot itself refuses, or one this importer cannot expand."""


class Unknown(Exception):
    """The old server's UIDL of a message cannot be known; the text says why."""


@dataclass(frozen=True, slots=True)
class OldPop3:
    """The old Dovecot's POP3 settings that decide its UIDLs (docs/import.md, "POP3 UIDLs")."""

    uidl_format: str = DEFAULT_FORMAT
    reuse_xuidl: bool = False
    mbox_md5: str = "apop3d"
    deleted_flag: str = ""  # pop3_deleted_flag: a keyword hiding a message from POP3


@dataclass(frozen=True, slots=True)
class Facts:
    """What the old server knew about one message."""

    kind: str  # "mbox" | "maildir"
    header: bytes  # the message's header block, as in the source
    uid: int | None = None  # the old server's UID (None: not known)
    uidvalidity: int | None = None
    filename: str | None = None  # Maildir: the base name (up to the ':')
    guid: str | None = None  # Maildir: dovecot-uidlist's G field
    saved: str | None = None  # Maildir: dovecot-uidlist's P field


@lru_cache(maxsize=16)
def keys_of(fmt: str) -> frozenset[str]:
    """The short variables the format uses, as Dovecot's parse_uidl_keymask finds them: only
    these get a value (`%{uid}` alone expands to nothing in Dovecot 2.3)."""
    keys: set[str] = set()
    i = 0
    while i < len(fmt):
        if fmt[i] == "%" and i + 1 < len(fmt):
            i += 1
            j = i
            while j < len(fmt) and (fmt[j].isdigit() or fmt[j] == "-"):
                j += 1
            if j < len(fmt) and fmt[j] == ".":
                j += 1
                while j < len(fmt) and (fmt[j].isdigit() or fmt[j] == "-"):
                    j += 1
            while j < len(fmt) and fmt[j] in _MODIFIERS:
                j += 1
            if j < len(fmt) and fmt[j] in "vumfg":
                keys.add(fmt[j])
        i += 1
    return frozenset(keys)


def check_format(fmt: str) -> None:
    """Raise FormatError for a format Dovecot's POP3 server would not have served."""
    if not keys_of(fmt):
        raise FormatError(f"pop3_uidl_format {fmt!r} has no %u, %v, %m, %f or %g (Dovecot refuses it)")
    expand(fmt, {k: "0" for k in "vumfg"})


def _hex(value: str) -> str:
    # str_to_ullong: decimal digits only, at most 2**64-1; anything else is 0
    if value.isascii() and value.isdigit() and int(value) < 2**64:
        return f"{int(value):x}"
    return "0"


def _modify(mod: str, value: str) -> str:
    if mod == "L":
        return value.lower()
    if mod == "U":
        return value.upper()
    if mod == "E":
        return re.sub(r"([\\\"'])", r"\\\1", value)
    if mod == "X":
        return _hex(value)
    if mod == "R":
        return value[::-1]
    if mod == "M":
        return hashlib.md5(value.encode()).hexdigest()  # Dovecot's modifier, not security
    if mod == "D":
        return value.replace(".", ",dc=")
    if mod == "T":
        return value.rstrip()
    raise FormatError(f"the %{mod} modifier (a Dovecot hash) is not supported in pop3_uidl_format")


def expand(fmt: str, values: dict[str, str]) -> str:
    """Dovecot's var_expand (2.3) of `fmt` with short variables `values` (missing ones are empty)."""
    out: list[str] = []
    i, n = 0, len(fmt)
    while i < n:
        c = fmt[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        i += 1
        sign, offset, width, zero = 1, 0, 0, False
        if i < n and fmt[i] == "-":
            sign, i = -1, i + 1
        if i < n and fmt[i] == "0":
            zero, i = True, i + 1
        while i < n and fmt[i].isdigit():
            width, i = width * 10 + int(fmt[i]), i + 1
        if i < n and fmt[i] == ".":
            offset, sign, width, zero, i = sign * width, 1, 0, False, i + 1
            if i < n and fmt[i] == "0":
                zero, i = True, i + 1
            if i < n and fmt[i] == "-":
                sign, i = -1, i + 1
            while i < n and fmt[i].isdigit():
                width, i = width * 10 + int(fmt[i]), i + 1
            width *= sign
        mods: list[str] = []
        while i < n and fmt[i] in _MODIFIERS and len(mods) < 10:
            mods.append(fmt[i])
            i += 1
        if i >= n:
            break
        if fmt[i] == "{" and "}" in fmt[i:]:
            end = fmt.index("}", i)
            name = fmt[i + 1 : end]
            if name not in _LONG_KEYS:
                raise FormatError(f"unsupported variable %{{{name}}} in pop3_uidl_format")
            var = values.get(_LONG_KEYS[name], "")
            i = end + 1
        else:
            key = fmt[i]
            i += 1
            if key == "%":
                out.append("%")
                continue
            if key not in "vumfg":
                raise FormatError(f"unknown variable %{key} in pop3_uidl_format (Dovecot fails on it)")
            var = values.get(key, "")
        for m in mods:
            var = _modify(m, var)
        var = var[offset:]  # a negative offset counts from the end
        if width == 0:
            out.append(var)
        elif not zero:
            out.append(var[: max(len(var) + width, 0)] if width < 0 else var[:width])
        else:
            out.append(var.rjust(width, "0"))
    return "".join(out)


def mbox_md5(header: bytes, algorithm: str = "apop3d") -> str:
    """Dovecot's header MD5 of an mbox message (mbox-sync-parse.c with mbox-md5-*.c): each
    physical header line's value (after the colon and one blank, without the line end; a
    continuation line whole) of the headers Dovecot does not keep itself (X-UID, Status, ...,
    which the importer has already taken out of `header`)."""
    md5 = hashlib.md5()  # Dovecot's message identity, not security
    seen_received = False
    for name, raw in header_fields(header):
        lines = raw.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        lines = [ln[:-1] if ln.endswith(b"\r") else ln for ln in lines]
        colon = lines[0].find(b":")
        values = [lines[0][colon + 1 :] if colon >= 0 else lines[0], *lines[1:]]
        if colon >= 0 and values[0][:1] in (b" ", b"\t"):
            values[0] = values[0][1:]
        if algorithm == "all":
            for v in values:
                md5.update(v)
            continue
        if name not in _APOP3D:
            continue
        if name in (b"date", b"message-id") and seen_received:
            continue
        if name == b"received":
            if seen_received:
                continue
            seen_received = True  # after its last line (the whole first Received header counts)
        for v in values:
            md5.update(v)
    return md5.hexdigest()


def first_xuidl(header: bytes) -> str | None:
    """The first X-UIDL header's value (unfolded, without surrounding blanks), as Dovecot's
    mail_get_first_header gives it."""
    for name, raw in header_fields(header):
        if name == b"x-uidl":
            value = raw.split(b":", 1)[1] if b":" in raw else b""
            value = re.sub(rb"\r?\n", b"", value).strip(b" \t")
            return value.decode("utf-8", "replace")
    return None


def old_uidl(cfg: OldPop3, m: Facts) -> str:
    """The UIDL the old server gave the message; raises Unknown when it cannot be known."""
    if m.saved is not None:
        if m.saved:
            return m.saved
        if m.filename:
            return m.filename
    if cfg.reuse_xuidl:
        x = first_xuidl(m.header)
        if x is not None:
            return x
    keys = keys_of(cfg.uidl_format)
    values = {"v": str(m.uidvalidity or "")}
    if "v" in keys and m.uidvalidity is None:
        raise Unknown("the old UIDVALIDITY is not known (the mailbox had none, or already held other mail)")
    if "u" in keys:
        if m.uid is None or m.uidvalidity is None:
            raise Unknown("the old UID is not known (the mailbox had no UIDVALIDITY, or already held other mail)")
        values["u"] = str(m.uid)
    if "m" in keys or ("g" in keys and m.kind == "mbox"):
        if m.kind != "mbox":
            raise Unknown("%m needs mbox: Dovecot itself could not serve it for Maildir")
        values["m"] = mbox_md5(m.header, cfg.mbox_md5)
        values["g"] = values["m"]
    if "f" in keys:
        if m.kind != "maildir" or not m.filename:
            raise Unknown("%f needs Maildir: Dovecot itself could not serve it for mbox")
        values["f"] = m.filename
    if "g" in keys and m.kind == "maildir":
        values["g"] = m.guid or m.filename or ""
    return expand(cfg.uidl_format, values)


def header_of(data: bytes) -> bytes:
    """The header block of a message (each line with its line end, no blank line)."""
    if data.startswith((b"\n", b"\r\n")):
        return b""
    m = re.search(rb"\n\r?\n", data)
    return data if m is None else data[: m.start() + 1]


def kept_uidl(cfg: OldPop3, m: Facts, own: bytes = b"") -> str:
    """The UIDL to keep for an imported message: the old server's, if POP3 can serve it. `own`:
    mailcove's own UIDL of the message, where its UIDVALIDITY and UID are already known."""
    value = old_uidl(cfg, m)
    raw = value.encode("utf-8", "replace")
    if not valid_uidl(raw):
        raise Unknown("the old server's UIDL is not one POP3 allows (1-70 printable characters, no spaces)")
    if not usable_kept_uidl(raw, own):
        raise Unknown("the old server's UIDL has the form of mailcove's own UIDL of another message")
    return value
