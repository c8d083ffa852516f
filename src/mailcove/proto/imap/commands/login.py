"""LOGIN (RFC 9051 §6.2.3). User name and password are decoded UTF-8 with surrogateescape, so
8-bit bytes in any charset survive (`s.encode('utf-8', 'surrogateescape')` gives them back)."""

from __future__ import annotations

from typing import ClassVar

from mailcove.proto.imap.commands.base import Command, command
from mailcove.proto.imap.parser import Parser

__all__ = ["Login", "parse"]


@command
class Login(Command):
    name: ClassVar[str] = "LOGIN"
    username: str
    password: str

    def __repr__(self) -> str:  # never log a password
        return f"Login(tag={self.tag!r}, username={self.username!r}, password=<hidden>)"


def parse(p: Parser, tag: str, uid: bool) -> Login:
    p.sp()
    user = p.astring().decode("utf-8", "surrogateescape")
    p.sp()
    password = p.astring().decode("utf-8", "surrogateescape")
    p.end()
    return Login(tag=tag, username=user, password=password)
