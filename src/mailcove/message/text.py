"""A message's text as SEARCH BODY/TEXT compare it, and the text the full-text index holds.

IMAP SEARCH (imap/search.py) matches a case-folded needle as a substring of
- `decoded_header(header_text(...))`: the message's header fields, RFC 2047-decoded (TEXT), and
- `body_text(...)`: each text part's body, its transfer encoding and charset decoded (BODY, TEXT),
both case-folded, over the first `SEARCH_BYTES` of the message.

`index_text` is what the full-text index stores for a message (store/rules/textindex.py): those
two texts exactly, then the HTML parts reduced to their text (entities decoded, no tags, no
script or style) and the attachments' file names. It holds every string SEARCH can match, so an
index lookup over it only narrows the candidates: SEARCH still runs its own check on them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from html.parser import HTMLParser

from mailcove.message.decode import UnknownTransferEncoding, decode_transfer
from mailcove.message.headers import decode_header_value
from mailcove.message.model import MessageInfo, Part, _param

SEARCH_BYTES = 16 * 1024 * 1024  # SEARCH BODY/TEXT (and the index) read a message's first 16 MiB

_FIELD = re.compile(r"^([!-9;-~]+)[ \t]*:(.*(?:\n[ \t].*)*)", re.MULTILINE)
_FOLD = re.compile(r"\n[ \t]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_HANGUL_RUN = re.compile("[\uac00-\ud7a3]{2,}")


def header_text(raw: bytes) -> str:
    """The header block as text, LF line ends (8-bit bytes kept as surrogates)."""
    return raw.replace(b"\r\n", b"\n").decode("utf-8", "surrogateescape")


def decoded_header(text: str) -> str:
    """Each header field `name: value`, the value unfolded and decoded, case-folded."""
    out: list[str] = []
    for name, value in _FIELD.findall(text):
        if "\n" in value:
            value = _FOLD.sub(" ", value)
        out.append(f"{name}: {decode_header_value(value.strip())}")
    return "\n".join(out).casefold()


def header_fields(text: str) -> dict[str, list[str]]:
    """The raw values of each field, by lower-cased name."""
    out: dict[str, list[str]] = {}
    for m in _FIELD.finditer(text):
        out.setdefault(m.group(1).lower(), []).append(m.group(2))
    return out


def text_parts(part: Part) -> Iterable[Part]:
    for p in part.walk():
        if p.type == "text" and not p.parts:
            yield p


def _decoded(data: bytes, p: Part) -> str:
    raw = data[p.body_start : p.body_end]
    try:
        decoded = decode_transfer(raw, p.cte)
    except UnknownTransferEncoding:
        decoded = raw
    charset = (p.charset or "us-ascii").lower()
    try:
        return decoded.decode(charset, "replace")
    except (LookupError, ValueError):  # unknown, or a codec that fails anyway (idna, a NUL in the name)
        return decoded.decode("utf-8", "replace")


def body_text(data: bytes, info: MessageInfo) -> str:
    """The decoded text parts, case-folded (HTML as its source)."""
    chunks: list[str] = []
    for p in text_parts(info.root):
        if p.body_start >= len(data):
            continue
        chunks.append(_decoded(data, p))
    if not chunks and info.root.type != "multipart":
        chunks.append(data[info.root.body_start :].decode("utf-8", "replace"))
    return "\n".join(chunks).casefold()


class _HtmlText(HTMLParser):
    """The text of an HTML document: character data outside script and style, entities decoded."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in ("br", "p", "div", "tr", "li", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6"):
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.out.append(data)


def html_text(html: str) -> str:
    parser = _HtmlText()
    try:
        parser.feed(html)
        parser.close()
    except (AssertionError, ValueError):  # html.parser gives up on some malformed declarations
        pass
    return "".join(parser.out)


def file_names(info: MessageInfo) -> list[str]:
    """The parts' file names (Content-Disposition filename, else Content-Type name), decoded."""
    out: list[str] = []
    for p in info.root.walk():
        name = _param(p.disposition_params, "filename") or p.param("name")
        if name:
            out.append(decode_header_value(name) if "=?" in name else name)
    return out


def index_text(data: bytes, info: MessageInfo) -> tuple[str, str]:
    """(text, hangul bigrams) to index for a message whose first SEARCH_BYTES are `data`.

    `text` holds, case-folded: the decoded header (what TEXT matches), the body text (what BODY
    matches), the HTML parts as text and the file names. `hangul bigrams` are the distinct pairs
    of adjacent Hangul syllables in it, space-separated: a two-syllable Korean word is shorter
    than a trigram. Lone surrogates (8-bit header bytes) and NULs become U+FFFD, which no
    database refuses; a needle holding one is never looked up in the index."""
    parts = [decoded_header(header_text(data[: info.root.body_start])), body_text(data, info)]
    for p in text_parts(info.root):
        if p.subtype == "html" and p.body_start < len(data):
            parts.append(html_text(_decoded(data, p)).casefold())
    parts.extend(n.casefold() for n in file_names(info))
    text = "\n".join(parts)
    if _SURROGATE.search(text):
        text = _SURROGATE.sub("\ufffd", text)
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    return text, " ".join(hangul_pairs(text))


def hangul_pairs(text: str) -> list[str]:
    """The distinct pairs of adjacent Hangul syllables in `text`, in order of appearance."""
    if text.isascii():
        return []
    return list(dict.fromkeys(run[i : i + 2] for run in _HANGUL_RUN.findall(text) for i in range(len(run) - 1)))


def is_hangul_pair(needle: str) -> bool:
    return len(needle) == 2 and all("\uac00" <= c <= "\ud7a3" for c in needle)
