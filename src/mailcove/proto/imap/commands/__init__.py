"""One module per command: a frozen dataclass and its parser. `parse_command` dispatches a complete
command (tag, name, arguments; literals inline, final CRLF removed) to them."""

from __future__ import annotations

from collections.abc import Callable

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


def parse_command(data: bytes, *, utf8: bool = False, max_depth: int = 16) -> Command:
    """Parse one complete command; raises `ParseError` (with ``.tag`` set when the tag was read)."""
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
