"""Client-role command encoder: a parsed `Command` back to wire bytes (LITERAL+ for literals, so
the result can be sent in one piece). Used by the round-trip tests and by test clients.

``encode_command(parse(x)) `` is a canonical form of ``x``: parsing it again gives an equal command.
"""

from __future__ import annotations

import base64

from mailcove.proto.imap import utf7
from mailcove.proto.imap.commands import (
    Authenticate,
    Command,
    Compress,
    Copy,
    Create,
    Enable,
    Expunge,
    Fetch,
    GetQuota,
    GetQuotaRoot,
    Id,
    List,
    Login,
    Lsub,
    Rename,
    Search,
    Select,
    SetQuota,
    Sort,
    Status,
    Store,
    Thread,
)
from mailcove.proto.imap.commands.delete import Delete
from mailcove.proto.imap.commands.search import (
    All,
    And,
    DateKey,
    Flag,
    Header,
    ModSeq,
    Not,
    Or,
    SearchKey,
    SeqKey,
    Size,
    Text,
    UidKey,
    Within,
)
from mailcove.proto.imap.commands.subscribe import Subscribe
from mailcove.proto.imap.commands.unsubscribe import Unsubscribe
from mailcove.proto.imap.responses import _ASTRING_OK, _QUOTABLE_8BIT, quoted

__all__ = ["encode_command", "encode_search_key"]

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _string(v: bytes, utf8: bool = True) -> bytes:
    if len(v) < 1000 and _QUOTABLE_8BIT.match(v) and (v.isascii() or utf8):
        return quoted(v)
    return b"{%d+}\r\n" % len(v) + v


def _astring(v: bytes, utf8: bool = True) -> bytes:
    if v and _ASTRING_OK.match(v) and v.upper() != b"NIL":
        return v
    return _string(v, utf8)


def _mailbox(name: str, utf8: bool) -> bytes:
    raw = name.encode("utf-8") if utf8 else utf7.encode(name).encode("ascii")
    return _astring(raw, utf8)


def _pattern(name: str, utf8: bool) -> bytes:
    raw = name.encode("utf-8") if utf8 else utf7.encode(name).encode("ascii")
    return _string(raw, utf8)


def _text(s: str) -> bytes:
    return _astring(s.encode("utf-8"))


def _list(items: list[bytes]) -> bytes:
    return b"(" + b" ".join(items) + b")"


def encode_search_key(k: SearchKey) -> bytes:
    if isinstance(k, All):
        return b"ALL"
    if isinstance(k, Flag):
        system = {"\\Answered": "ANSWERED", "\\Deleted": "DELETED", "\\Draft": "DRAFT", "\\Flagged": "FLAGGED",
                  "\\Seen": "SEEN", "\\Recent": "RECENT"}.get(k.flag)
        if system is None:
            return (b"KEYWORD " if k.present else b"UNKEYWORD ") + k.flag.encode()
        if k.present:
            return system.encode()
        return b"OLD" if system == "RECENT" else b"UN" + system.encode()
    if isinstance(k, Text):
        return k.field.encode() + b" " + _text(k.value)
    if isinstance(k, Header):
        return b"HEADER " + _text(k.name) + b" " + _text(k.value)
    if isinstance(k, DateKey):
        d = f"{k.date.day}-{_MONTHS[k.date.month - 1]}-{k.date.year:04d}".encode()
        return (b"SENT" if k.sent else b"") + k.op.encode() + b" " + d
    if isinstance(k, Size):
        return (b"LARGER " if k.larger else b"SMALLER ") + b"%d" % k.size
    if isinstance(k, SeqKey):
        return str(k.seqset).encode()
    if isinstance(k, UidKey):
        return b"UID " + str(k.seqset).encode()
    if isinstance(k, ModSeq):
        entry = b"" if k.entry is None else quoted(k.entry[0].encode()) + b" " + k.entry[1].encode() + b" "
        return b"MODSEQ " + entry + b"%d" % k.modseq
    if isinstance(k, Not):
        return b"NOT " + encode_search_key(k.key)
    if isinstance(k, Or):
        return b"OR " + encode_search_key(k.left) + b" " + encode_search_key(k.right)
    if isinstance(k, And):
        return _list([encode_search_key(x) for x in k.keys])
    if isinstance(k, Within):
        return (b"OLDER " if k.older else b"YOUNGER ") + b"%d" % k.seconds
    raise TypeError(k)


def _criteria(k: SearchKey) -> bytes:
    if isinstance(k, And):
        return b" ".join(encode_search_key(x) for x in k.keys)
    return encode_search_key(k)


def _return(opts: tuple[str, ...] | None) -> bytes:
    return b"" if opts is None else b"RETURN (" + " ".join(opts).encode() + b") "


