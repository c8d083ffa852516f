"""One module per command: a frozen dataclass and its parser. `parse_command` dispatches a complete
command (tag, name, arguments; literals inline, final CRLF removed) to them."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import fields

from mailcove.proto.imap.commands import (
    authenticate,
    capability,
    check,
    close,
    compress,
    copy,
    create,
    delete,
    enable,
    expunge,
    fetch,
    id,
    idle,
    list,
    login,
    logout,
    namespace,
    noop,
    quota,
    rename,
    search,
    select,
    sort,
    starttls,
    status,
    store,
    subscribe,
    thread,
    unselect,
    unsubscribe,
)
from mailcove.proto.imap.commands.append import AppendData, AppendEnd, AppendStart
from mailcove.proto.imap.commands.authenticate import Authenticate
from mailcove.proto.imap.commands.base import Command
from mailcove.proto.imap.commands.capability import Capability
from mailcove.proto.imap.commands.check import Check
from mailcove.proto.imap.commands.close import Close
from mailcove.proto.imap.commands.compress import Compress
from mailcove.proto.imap.commands.copy import Copy, Move
from mailcove.proto.imap.commands.create import Create
from mailcove.proto.imap.commands.delete import Delete
from mailcove.proto.imap.commands.enable import Enable
from mailcove.proto.imap.commands.expunge import Expunge
from mailcove.proto.imap.commands.fetch import Fetch, FetchAtt, Section
from mailcove.proto.imap.commands.id import Id
from mailcove.proto.imap.commands.idle import Idle
from mailcove.proto.imap.commands.list import List, Lsub
from mailcove.proto.imap.commands.login import Login
from mailcove.proto.imap.commands.logout import Logout
from mailcove.proto.imap.commands.namespace import Namespace
from mailcove.proto.imap.commands.noop import Noop
from mailcove.proto.imap.commands.quota import GetQuota, GetQuotaRoot, SetQuota
from mailcove.proto.imap.commands.rename import Rename
from mailcove.proto.imap.commands.search import Search
from mailcove.proto.imap.commands.select import Examine, QresyncParams, Select
from mailcove.proto.imap.commands.sort import Sort
from mailcove.proto.imap.commands.starttls import StartTLS
from mailcove.proto.imap.commands.status import Status
from mailcove.proto.imap.commands.store import Store
from mailcove.proto.imap.commands.subscribe import Subscribe
from mailcove.proto.imap.commands.thread import Thread
from mailcove.proto.imap.commands.unselect import Unselect
from mailcove.proto.imap.commands.unsubscribe import Unsubscribe
from mailcove.proto.imap.parser import ParseError, Parser

__all__ = [
    "COMMANDS", "UID_COMMANDS", "AppendData", "AppendEnd", "AppendStart", "Authenticate", "Capability", "Check",
    "Close", "Command", "Compress", "Copy", "Create", "Delete", "Enable", "Examine", "Expunge", "Fetch", "FetchAtt",
    "GetQuota", "GetQuotaRoot", "Id", "Idle", "List", "Login", "Logout", "Lsub", "Move", "Namespace", "Noop",
    "QresyncParams", "Rename", "Search", "Section", "Select", "SetQuota", "Sort", "StartTLS", "Status", "Store",
    "Subscribe", "Thread", "Unselect", "Unsubscribe", "parse_command",
]

Parse = Callable[[Parser, str, bool], Command]

COMMANDS: dict[str, Parse] = {
    "CAPABILITY": capability.parse, "NOOP": noop.parse, "LOGOUT": logout.parse, "STARTTLS": starttls.parse,
    "AUTHENTICATE": authenticate.parse, "LOGIN": login.parse, "ENABLE": enable.parse,
    "SELECT": select.parse, "EXAMINE": select.parse_examine, "CREATE": create.parse, "DELETE": delete.parse,
    "RENAME": rename.parse, "SUBSCRIBE": subscribe.parse, "UNSUBSCRIBE": unsubscribe.parse,
    "LIST": list.parse, "LSUB": list.parse_lsub, "NAMESPACE": namespace.parse, "STATUS": status.parse,
    "IDLE": idle.parse, "CHECK": check.parse, "CLOSE": close.parse, "UNSELECT": unselect.parse,
    "EXPUNGE": expunge.parse, "SEARCH": search.parse, "SORT": sort.parse, "THREAD": thread.parse,
    "FETCH": fetch.parse, "STORE": store.parse, "COPY": copy.parse_copy, "MOVE": copy.parse_move,
    "ID": id.parse, "GETQUOTA": quota.parse_getquota, "GETQUOTAROOT": quota.parse_getquotaroot,
    "SETQUOTA": quota.parse_setquota, "COMPRESS": compress.parse,
}
UID_COMMANDS = frozenset({"FETCH", "STORE", "COPY", "MOVE", "SEARCH", "SORT", "THREAD", "EXPUNGE"})


# Clients repeat the same few commands with new tags (Thunderbird's UID FETCH n:* (FLAGS), STORE,
# NOOP), so parsed commands are cached by everything after the tag: a hit costs a dict lookup and
# a copy instead of a parse. The cache is shared by all sessions, so only commands that carry no
# user data (no mailbox names, search strings or credentials) go in; it is bounded and cleared
# when full.
_CACHEABLE = frozenset({b"FETCH", b"STORE", b"NOOP", b"IDLE", b"CHECK", b"EXPUNGE", b"CAPABILITY", b"CLOSE",
                        b"UNSELECT", b"NAMESPACE"})
_CACHE: dict[tuple[bytes, bool, int], Command] = {}
_CACHE_MAX = 2048
_CACHE_KEY_MAX = 512
_TAG_END = re.compile(rb"[^(){ \x00-\x1f\x7f%*\"\\+\x80-\xff]+ ")
_FIELDS: dict[type, tuple[str, ...]] = {}


def _retag(cmd: Command, tag: str) -> Command:
    cls = type(cmd)
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in fields(cls) if f.name != "tag")
    new = object.__new__(cls)
    setattr_ = object.__setattr__
    setattr_(new, "tag", tag)
    for name in names:
        setattr_(new, name, getattr(cmd, name))
    return new


def parse_command(data: bytes, *, utf8: bool = False, max_depth: int = 16) -> Command:
    """Parse one complete command; raises `ParseError` (with ``.tag`` set when the tag was read)."""
    m = _TAG_END.match(data)
    if m is not None and len(data) - m.end() <= _CACHE_KEY_MAX:
        key = (data[m.end():], utf8, max_depth)
        hit = _CACHE.get(key)
        if hit is not None:
            return _retag(hit, data[:m.end() - 1].decode("ascii"))
        cmd = _parse(data, utf8, max_depth)
        words = key[0][:16].upper().split(b" ", 2)
        if words[0] in _CACHEABLE or (words[0] == b"UID" and len(words) > 1 and words[1] in _CACHEABLE):
            if len(_CACHE) >= _CACHE_MAX:
                _CACHE.clear()
            _CACHE[key] = cmd
        return cmd
    return _parse(data, utf8, max_depth)


def _parse(data: bytes, utf8: bool, max_depth: int) -> Command:
    p = Parser(data, utf8=utf8, max_depth=max_depth)
    tag = None
    try:
        tag = p.tag()
        p.sp()
        word = p.atom().upper()
        uid = False
        if word == "UID":
            p.sp()
            word = p.atom().upper()
            if word not in UID_COMMANDS:
                raise ParseError(f"UID {word} is not a command")
            uid = True
        fn = COMMANDS.get(word)
        if fn is None:
            if word == "APPEND":
                raise ParseError("APPEND needs a message literal")
            raise ParseError(f"Unknown command {word[:40]}")
        return fn(p, tag, uid)
    except ParseError as exc:
        exc.tag = tag  # type: ignore[attr-defined]
        raise
