"""Address lists for ENVELOPE, after Dovecot's lib-mail/message-address.c (RFC 5322 §3.4 with the
obsolete forms), so that our ENVELOPE matches what Dovecot answers:

- a display name is the phrase with quotes removed and words joined by one space; encoded-words
  stay encoded (IMAP sends them raw);
- an addr-spec followed by a comment takes the comment as its name (``a@b (Fred)``);
- a missing local part or domain becomes ``MISSING_MAILBOX`` / ``MISSING_DOMAIN`` and a broken
  ``<...>`` gets the domain ``SYNTAX_ERROR``;
- groups become a start marker (mailbox = group name, host None), members, and an end marker.
"""

from __future__ import annotations

import re

from mailcove.message.model import Address, new_address

__all__ = ["parse_address_list"]

MAX_ADDRESSES = 10_000
_ATEXT = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\x80-\U0010ffff]+")
_ATEXT_OR_DOT = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.\x80-\U0010ffff]+")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)("?)', re.S)
_QP_UNESCAPE = re.compile(r"\\(.)", re.S)
_WSP = re.compile(r"[ \t\r\n]+")


class _Parser:
    __slots__ = ("comment", "data", "end", "pos")

    def __init__(self, data: str) -> None:
        self.data = data
        self.pos = 0
        self.end = len(data)
        self.comment = ""

    def at(self) -> str:
        return self.data[self.pos] if self.pos < self.end else ""

    def skip_lwsp(self) -> bool:
        """Skip whitespace and comments; remember the last comment. False at the end of input."""
        data = self.data
        while self.pos < self.end:
            m = _WSP.match(data, self.pos)
            if m is not None:
                self.pos = m.end()
                continue
            if data[self.pos] != "(":
                break
            depth = 0
            start = self.pos + 1
            i = self.pos
            while i < self.end:
                ch = data[i]
                if ch == "\\":
                    i += 2
                    continue
                if ch == "(":
                    depth += 1
                elif ch == ")":
                    depth -= 1
                    if depth == 0:
                        break
                i += 1
            self.comment = _QP_UNESCAPE.sub(r"\1", data[start : min(i, self.end)])
            self.pos = min(i + 1, self.end)
        return self.pos < self.end

    def quoted(self) -> str | None:
        m = _QUOTED.match(self.data, self.pos)
        if m is None:
            return None
        self.pos = m.end()
        self.skip_lwsp()
        return _QP_UNESCAPE.sub(r"\1", m.group(1))

    def atom(self) -> str | None:
        m = _ATEXT.match(self.data, self.pos)
        if m is None:
            return None
        self.pos = m.end()
        self.skip_lwsp()
        return m.group(0)

    def phrase(self) -> str | None:
        """phrase = 1*word / obs-phrase, as rfc822_parse_phrase(): words (atoms may contain dots,
        but not start the phrase) joined by one space. None when there is no word at all."""
        if self.at() == ".":
            return None
        words: list[str] = []
        while self.pos < self.end:
            if self.data[self.pos] == '"':
                w = self.quoted()
            else:
                m = _ATEXT_OR_DOT.match(self.data, self.pos)
                w = None
                if m is not None:
                    self.pos = m.end()
                    self.skip_lwsp()
                    w = m.group(0)
            if w is None:
                break
            words.append(w)
        return " ".join(words) if words else None

    def dot_atom(self) -> str | None:
        parts: list[str] = []
        while True:
            a = self.atom()
            if a is None:
                break
            parts.append(a)
            if self.at() != ".":
                break
            self.pos += 1
            self.skip_lwsp()
            parts.append(".")
        return "".join(parts) if parts else None

    def domain(self) -> str | None:
        # Called on '@'.
        self.pos += 1
        self.skip_lwsp()
        if self.at() == "[":
            close = self.data.find("]", self.pos)
            if close < 0:
                return None
            lit = _WSP.sub("", self.data[self.pos : close + 1])
            self.pos = close + 1
            self.skip_lwsp()
            return lit
        return self.dot_atom()


