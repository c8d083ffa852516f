"""Binary content that arrives through IMAP APPEND as a literal8 (RFC 3516 4.4, RFC 9051 6.3.12).

The store keeps messages as CRLF text (IMAP serves BODY[] from the stored bytes, and a literal
must never carry NUL: RFC 9051 4.3). A part whose body is real binary (a NUL, or a bare CR or LF
in a part declared ``binary``) cannot be stored as it is: normalising its line ends would change
its content, and BODY[] could not send it. Such a part is re-encoded as base64, its
Content-Transfer-Encoding field changed to match. Its decoded content, which is what BINARY[]
and BINARY.SIZE[] serve, stays exactly the same; RFC 3516 lets the server change the
content-transfer-encoding of appended binary data so. Everything else is left alone, for the
caller's usual line-end normalisation.
"""

from __future__ import annotations

import base64
import re

from mailcove.message.model import Part
from mailcove.message.newlines import is_crlf_clean
from mailcove.message.scanner import scan

__all__ = ["encode_binary_parts", "has_binary_content"]

_IDENTITY = frozenset({"7bit", "8bit", "binary"})
# The whole Content-Transfer-Encoding field, folded continuation lines included.
_CTE_FIELD = re.compile(rb"(?im)^content-transfer-encoding[ \t]*:[^\n]*\n(?:[ \t][^\n]*\n)*")
_NEW_FIELD = b"Content-Transfer-Encoding: base64\r\n"


def has_binary_content(data: bytes) -> bool:
    """Cheap test whether `encode_binary_parts` may have anything to do (a NUL, or a line end
    that is not CRLF somewhere in the message)."""
    return b"\x00" in data or not is_crlf_clean(data)


def _needs_base64(part: Part, body: bytes) -> bool:
    cte = part.cte
    if cte not in _IDENTITY:
        return False  # already encoded: its decoded bytes do not depend on these octets' line ends
    return b"\x00" in body or (cte == "binary" and not is_crlf_clean(body))


def _leaves(part: Part, out: list[Part]) -> None:
    # Iterative so that a deeply nested message cannot exhaust the stack; the scanner already
    # bounds depth and part count.
    stack = [part]
    while stack:
        p = stack.pop()
        if p.parts:
            stack.extend(p.parts)
        elif p.message is not None:
            stack.append(p.message)
        else:
            out.append(p)


def encode_binary_parts(data: bytes) -> bytes:
    """`data` with every leaf part that holds binary content re-encoded as base64 (see the module
    docstring); `data` itself when there is none."""
    if not has_binary_content(data):
        return data
    info = scan(data)
    leaves: list[Part] = []
    _leaves(info.root, leaves)
    edits: list[tuple[int, int, bytes]] = []  # (start, end, replacement), non-overlapping
    for part in leaves:
        if part.truncated:
            continue
        body = data[part.body_start : part.body_end]
        if not _needs_base64(part, body):
            continue
        header = data[part.header_start : part.body_start]
        m = _CTE_FIELD.search(header)
        if m is not None:
            edits.append((part.header_start + m.start(), part.header_start + m.end(), _NEW_FIELD))
        else:
            # before the empty line that ends the header
            blank = 2 if header.endswith(b"\r\n") else (1 if header.endswith(b"\n") else 0)
            edits.append((part.body_start - blank, part.body_start - blank, _NEW_FIELD))
        encoded = base64.encodebytes(body).replace(b"\n", b"\r\n")
        if part.body_end < len(data):
            encoded = encoded.removesuffix(b"\r\n")  # the CRLF before the boundary ends the last line
        edits.append((part.body_start, part.body_end, encoded))
    if not edits:
        return data
    out: list[bytes] = []
    pos = 0
    for start, end, repl in sorted(edits):
        out.append(data[pos:start])
        out.append(repl)
        pos = end
    out.append(data[pos:])
    return b"".join(out)
