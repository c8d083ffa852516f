"""POP3 commands as frozen dataclasses, and the parser from one command line to one of them.

RFC 1939 (the base protocol), RFC 2449 (CAPA, response codes), RFC 5034 (AUTH), RFC 2595 (STLS).
The parser only checks syntax; which command is allowed in which state is the connection's table
(`connection.ALLOWED`), and what a command means is the session's business.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass

# RFC 1939 section 3: a message number never has more digits than this in practice; it also keeps
# int() off absurd inputs.
MAX_NUMBER_DIGITS = 10
# RFC 1939 section 7: a UIDL is 1 to 70 characters in the range 0x21 to 0x7E.
MAX_UIDL = 70


class CommandError(ValueError):
    """A syntax error in a command line; the message is the -ERR text."""


@dataclass(frozen=True, slots=True)
class Command:
    """Base class. `name` is the upper-case keyword as sent."""

    @property
    def name(self) -> str:
        return type(self).__name__.upper()


@dataclass(frozen=True, slots=True)
class User(Command):
    user: str


@dataclass(frozen=True, slots=True)
class Pass(Command):
    password: str = ""


@dataclass(frozen=True, slots=True)
class Auth(Command):
    """AUTH mechanism [initial-response]. `initial` is the decoded initial response (RFC 5034:
    "=" is an empty one), None when the client sent none. `mechanism` None is a bare AUTH, which
    Outlook-era clients send to list the mechanisms."""

    mechanism: str | None = None
    initial: bytes | None = None


@dataclass(frozen=True, slots=True)
class AuthData(Command):
    """A line sent in answer to a "+ " continuation during AUTH: decoded base64."""

    data: bytes = b""


@dataclass(frozen=True, slots=True)
class AuthCancel(Command):
    """The client answered a continuation with "*" (RFC 5034 section 4)."""


@dataclass(frozen=True, slots=True)
class Stat(Command):
    pass


@dataclass(frozen=True, slots=True)
class List(Command):
    msg: int | None = None


@dataclass(frozen=True, slots=True)
class Retr(Command):
    msg: int = 0


@dataclass(frozen=True, slots=True)
class Dele(Command):
    msg: int = 0


@dataclass(frozen=True, slots=True)
class Noop(Command):
    pass


@dataclass(frozen=True, slots=True)
class Rset(Command):
    pass


@dataclass(frozen=True, slots=True)
class Quit(Command):
    pass


@dataclass(frozen=True, slots=True)
class Top(Command):
    msg: int = 0
    lines: int = 0


@dataclass(frozen=True, slots=True)
class Uidl(Command):
    msg: int | None = None


@dataclass(frozen=True, slots=True)
class Capa(Command):
    pass


@dataclass(frozen=True, slots=True)
class Stls(Command):
    pass


def _number(text: str, what: str) -> int:
    # isdigit() accepts other scripts' digits; POP3 numbers are ASCII only.
    if not text or len(text) > MAX_NUMBER_DIGITS or not text.isascii() or not text.isdigit():
        raise CommandError(f"Invalid {what}: {text[:20]!r}" if text else f"Missing {what}")
    return int(text)


def _no_args(cls: type[Command], args: str) -> Command:
    if args:
        raise CommandError(f"{cls.__name__.upper()} takes no arguments")
    return cls()


def _optional_msg(cls: type[List] | type[Uidl], args: str) -> Command:
    if not args:
        return cls()
    if " " in args:
        raise CommandError(f"{cls.__name__.upper()} takes at most one argument")
    return cls(_number(args, "message number"))


def _one_msg(cls: type[Retr] | type[Dele], args: str) -> Command:
    if " " in args:
        raise CommandError(f"{cls.__name__.upper()} takes one argument")
    return cls(_number(args, "message number"))


def _top(args: str) -> Command:
    parts = args.split(" ")
    if len(parts) != 2:
        raise CommandError("TOP takes a message number and a line count")
    return Top(_number(parts[0], "message number"), _number(parts[1], "line count"))


def _user(args: str) -> Command:
    if not args:
        raise CommandError("USER needs a user name")
    return User(args)


def _pass(args: str) -> Command:
    # RFC 1939 section 7: PASS has exactly one argument, so spaces belong to the password.
    return Pass(args)


def decode_base64(text: str) -> bytes:
    try:
        return binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        raise CommandError("Invalid base64 data") from None


def _auth(args: str) -> Command:
    if not args:
        return Auth()
    mech, _, rest = args.partition(" ")
    if not mech.isascii() or not mech.replace("-", "").replace("_", "").isalnum() or len(mech) > 20:
        raise CommandError("Invalid SASL mechanism name")
    if not rest:
        return Auth(mech.upper())
    if " " in rest:
        raise CommandError("AUTH takes a mechanism and at most one initial response")
    # RFC 5034 section 4: "=" is an initial response of zero length.
    return Auth(mech.upper(), b"" if rest == "=" else decode_base64(rest))


_PARSERS = {
    "USER": _user,
    "PASS": _pass,
    "AUTH": _auth,
    "STAT": lambda a: _no_args(Stat, a),
    "LIST": lambda a: _optional_msg(List, a),
    "RETR": lambda a: _one_msg(Retr, a),
    "DELE": lambda a: _one_msg(Dele, a),
    "NOOP": lambda a: _no_args(Noop, a),
    "RSET": lambda a: _no_args(Rset, a),
    "QUIT": lambda a: _no_args(Quit, a),
    "TOP": _top,
    "UIDL": lambda a: _optional_msg(Uidl, a),
    "CAPA": lambda a: _no_args(Capa, a),
    "STLS": lambda a: _no_args(Stls, a),
}


def split_line(line: bytes) -> tuple[str, str]:
    """(upper-case keyword, argument text) of one command line without its line ending.

    Arguments are UTF-8 (user names and passwords may be non-ASCII); anything else is an error
    rather than a guess."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError("Invalid UTF-8 in command") from None
    keyword, _, args = text.partition(" ")
    if not keyword:
        raise CommandError("Empty command" if not text.strip() else "Command must start with a keyword")
    if "\x00" in text:
        raise CommandError("NUL in command")
    return keyword.upper(), args


def parse_command(line: bytes) -> Command:
    """One command line (without CRLF) -> Command. Raises CommandError with the -ERR text."""
    keyword, args = split_line(line)
    parser = _PARSERS.get(keyword)
    if parser is None:
        shown = keyword if keyword.isascii() and keyword.isalpha() and len(keyword) <= 8 else "command"
        raise CommandError(f"Unknown command {shown}")
    if keyword != "PASS":
        # Trailing blanks are a common client sloppiness; PASS keeps them (they may be the password).
        args = args.rstrip(" \t")
    return parser(args)


def parse_auth_response(line: bytes) -> Command:
    """A line sent after a "+ " continuation: "*" cancels, anything else is base64."""
    text = line.decode("ascii", "replace").strip()
    if text == "*":
        return AuthCancel()
    return AuthData(decode_base64(text))
