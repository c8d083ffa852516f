"""GETQUOTA, GETQUOTAROOT and SETQUOTA (RFC 9208). SETQUOTA parses but the session refuses it
(quotas are set by the administrator)."""

from __future__ import annotations

from typing import ClassVar

from mailcove.proto.imap.commands.base import Command, command
from mailcove.proto.imap.parser import Parser

__all__ = ["GetQuota", "GetQuotaRoot", "SetQuota", "parse_getquota", "parse_getquotaroot", "parse_setquota"]


@command
class GetQuota(Command):
    name: ClassVar[str] = "GETQUOTA"
    root: str


@command
class GetQuotaRoot(Command):
    name: ClassVar[str] = "GETQUOTAROOT"
    mailbox: str


@command
class SetQuota(Command):
    name: ClassVar[str] = "SETQUOTA"
    root: str
    limits: tuple[tuple[str, int], ...]


def parse_getquota(p: Parser, tag: str, uid: bool) -> GetQuota:
    p.sp()
    root = p.text_astring()
    p.end()
    return GetQuota(tag=tag, root=root)


def parse_getquotaroot(p: Parser, tag: str, uid: bool) -> GetQuotaRoot:
    p.sp()
    mailbox = p.mailbox()
    p.end()
    return GetQuotaRoot(tag=tag, mailbox=mailbox)


def parse_setquota(p: Parser, tag: str, uid: bool) -> SetQuota:
    p.sp()
    root = p.text_astring()
    p.sp()
    p.open()
    limits = []
    if not p.accept(b")"):
        while True:
            res = p.upper_atom()
            p.sp()
            limits.append((res, p.number64()))
            if not p.maybe_sp():
                break
        p.close()
    else:
        p.depth -= 1
    p.end()
    return SetQuota(tag=tag, root=root, limits=tuple(limits))
