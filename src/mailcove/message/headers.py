"""Header blocks: finding their end, splitting fields, unfolding, MIME parameters (RFC 2045/2231)
and RFC 2047 decoding."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

__all__ = ["RewrittenHeader", "decode_header_value", "first_fields", "parse_header_block", "parse_params", "unfold"]

# One header field with its folded continuation lines. The name set follows the stdlib parser
# (printable ASCII except colon), plus the obsolete whitespace before the colon (RFC 5322 §4.5).
# `$` honours the endpos given to match(), so a field may end without a newline at the part end.
_FIELD = re.compile(rb"([!-9;-~]+)[ \t]*:([^\n]*(?:\n[ \t][^\n]*)*)(?:\n|$)")
_CONT = re.compile(rb"[ \t][^\n]*(?:\n|$)")  # stray continuation lines before the first field
_BLANK = re.compile(rb"\r?\n")
_EOL = re.compile(rb"\r?\n")

Buffer = Any  # bytes or mmap.mmap: both support find(), slicing and re matching


@dataclass(frozen=True, slots=True)
class RewrittenHeader:
    """A filter's version of a message's own header block (forged Authentication-Results
    removed; later Sieve editheader, a spam filter's Subject): `data` stands for the first
    `replaces` bytes of the message as received. Those bytes are never rewritten: the store
    serves `data` in their place (store.api.MessagePrefix.skip)."""

    data: bytes
    replaces: int


_FIELD_RUN = re.compile(rb"(?:[!-9;-~]+[ \t]*:[^\n]*+(?:\n[ \t][^\n]*+)*+(?:\n|$))*+")


def is_field_run(data: bytes) -> bool:
    """Is `data` nothing but whole header fields, each ending with a line end (no continuation
    line first, no blank line)?"""
    if not data.endswith(b"\n") or _CONT.match(data) is not None:
        return False
    run = _FIELD_RUN.match(data)
    return run is not None and run.end() == len(data)


def parse_header_block(buf: Buffer, start: int, end: int) -> tuple[list[tuple[bytes, bytes]], int]:
    """Parse the header fields in ``buf[start:end]``.

    Returns the fields as (name as written, raw value with folds) and the offset where the body
    starts: after the blank line, or at the first line that is neither a field nor a continuation
    (a message missing its blank line), or at `end`.
    """
    pos = start
    m = _CONT.match(buf, pos, end)
    while m is not None and m.end() > pos:
        pos = m.end()
        m = _CONT.match(buf, pos, end)
    # Two C-level passes (find the run of fields, then split it) instead of a Python loop per line.
    run = _FIELD_RUN.match(buf, pos, end)
    run_end = run.end() if run is not None else pos
    fields: list[tuple[bytes, bytes]] = _FIELD.findall(buf, pos, run_end) if run_end > pos else []
    b = _BLANK.match(buf, run_end, end)
    return fields, (b.end() if b is not None else run_end)


# The same field syntax over the decoded block (see `first_fields`).
_FIELD_STR = re.compile(r"([!-9;-~]+)[ \t]*:([^\n]*(?:\n[ \t][^\n]*)*)(?:\n|$)")
_EOL_STR = re.compile(r"\r?\n")


def first_fields(buf: Buffer, start: int, end: int, wanted: frozenset[str]) -> tuple[dict[str, str], int]:
    """The first occurrence of each wanted field (lower-cased name -> raw unfolded value), and the
    offset where the body starts: what `parse_header_block` + `unfold` + a
    surrogateescape UTF-8 decode give, faster.

    Decodes the field run once instead of each value: UTF-8 with surrogateescape decodes a
    concatenation exactly as it decodes the pieces when the cuts fall before ASCII bytes (a colon
    or a line break), and unfolding only removes ASCII. Dovecot uses the first occurrence of each
    field for ENVELOPE and BODYSTRUCTURE, and so do we.
    """
    pos = start
    m = _CONT.match(buf, pos, end)
    while m is not None and m.end() > pos:
        pos = m.end()
        m = _CONT.match(buf, pos, end)
    run = _FIELD_RUN.match(buf, pos, end)
    run_end = run.end() if run is not None else pos
    b = _BLANK.match(buf, run_end, end)
    body_start = b.end() if b is not None else run_end
    out: dict[str, str] = {}
    if run_end == pos:
        return out, body_start
    for name, value in _FIELD_STR.findall(buf[pos:run_end].decode("utf-8", "surrogateescape")):
        key = name.lower()
        if key in wanted and key not in out:
            out[key] = (_EOL_STR.sub("", value) if "\n" in value else value).strip(" \t\r")
    return out, body_start


def unfold(value: bytes) -> bytes:
    """Remove the line breaks of a folded value, keeping the whitespace that followed them."""
    if b"\n" in value:
        value = _EOL.sub(b"", value)
    return value.strip(b" \t\r")


# --- RFC 2047 -----------------------------------------------------------------------------------

_ENCODED_WORD = re.compile(r"=\?([^?\s*]+)(?:\*[^?\s]*)?\?([bBqQ])\?([^?\s]*)\?=")
_WSP_ONLY = re.compile(r"[ \t\r\n]*")


def _decode_text(data: bytes, charset: str | None = None) -> str:
    if charset:
        try:
            return data.decode(charset, "replace")
        except (LookupError, ValueError):
            # unknown, or a codec that fails anyway ("idna", "undefined", "punycode", a NUL or a
            # surrogate in the name): read it as undeclared 8-bit text
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # 8-bit headers without a charset are most often Windows-1252/Latin-1 in practice.
        return data.decode("cp1252", "replace")


def _decode_word(charset: str, enc: str, text: str) -> str | None:
    try:
        if enc in "bB":
            raw = base64.b64decode(text + "=" * (-len(text) % 4))
        else:
            raw = binascii.a2b_qp(text.encode("ascii", "surrogateescape"), header=True)
    except (binascii.Error, ValueError):
        return None
    return _decode_text(raw, charset)


def decode_header_value(raw: str | bytes) -> str:
    """Decode a raw header value for display, SEARCH and SORT: unfold, decode RFC 2047
    encoded-words (dropping whitespace between adjacent ones), and read undeclared 8-bit text as
    UTF-8 with a Windows-1252 fallback."""
    if isinstance(raw, str):
        if raw.isascii() and "=?" not in raw and "\n" not in raw:
            return raw.strip(" \t\r")  # what the steps below give for plain ASCII: the common case
        raw = raw.encode("utf-8", "surrogateescape")
    raw = unfold(raw)
    text = _decode_text(raw) if raw.isascii() is False else raw.decode("ascii")
    if "=?" not in text:
        return text
    out: list[str] = []
    pos = 0
    prev_word_end = -1
    for m in _ENCODED_WORD.finditer(text):
        between = text[pos : m.start()]
        decoded = _decode_word(m.group(1), m.group(2), m.group(3))
        if decoded is None:
            continue
        if not (prev_word_end == pos and _WSP_ONLY.fullmatch(between)):
            out.append(between)
        out.append(decoded)
        pos = prev_word_end = m.end()
    out.append(text[pos:])
    return "".join(out)


# --- Content-Type / Content-Disposition parameters -------------------------------------------------

_RFC2231_NAME = re.compile(r"^(.*?)\*(?:(\d+)(\*?)|)$")


def _split_params(value: str) -> list[str]:
    """Split on ';' outside quoted strings (as the stdlib's compat32 parser does)."""
    if '"' not in value:
        return value.split(";")  # no quoted string, so every ';' splits: `_split_quoted`, in C
    return _split_quoted(value)


def _split_quoted(value: str) -> list[str]:
    out: list[str] = []
    start = 0
    in_quote = False
    escaped = False
    for i, ch in enumerate(value):
        if escaped:
            escaped = False
        elif ch == "\\" and in_quote:
            escaped = True
        elif ch == '"':
            in_quote = not in_quote
        elif ch == ";" and not in_quote:
            out.append(value[start:i])
            start = i + 1
    out.append(value[start:])
    return out


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def decode_2231(value: str) -> str:
    """Decode a merged RFC 2231 extended value (``charset'lang'pct-encoded``) to text."""
    charset = ""
    if value.count("'") >= 2:
        charset, _lang, value = value.split("'", 2)
    # raw 8-bit bytes in the value are lone surrogates here (surrogateescape); give them back as
    # bytes, since unquote_to_bytes would encode a str as strict UTF-8 and raise
    data = unquote_to_bytes(value.encode("utf-8", "surrogateescape"))
    if charset:
        try:
            return data.decode(charset, "replace")
        except (LookupError, ValueError):  # as in _decode_text
            pass
    return data.decode("utf-8", "surrogateescape")


def parse_params(value: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """Split ``type/subtype; a=b; c*0*=...`` into the main value (stripped, lower-cased) and its
    parameters in the form IMAP serves them: names lower-cased, values unquoted, and RFC 2231
    sections merged the way Dovecot merges them (BODYSTRUCTURE output is compared with Dovecot,
    and rev1 forbids 8-bit strings, so values stay encoded): plain parameters first, in order;
    then each RFC 2231 parameter, by name, as ``name*`` = ``charset'lang'encoded`` when any
    section was extended (a non-extended section's `%` becomes `%25`, and `''` is put in front
    when the first section was not extended) or as ``name`` = the joined value otherwise; a
    parameter with missing section numbers is kept as its raw ``name*N[*]`` sections.
    `Part.param()` decodes."""
    pieces = _split_params(value)
    main = pieces[0].strip().lower()
    plain: list[tuple[str, str]] = []
    seen: set[str] = set()
    sections: list[tuple[str, int, bool, str]] = []
    for piece in pieces[1:]:
        if "=" not in piece:
            continue
        key, val = piece.split("=", 1)
        key = key.strip().lower()
        val = val.strip()
        if not key:
            continue
        val = _unquote(val) if val[:1] == '"' else val
        m = _RFC2231_NAME.match(key) if "*" in key else None
        if m is not None:
            if m.group(2) is None:  # name*=charset'lang'value: one extended section
                sections.append((m.group(1), 0, True, val))
            else:
                sections.append((m.group(1), int(m.group(2)), bool(m.group(3)), val))
            continue
        if key not in seen:
            seen.add(key)
            plain.append((key, val))
    if not sections:
        return main, tuple(plain)
    sections.sort(key=lambda s: (s[0], s[1]))
    merged: list[tuple[str, str]] = []
    i = 0
    while i < len(sections):
        name = sections[i][0]
        j = i
        while j < len(sections) and sections[j][0] == name:
            j += 1
        group = sections[i:j]
        i = j
        if [s[1] for s in group] != list(range(len(group))):
            merged.extend((f"{n}*{idx}*" if ext else f"{n}*{idx}", v) for n, idx, ext, v in group)
            continue
        extended = any(s[2] for s in group)
        if not extended:
            merged.append((name, "".join(s[3] for s in group)))
            continue
        out = "" if group[0][2] else "''"
        out += "".join(v if ext else v.replace("%", "%25") for _n, _i, ext, v in group)
        merged.append((name + "*", out))
    return main, (*plain, *merged)
