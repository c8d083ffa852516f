"""The metadata computed once per message at delivery: MIME tree with byte offsets, envelope,
and the header fields SEARCH and SORT need.

Header-derived strings are *raw*: unfolded header text decoded as UTF-8 with ``surrogateescape``,
so 8-bit bytes in any charset survive exactly. ``raw_bytes(s)`` gives the original bytes back,
which is what IMAP puts on the wire for ENVELOPE and BODYSTRUCTURE (Dovecot sends them undecoded).
"""

from __future__ import annotations

import json
import marshal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, make_dataclass
from typing import Any, TypeVar

from mailcove.message.headers import decode_2231

__all__ = ["Address", "Envelope", "MessageInfo", "Part", "raw_bytes"]

# Serialisation formats (`MessageInfo.to_bytes`); `from_bytes` reads every one of them, because
# stores keep what older versions wrote.
#   1: a JSON array (starts with b"[").
#   2: _MARSHAL_TAG + marshal (version 4) of nested tuples in field order. marshal is ~5x faster
#      than json both ways here (json.dumps with separators builds a new encoder per call, and
#      json gives lists where the model wants tuples). Format 4 has been read by every CPython
#      since 3.4; the data is written by us into our own store, never taken from the network.
FORMAT_VERSION = 2
_MARSHAL_VERSION = 4
_MARSHAL_TAG = b"M" + bytes([FORMAT_VERSION, _MARSHAL_VERSION])


def raw_bytes(s: str) -> bytes:
    """The original header bytes of a raw header-derived string."""
    return s.encode("utf-8", "surrogateescape")


@dataclass(frozen=True, slots=True)
class Address:
    """One ENVELOPE address (RFC 3501 §7.4.2 / RFC 9051 §7.5.2).

    Group syntax is flattened as IMAP wants it: a start marker with ``host is None`` and the group
    name in ``mailbox``, the group's members, then an end marker with every field None.
    """

    name: str | None
    adl: str | None
    mailbox: str | None
    host: str | None

    @property
    def is_group_start(self) -> bool:
        return self.host is None and self.mailbox is not None

    @property
    def is_group_end(self) -> bool:
        return self.host is None and self.mailbox is None

    @property
    def addr_spec(self) -> str:
        if self.host is None:
            return self.mailbox or ""
        return f"{self.mailbox or ''}@{self.host}"


@dataclass(frozen=True, slots=True)
class Envelope:
    """ENVELOPE fields: raw unfolded header values (None = NIL) and parsed address lists.

    An empty tuple is NIL on the wire. ``sender`` and ``reply_to`` already default to ``from_``.
    """

    date: str | None = None
    subject: str | None = None
    from_: tuple[Address, ...] = ()
    sender: tuple[Address, ...] = ()
    reply_to: tuple[Address, ...] = ()
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    bcc: tuple[Address, ...] = ()
    in_reply_to: str | None = None
    message_id: str | None = None


@dataclass(frozen=True, slots=True)
class Part:
    """One MIME entity. Offsets index the original message bytes.

    ``[header_start, body_start)`` is the entity's header including the blank line that ends it
    (BODY[n.MIME], or BODY[HEADER] for a message), ``[body_start, body_end)`` its body (BODY[n],
    BODY[TEXT]). For a multipart the body holds preamble, children and epilogue; for message/rfc822
    ``message`` is the encapsulated message, whose header starts at this part's ``body_start``.
    """

    header_start: int
    body_start: int
    body_end: int
    type: str = "text"
    subtype: str = "plain"
    params: tuple[tuple[str, str], ...] = ()
    id: str | None = None
    description: str | None = None
    encoding: str | None = None  # Content-Transfer-Encoding as written; see `cte`
    md5: str | None = None
    disposition: str | None = None  # lower-cased disposition type
    disposition_params: tuple[tuple[str, str], ...] = ()
    language: tuple[str, ...] = ()
    location: str | None = None
    lines: int = 0  # LF count of the body; meaningful for text/* and message/rfc822
    parts: tuple[Part, ...] = ()
    message: Part | None = None
    envelope: Envelope | None = None
    truncated: bool = False  # a limit (depth, part count) stopped the scan below this entity

    @property
    def header_end(self) -> int:
        return self.body_start

    @property
    def size(self) -> int:
        return self.body_end - self.body_start

    @property
    def content_type(self) -> str:
        return f"{self.type}/{self.subtype}"

    @property
    def is_multipart(self) -> bool:
        return self.type == "multipart" and bool(self.parts)

    @property
    def cte(self) -> str:
        """The transfer encoding, lower-cased, with the RFC 2045 default."""
        return (self.encoding or "7bit").strip().lower() or "7bit"

    def param(self, name: str) -> str | None:
        """A Content-Type parameter's value, RFC 2231 decoded (`params` keeps the wire form)."""
        return _param(self.params, name)

    @property
    def charset(self) -> str | None:
        return self.param("charset")

    def walk(self) -> Iterator[Part]:
        """This part and all below it, depth first, entering encapsulated messages."""
        yield self
        for child in self.parts:
            yield from child.walk()
        if self.message is not None:
            yield from self.message.walk()