def _args(cmd: Command, utf8: bool) -> bytes:
    if isinstance(cmd, Authenticate):
        out = cmd.mechanism.encode()
        if cmd.initial is not None:
            out += b" " + (base64.b64encode(cmd.initial) if cmd.initial else b"=")
        return out
    if isinstance(cmd, Login):
        return _astring(cmd.username.encode("utf-8", "surrogateescape")) + b" " + \
            _astring(cmd.password.encode("utf-8", "surrogateescape"))
    if isinstance(cmd, Enable):
        return " ".join(cmd.capabilities).encode()
    if isinstance(cmd, Compress):
        return cmd.mechanism.encode()
    if isinstance(cmd, Select):
        out = _mailbox(cmd.mailbox, utf8)
        params = []
        if cmd.condstore:
            params.append(b"CONDSTORE")
        q = cmd.qresync
        if q is not None:
            inner = b"%d %d" % (q.uidvalidity, q.modseq)
            if q.known_uids is not None:
                inner += b" " + str(q.known_uids).encode()
            if q.seq_match is not None:
                inner += b" (" + str(q.seq_match[0]).encode() + b" " + str(q.seq_match[1]).encode() + b")"
            params.append(b"QRESYNC (" + inner + b")")
        return out + (b" " + _list(params) if params else b"")
    if isinstance(cmd, Create):
        out = _mailbox(cmd.mailbox, utf8)
        if cmd.special_use:
            out += b" (USE (" + " ".join(cmd.special_use).encode() + b"))"
        return out
    if isinstance(cmd, (Delete, Subscribe, Unsubscribe, GetQuotaRoot)):
        return _mailbox(cmd.mailbox, utf8)
    if isinstance(cmd, Rename):
        return _mailbox(cmd.old, utf8) + b" " + _mailbox(cmd.new, utf8)
    if isinstance(cmd, List):
        out = b""
        # "()" keeps a LIST-EXTENDED command extended when nothing else would show it
        if cmd.extended and (cmd.selection or (not cmd.return_opts and len(cmd.patterns) == 1)):
            out += _list([s.encode() for s in sorted(cmd.selection)]) + b" "
        out += _pattern(cmd.reference, utf8) + b" "
        if len(cmd.patterns) == 1:
            out += _pattern(cmd.patterns[0], utf8)
        else:
            out += _list([_pattern(p, utf8) for p in cmd.patterns])
        if cmd.return_opts:
            opts = []
            for o in sorted(cmd.return_opts):
                opts.append(o.encode() + (b" (" + " ".join(cmd.status_items).encode() + b")" if o == "STATUS" else b""))
            out += b" RETURN " + _list(opts)
        return out
    if isinstance(cmd, Lsub):
        return _pattern(cmd.reference, utf8) + b" " + _pattern(cmd.pattern, utf8)
    if isinstance(cmd, Status):
        return _mailbox(cmd.mailbox, utf8) + b" (" + " ".join(cmd.items).encode() + b")"
    if isinstance(cmd, Expunge):
        return str(cmd.uids).encode() if cmd.uids is not None else b""
    if isinstance(cmd, Search):
        out = _return(cmd.return_opts)
        if cmd.charset is not None:
            out += b"CHARSET " + cmd.charset.encode() + b" "
        return out + _criteria(cmd.criteria)
    if isinstance(cmd, Sort):
        keys = [(b"REVERSE " if r else b"") + k.encode() for k, r in cmd.sort]
        return _return(cmd.return_opts) + _list(keys) + b" " + cmd.charset.encode() + b" " + _criteria(cmd.criteria)
    if isinstance(cmd, Thread):
        return cmd.algorithm.encode() + b" " + cmd.charset.encode() + b" " + _criteria(cmd.criteria)
    if isinstance(cmd, Fetch):
        out = str(cmd.seqset).encode() + b" " + _list([str(a).encode() for a in cmd.items])
        mods = []
        if cmd.changedsince is not None:
            mods.append(b"CHANGEDSINCE %d" % cmd.changedsince)
        if cmd.vanished:
            mods.append(b"VANISHED")
        return out + (b" " + _list(mods) if mods else b"")
    if isinstance(cmd, Store):
        out = str(cmd.seqset).encode() + b" "
        if cmd.unchangedsince is not None:
            out += b"(UNCHANGEDSINCE %d) " % cmd.unchangedsince
        return out + cmd.mode.encode() + b"FLAGS" + (b".SILENT" if cmd.silent else b"") + b" " + \
            _list([f.encode() for f in cmd.flags])
    if isinstance(cmd, Copy):  # and Move
        return str(cmd.seqset).encode() + b" " + _mailbox(cmd.mailbox, utf8)
    if isinstance(cmd, Id):
        if cmd.params is None:
            return b"NIL"
        return _list([_string(k.encode()) + b" " + (b"NIL" if v is None else _string(v.encode()))
                      for k, v in cmd.params])
    if isinstance(cmd, GetQuota):
        return _text(cmd.root)
    if isinstance(cmd, SetQuota):
        return _text(cmd.root) + b" " + _list([f"{r} {n}".encode() for r, n in cmd.limits])
    return b""


def encode_command(cmd: Command, utf8: bool = False) -> bytes:
    """Wire bytes (with the final CRLF) for `cmd`; ``utf8`` as the server's receiver expects."""
    args = _args(cmd, utf8)
    head = cmd.tag.encode("ascii") + b" " + (b"UID " if cmd.uid else b"") + cmd.name.encode("ascii")
    return head + (b" " + args if args else b"") + b"\r\n"