def _local_part(p: _Parser) -> str | None:
    if p.at() == '"':
        q = p.quoted()
        # obs-local-part: "a".b
        rest: list[str] = [q or ""]
        while p.at() == ".":
            p.pos += 1
            p.skip_lwsp()
            w = p.quoted() if p.at() == '"' else p.atom()
            rest.append("." + (w or ""))
        return "".join(rest)
    return p.dot_atom()


class _Builder:
    __slots__ = ("out", "p")

    def __init__(self, p: _Parser) -> None:
        self.p = p
        self.out: list[Address] = []

    def add(self, name: str | None, adl: str | None, mailbox: str | None, host: str | None) -> None:
        self.out.append(Address(name, adl, mailbox or "MISSING_MAILBOX", host or "MISSING_DOMAIN"))

    def angle_addr(self) -> tuple[str | None, str | None, str | None, bool]:
        p = self.p
        p.pos += 1  # '<'
        p.skip_lwsp()
        adl: str | None = None
        if p.at() == "@":
            route: list[str] = []
            while p.at() == "@":
                d = p.domain()
                if d is None:
                    return "INVALID_ROUTE", None, None, False
                route.append("@" + d)
                while p.at() == ",":
                    p.pos += 1
                    p.skip_lwsp()
            if p.at() != ":":
                return "INVALID_ROUTE", None, None, False
            adl = ",".join(route)
            p.pos += 1
            p.skip_lwsp()
        mailbox = _local_part(p) if p.at() not in ("", ">") else None
        host = None
        if p.at() == "@":
            host = p.domain()
        if p.pos >= p.end:
            # Dovecot treats running out of input inside <...> as the end, not as an error.
            return adl, mailbox, host, True
        if p.at() != ">" or mailbox is None:
            return adl, mailbox, host, False
        p.pos += 1
        p.skip_lwsp()
        return adl, mailbox, host, True

    def mailbox(self) -> bool:
        """Parse name-addr / addr-spec; False when nothing was consumed."""
        p = self.p
        start = p.pos
        name = p.phrase()
        if p.at() == "<":
            adl, mailbox, host, ok = self.angle_addr()
            if not ok:
                host = "SYNTAX_ERROR"
            self.add(name or None, adl, mailbox, host)
            return True
        p.pos = start
        p.comment = ""
        mailbox = _local_part(p)
        host = p.domain() if p.at() == "@" else None
        if mailbox is None and host is None and p.pos == start:
            return False
        self.add(p.comment or None, None, mailbox, host)
        return True

    def group(self) -> bool:
        p = self.p
        start = p.pos
        name = p.phrase()
        if name is None or p.at() != ":":
            p.pos = start
            return False
        p.pos += 1
        p.skip_lwsp()
        self.out.append(Address(None, None, name, None))
        while p.pos < p.end and p.at() != ";":
            if not self.mailbox():
                break
            if p.at() != ",":
                break
            p.pos += 1
            p.skip_lwsp()
        if p.at() == ";":
            p.pos += 1
            p.skip_lwsp()
        self.out.append(Address(None, None, None, None))
        return True


_AT = r"A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\x80-\U0010ffff"
_DOT_ATOM = rf"[{_AT}]+(?:\.[{_AT}]+)*"
# Possessive: with optional spaces between words, a run of atext could be split into words in
# exponentially many ways, and a long run not followed by '<' made the match backtrack through
# all of them (a From: header of 30 letters after a quoted word stalled the writer). Giving back
# never helps here: what follows a word is a space, a quote or '<', none of which is atext.
_WORD = rf'(?:"(?:[^"\\\r\n]|\\.)*+"|[{_AT}.]++)'
# The everyday forms (a@b, Name <a@b>, "Name" <a@b>), without comments, groups, routes or
# obsolete spacing; anything else goes through the full parser, which gives the same result here.
_SIMPLE = re.compile(
    rf"[ \t]*(?:({_DOT_ATOM})@({_DOT_ATOM})|((?![.]){_WORD}(?:[ \t]*+{_WORD})*+)?[ \t]*<({_DOT_ATOM})@({_DOT_ATOM})>)"
    r"[ \t]*(?:,|$)"
)
# Words are separated by the spaces and tabs _SIMPLE allows, not by \s: a non-ASCII space such as
# U+00A0 is atext to the full parser (and to Dovecot, which sees its 8-bit bytes).
_PHRASE_WORD = re.compile(r'"((?:[^"\\]|\\.)*)"|([^ \t"]+)')
_BLANKS = re.compile(r"[ \t]+")
# One element of an unquoted list: a@b or Name <a@b> (the phrase as in _SIMPLE minus quoted words).
_UNQUOTED = re.compile(
    rf"[ \t]*(?:({_DOT_ATOM})@({_DOT_ATOM})|((?![.])[{_AT}.]+(?:[ \t]+[{_AT}.]+)*)?[ \t]*<({_DOT_ATOM})@({_DOT_ATOM})>)"
    r"[ \t]*"
)