@dataclass(frozen=True, slots=True)
class MessageInfo:
    """Everything IMAP and the store need about one message, computed once by `scan`.

    ``root`` is the whole message as an entity: its header is the message header (BODY[HEADER])
    and its body BODY[TEXT]. ``subject`` is decoded (RFC 2047); ``date`` is a UTC timestamp or
    None when the Date header is missing or unparsable.
    """

    size: int
    root: Part
    envelope: Envelope
    subject: str | None = None
    base_subject: str = ""
    date: float | None = None
    message_id: str | None = None
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    from_raw: str | None = None  # raw unfolded From/To/Cc/Bcc for SEARCH; see `header_text`
    to_raw: str | None = None
    cc_raw: str | None = None
    bcc_raw: str | None = None
    part_count: int = 1
    truncated: bool = False

    def header_text(self, name: str) -> str | None:
        """Decoded From/To/Cc/Bcc/Subject for SEARCH (decoded on demand: most are never searched)."""
        from mailcove.message.headers import decode_header_value

        raw = {"from": self.from_raw, "to": self.to_raw, "cc": self.cc_raw, "bcc": self.bcc_raw,
               "subject": self.envelope.subject}.get(name.lower())
        return None if raw is None else decode_header_value(raw)

    def section(self, spec: str) -> tuple[int, int]:
        """Byte range of an IMAP BODY[] section; see `mailcove.message.sections.find_section`."""
        from mailcove.message.sections import find_section

        return find_section(self, spec)

    def to_bytes(self) -> bytes:
        # marshal keeps str with lone surrogates (8-bit header bytes) exactly: it writes them
        # with "surrogatepass".
        return _MARSHAL_TAG + marshal.dumps(
            (self.size, _wire_part(self.root), _wire_env(self.envelope), self.subject, self.base_subject,
             self.date, self.message_id, self.in_reply_to, self.references, self.from_raw, self.to_raw,
             self.cc_raw, self.bcc_raw, self.part_count, self.truncated),
            _MARSHAL_VERSION,
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> MessageInfo:
        if data[:3] == _MARSHAL_TAG:
            try:
                v = marshal.loads(memoryview(data)[3:])
                (size, root, env, subject, base, date, mid, irt, refs, f, t, c, b, count, trunc) = v
                return new_info(size, _unwire_part(root), _unwire_env(env), subject, base, date, mid, irt, refs,
                                 f, t, c, b, count, trunc)
            except (ValueError, EOFError, TypeError) as exc:
                raise ValueError("corrupt MessageInfo serialisation") from exc
        return _from_json_v1(data)



def _from_json_v1(data: bytes) -> MessageInfo:
    v = json.loads(data)
    if not isinstance(v, list) or not v or v[0] != 1:
        raise ValueError("unsupported MessageInfo serialisation")
    (_, size, root, env, subject, base, date, mid, irt, refs, f, t, c, b, count, trunc) = v
    return MessageInfo(
        size=size, root=_dec_part(root), envelope=_dec_env(env), subject=subject, base_subject=base,
        date=date, message_id=mid, in_reply_to=tuple(irt), references=tuple(refs), from_raw=f,
        to_raw=t, cc_raw=c, bcc_raw=b, part_count=count, truncated=trunc,
    )


def _dec_addrs(v: list[list[str | None]]) -> tuple[Address, ...]:
    return tuple(Address(*a) for a in v)


def _dec_env(v: list[Any]) -> Envelope:
    return Envelope(v[0], v[1], _dec_addrs(v[2]), _dec_addrs(v[3]), _dec_addrs(v[4]), _dec_addrs(v[5]),
                    _dec_addrs(v[6]), _dec_addrs(v[7]), v[8], v[9])


def _dec_part(v: list[Any]) -> Part:
    return Part(
        header_start=v[0], body_start=v[1], body_end=v[2], type=v[3], subtype=v[4],
        params=tuple((k, x) for k, x in v[5]), id=v[6], description=v[7], encoding=v[8], md5=v[9],
        disposition=v[10], disposition_params=tuple((k, x) for k, x in v[11]), language=tuple(v[12]),
        location=v[13], lines=v[14], parts=tuple(_dec_part(c) for c in v[15]),
        message=None if v[16] is None else _dec_part(v[16]), envelope=None if v[17] is None else _dec_env(v[17]),
        truncated=v[18],
    )


# --- fast construction -----------------------------------------------------------------------------
# A frozen dataclass's __init__ sets every field through object.__setattr__, which costs ~10x a
# plain attribute store: building one Part took longer than scanning its header. `scan` and
# `from_bytes` build through a mutable twin with the same slots and then switch the object's class
# (CPython allows that between classes of identical layout). The result is an ordinary frozen
# instance; should an interpreter refuse the switch, the import-time probe falls back to the class.

_T = TypeVar("_T")


def fast_constructor(cls: type[_T]) -> Callable[..., _T]:
    """A positional constructor taking every field in order, equivalent to ``cls(*args)``."""
    names = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]
    twin = make_dataclass(f"_{cls.__name__}Builder", names, slots=True, eq=False, repr=False, match_args=False)

    def make(*args: Any) -> _T:
        obj = twin(*args)
        obj.__class__ = cls
        return obj  # type: ignore[return-value]

    try:
        probe = tuple(range(len(names)))
        ok = names == cls.__slots__ and make(*probe) == cls(*probe)  # type: ignore[attr-defined]
    except TypeError:
        ok = False
    return make if ok else cls


