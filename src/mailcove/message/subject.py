"""RFC 5256 §2.1 base subject, for SORT SUBJECT and THREAD=ORDEREDSUBJECT/REFERENCES."""

from __future__ import annotations

import re

__all__ = ["base_subject", "is_reply_or_forward"]

_WSP_RUN = re.compile(r"[ \t\r\n]+")
# subj-trailer = "(fwd)" / WSP
_TRAILER = re.compile(r"(?:[ \t]|\(fwd\))+$", re.I)
# subj-blob = "[" *BLOBCHAR "]" *WSP ; subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
_BLOB = r"\[[^\[\]]*\][ \t]*"
_LEADER = re.compile(rf"(?:[ \t]+|(?:re|fwd?)[ \t]*(?:{_BLOB})?:)", re.I)
_BLOB_RE = re.compile(_BLOB)
_FWD_WRAP = re.compile(r"\[fwd:(.*)\]$", re.I | re.S)


def _strip_leaders(s: str) -> str:
    """Step (3): remove subj-leader repeatedly; a subj-blob is removed only if something remains."""
    while True:
        m = _LEADER.match(s)
        if m is not None and m.end() > 0:
            s = s[m.end() :]
            continue
        m = _BLOB_RE.match(s)
        if m is not None and m.end() < len(s):
            rest = s[m.end() :]
            if rest.strip():
                s = rest
                continue
        return s


def base_subject(decoded_subject: str | None) -> str:
    """The base subject of an already RFC 2047-decoded subject (RFC 5256 §2.1)."""
    if not decoded_subject:
        return ""
    # (1) collapse whitespace runs to a single space
    s = decoded_subject
    if "  " in s or "\t" in s or "\r" in s or "\n" in s:  # else the substitution changes nothing
        s = _WSP_RUN.sub(" ", s)
    head = s[:3].lower()
    if not (head[:1] in (" ", "[") or head[:2] in ("re", "fw") or s.endswith((" ", ")"))):
        return s  # nothing to strip: the common case, without the regex loop
    while True:
        # (2) remove trailers
        while True:
            m = _TRAILER.search(s)
            if m is None or m.start() == m.end():
                break
            s = s[: m.start()]
        # (3)-(4)
        while True:
            t = _strip_leaders(s)
            if t == s:
                break
            s = t
        # (5)/(6) [fwd: ...]
        m = _FWD_WRAP.match(s)
        if m is None:
            break
        s = m.group(1)
    return s.strip(" ")


def is_reply_or_forward(decoded_subject: str | None) -> bool:
    """True when extracting the base subject removed a leader or trailer (THREAD needs it)."""
    if not decoded_subject:
        return False
    s = _WSP_RUN.sub(" ", decoded_subject).strip(" ")
    return base_subject(decoded_subject) != s