def _unquoted_list(value: str) -> tuple[Address, ...] | None:
    """`_simple_list` for a value without quotes, which is nearly every one: without quoted strings
    every comma separates elements, so the value can be split first and each element matched whole."""
    out: list[Address] = []
    items = value.split(",", MAX_ADDRESSES)
    if len(items) > MAX_ADDRESSES:
        del items[MAX_ADDRESSES:]  # as the full parser, stop at MAX_ADDRESSES whatever follows
    last = len(items) - 1 if len(items) < MAX_ADDRESSES else -1
    match = _UNQUOTED.fullmatch
    for i, item in enumerate(items):
        m = match(item)
        if m is None:
            if i == last and i and not item.strip(" \t"):
                break  # a trailing comma
            return None
        spec, host, phrase, box, host2 = m.groups()
        if spec is not None:
            out.append(new_address(None, None, spec, host))
        else:
            # words of atext and dots separated by spaces/tabs, without any at either end: joining the
            # words with one space is collapsing each run
            if phrase and ("\t" in phrase or "  " in phrase):
                phrase = _BLANKS.sub(" ", phrase)
            out.append(new_address(phrase or None, None, box, host2))
    return tuple(out)


def _simple_list(value: str) -> tuple[Address, ...] | None:
    """The everyday forms, or None to leave the value to the full parser."""
    if '"' not in value:
        return _unquoted_list(value)
    out: list[Address] = []
    pos = 0
    end = len(value)
    match = _SIMPLE.match
    while pos < end:
        m = match(value, pos)
        if m is None or m.end() == pos:
            return None
        spec, host, phrase, box, host2 = m.groups()
        if spec is not None:
            out.append(new_address(None, None, spec, host))
        else:
            name = None
            if phrase:
                words = [_QP_UNESCAPE.sub(r"\1", q) if w == "" else w for q, w in _PHRASE_WORD.findall(phrase)]
                name = " ".join(words) or None
            out.append(new_address(name, None, box, host2))
        if len(out) >= MAX_ADDRESSES:
            break
        pos = m.end()
        if value.startswith(",", pos - 1) and not value[pos:].strip(" \t"):
            break
    return tuple(out)


def parse_address_list(value: str | None) -> tuple[Address, ...]:
    """Parse an unfolded address header value (raw text) into ENVELOPE addresses."""
    if not value:
        return ()
    fast = _simple_list(value)
    if fast is not None:
        return fast
    return _full_list(value)


def _full_list(value: str) -> tuple[Address, ...]:
    p = _Parser(value)
    if not p.skip_lwsp():
        return ()
    b = _Builder(p)
    while p.pos < p.end and len(b.out) < MAX_ADDRESSES:
        before = p.pos
        if not b.group() and not b.mailbox():
            # Unparsable garbage: Dovecot stops and reports what it has (plus a placeholder).
            b.add(None, None, None, None)
            break
        if p.at() != ",":
            if p.pos < p.end:
                break
            continue
        p.pos += 1
        # Empty elements (",,") are allowed by the obsolete syntax.
        while p.skip_lwsp() and p.at() == ",":
            p.pos += 1
        if p.pos == before:
            break
    return tuple(b.out)