new_address = fast_constructor(Address)
new_envelope = fast_constructor(Envelope)
new_part = fast_constructor(Part)
new_info = fast_constructor(MessageInfo)


def _wire_env(e: Envelope) -> tuple[Any, ...]:
    return (e.date, e.subject, _wire_addrs(e.from_), _wire_addrs(e.sender), _wire_addrs(e.reply_to),
            _wire_addrs(e.to), _wire_addrs(e.cc), _wire_addrs(e.bcc), e.in_reply_to, e.message_id)


def _wire_addrs(addrs: tuple[Address, ...]) -> tuple[tuple[str | None, ...], ...]:
    return tuple([(a.name, a.adl, a.mailbox, a.host) for a in addrs]) if addrs else ()


def _wire_part(p: Part) -> tuple[Any, ...]:
    env = p.envelope
    msg = p.message
    return (p.header_start, p.body_start, p.body_end, p.type, p.subtype, p.params, p.id, p.description,
            p.encoding, p.md5, p.disposition, p.disposition_params, p.language, p.location, p.lines,
            tuple([_wire_part(c) for c in p.parts]) if p.parts else (),
            None if msg is None else _wire_part(msg), None if env is None else _wire_env(env), p.truncated)


def _unwire_addrs(v: tuple[tuple[str | None, ...], ...]) -> tuple[Address, ...]:
    return tuple([new_address(*a) for a in v]) if v else ()


def _unwire_env(v: tuple[Any, ...]) -> Envelope:
    from_ = _unwire_addrs(v[2])
    # sender and reply_to usually equal from_ (the default): share the tuple instead of rebuilding it
    return new_envelope(v[0], v[1], from_, from_ if v[3] == v[2] else _unwire_addrs(v[3]),
                        from_ if v[4] == v[2] else _unwire_addrs(v[4]), _unwire_addrs(v[5]), _unwire_addrs(v[6]),
                        _unwire_addrs(v[7]), v[8], v[9])


def _unwire_part(v: tuple[Any, ...]) -> Part:
    (hs, bs, be, typ, sub, params, pid, desc, enc, md5, disp, dparams, lang, loc, lines, parts, msg, env,
     trunc) = v
    return new_part(hs, bs, be, typ, sub, params, pid, desc, enc, md5, disp, dparams, lang, loc, lines,
                    tuple([_unwire_part(c) for c in parts]) if parts else (),
                    None if msg is None else _unwire_part(msg), None if env is None else _unwire_env(env), trunc)


def _param(params: tuple[tuple[str, str], ...], name: str) -> str | None:
    name = name.lower()
    extended = name + "*"
    for key, value in params:
        if key == name:
            return value
    for key, value in params:
        if key == extended:
            return decode_2231(value)
    return None
