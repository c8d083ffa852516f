"""MAIL and RCPT arguments: the path (RFC 5321 section 4.1.2) and ESMTP parameters.

Paths are checked strictly enough that no relay trick survives parsing in a confusing shape:
a source route (`@a,@b:user@c`) is removed as RFC 5321 section 4.1.1.3 asks (the address is
then `user@c` and is routed, and relay-checked, as such); a quoted local part keeps its quotes,
so `"user@remote"@local` is a local-part at `local`, never an address at `remote`. Non-ASCII
needs SMTPUTF8 (RFC 6531)."""

from __future__ import annotations

import re

from mailcove.proto.smtp import replies as R
from mailcove.proto.smtp.events import Mail, Rcpt
from mailcove.proto.smtp.replies import Reply

MAX_LOCAL = 64
MAX_DOMAIN = 255
MAX_PATH = 256

# atext (RFC 5322) plus UTF-8 (RFC 6531 extends atext with UTF8-non-ascii).
_ATEXT = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\U0010ffff]+"
_DOT_STRING = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*")
_QUOTED = re.compile(r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e\u0080-\U0010ffff]|\\[\x20-\x7e])*"')
_LABEL = r"[A-Za-z0-9\u0080-\U0010ffff](?:[A-Za-z0-9\-\u0080-\U0010ffff]*[A-Za-z0-9\u0080-\U0010ffff])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
_LITERAL = re.compile(r"\[(?:[0-9.]+|IPv6:[0-9A-Fa-f:.]+)\]")
_ROUTE = re.compile(rf"@{_LABEL}(?:\.{_LABEL})*(?:,@{_LABEL}(?:\.{_LABEL})*)*:")
_XTEXT = re.compile(r"\+([0-9A-F]{2})")
_NOTIFY = frozenset({"SUCCESS", "FAILURE", "DELAY"})


class PathError(ValueError):
    pass


def check_mailbox(text: str) -> str:
    """Validate `local@domain`; return it unchanged. Raises PathError."""
    if len(text) > MAX_PATH:
        raise PathError("path too long")
    m = _QUOTED.match(text) if text.startswith('"') else _DOT_STRING.match(text)
    if m is None or m.end() >= len(text) or text[m.end()] != "@":
        raise PathError("bad local part")
    local = text[: m.end()]
    domain = text[m.end() + 1 :]
    if len(local.encode()) > MAX_LOCAL and not local.startswith('"'):
        raise PathError("local part too long")
    if not domain or len(domain) > MAX_DOMAIN:
        raise PathError("bad domain")
    if not (_DOMAIN.fullmatch(domain) or _LITERAL.fullmatch(domain)):
        raise PathError("bad domain")
    return text


def unquote_local(address: str) -> str:
    """`"a.b"@d` is the same mailbox as `a.b@d` (RFC 5321 4.1.2: a quoted string that could be a
    dot-string should be written as one). Quoted local parts that need the quotes stay quoted:
    `"user@remote"@local` never loses them and so never turns into an address at `remote`."""
    if not address.startswith('"'):
        return address
    local, at, domain = address.rpartition("@")
    inner = local[1:-1]
    if at and "\\" not in inner and _DOT_STRING.fullmatch(inner):
        return f"{inner}@{domain}"
    return address


def parse_path(arg: str, keyword: str) -> tuple[str, str]:
    """Split `FROM:<path> params` into (address, params text). The address has its brackets
    and any source route removed; "" is the null path. Raises PathError."""
    if arg[: len(keyword)].upper() != keyword:
        raise PathError(f"expected {keyword}")
    rest = arg[len(keyword) :].lstrip(" ")
    if rest.startswith("<"):
        # Find the closing bracket outside a quoted string.
        i, n, quoted = 1, len(rest), False
        while i < n:
            c = rest[i]
            if quoted:
                if c == "\\":
                    i += 1
                elif c == '"':
                    quoted = False
            elif c == '"':
                quoted = True
            elif c == ">":
                break
            i += 1
        else:
            raise PathError("unterminated path")
        path, params = rest[1:i], rest[i + 1 :]
        if params and not params.startswith(" "):
            raise PathError("junk after path")
    else:
        # Without brackets (RFC 821 clients, some scripts): the path ends at the first space.
        path, _, params = rest.partition(" ")
    m = _ROUTE.match(path)
    if m is not None:
        path = path[m.end() :]
    return path, params.strip(" ")


def xtext_decode(value: str) -> str:
    return _XTEXT.sub(lambda m: chr(int(m.group(1), 16)), value)


# C0 controls, DEL and C1 controls. A decoded ENVID or ORCPT is stored and later written into a
# DSN's header-like fields (queue/dsn.py): a CR, LF or NUL there would start a new field.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

BAD_ENVID = Reply(501, "5.5.4", "Bad ENVID parameter syntax")
BAD_ORCPT = Reply(501, "5.5.4", "Bad ORCPT parameter syntax")


def xtext_printable(value: str) -> str | None:
    """The xtext `value` decoded (RFC 3461 section 4), or None when the decoded text holds a
    control character (CR, LF, NUL, ...): refused as Postfix refuses them, never stored."""
    decoded = xtext_decode(value)
    if _CONTROL.search(decoded) or _CONTROL.search(value):
        return None
    return decoded


def _split_params(text: str) -> list[tuple[str, str | None]]:
    out = []
    for word in text.split():
        key, eq, value = word.partition("=")
        out.append((key.upper(), value if eq else None))
    return out


def _has_non_ascii(text: str) -> bool:
    return not text.isascii()


def parse_mail(arg: str, *, max_size: int, extensions: frozenset[str]) -> Mail | Reply:
    try:
        path, ptext = parse_path(arg, "FROM:")
    except PathError:
        return R.SYNTAX_ERROR
    size = body = ret = envid = auth = None
    smtputf8 = False
    for key, value in _split_params(ptext):
        if key == "SIZE" and "SIZE" in extensions:
            if value is None or not value.isdigit() or len(value) > 20:
                return R.SYNTAX_ERROR
            size = int(value)
            if max_size and size > max_size:
                return R.TOO_BIG
        elif key == "BODY" and "8BITMIME" in extensions:
            v = (value or "").upper()
            if v not in ("7BIT", "8BITMIME") and not (v == "BINARYMIME" and "BINARYMIME" in extensions):
                return R.SYNTAX_ERROR
            body = v
        elif key == "SMTPUTF8" and "SMTPUTF8" in extensions:
            if value is not None:
                return R.SYNTAX_ERROR
            smtputf8 = True
        elif key == "RET" and "DSN" in extensions:
            v = (value or "").upper()
            if v not in ("FULL", "HDRS") or ret is not None:
                return R.SYNTAX_ERROR
            ret = v
        elif key == "ENVID" and "DSN" in extensions:
            if not value or envid is not None or len(value) > 100:
                return R.SYNTAX_ERROR
            envid = xtext_printable(value)
            if envid is None:
                return BAD_ENVID
        elif key == "AUTH" and "AUTH" in extensions:
            auth = xtext_printable(value or "<>")
            if auth is None:
                return R.SYNTAX_ERROR
        else:
            return R.PARAM_NOT_IMPLEMENTED
    if path:
        if _has_non_ascii(path) and not smtputf8:
            return R.NEED_SMTPUTF8
        try:
            check_mailbox(path)
        except PathError:
            return R.BAD_SENDER_SYNTAX
    return Mail(path, size, body, smtputf8, ret, envid, auth)


def parse_rcpt(arg: str, *, smtputf8: bool, extensions: frozenset[str]) -> Rcpt | Reply:
    try:
        path, ptext = parse_path(arg, "TO:")
    except PathError:
        return R.SYNTAX_ERROR
    notify: tuple[str, ...] = ()
    orcpt = None
    for key, value in _split_params(ptext):
        if key == "NOTIFY" and "DSN" in extensions:
            items = tuple((value or "").upper().split(","))
            if notify or not all(items):
                return R.SYNTAX_ERROR
            if items != ("NEVER",) and not set(items) <= _NOTIFY:
                return R.SYNTAX_ERROR
            notify = items
        elif key == "ORCPT" and "DSN" in extensions:
            kind, semi, addr = (value or "").partition(";")
            if not semi or not kind or not addr or orcpt is not None or len(addr) > 500:
                return R.SYNTAX_ERROR
            decoded = xtext_printable(addr)
            if decoded is None or _CONTROL.search(kind):
                return BAD_ORCPT
            orcpt = f"{kind};{decoded}"
        else:
            return R.PARAM_NOT_IMPLEMENTED
    if not path:
        return R.BAD_RCPT_SYNTAX
    if _has_non_ascii(path) and not smtputf8:
        return R.NEED_SMTPUTF8
    if path.lower() == "postmaster":
        return Rcpt("postmaster", notify, orcpt)  # RFC 5321 4.5.1: must be accepted without a domain
    try:
        check_mailbox(path)
    except PathError:
        return R.BAD_RCPT_SYNTAX
    return Rcpt(path, notify, orcpt)
