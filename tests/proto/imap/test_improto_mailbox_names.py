"""Mailbox names and LIST patterns that are valid astrings but name no mailbox we can hold (bad
modified UTF-7, control characters, ".."): NO [CANNOT] for a mailbox argument, and a pattern
that matches nothing for LIST/LSUB. Never BAD: RFC 9051 7.1 keeps BAD for syntax errors."""

from __future__ import annotations

import pytest

from mailcove.proto.imap import NEED_DATA, BadCommand, ImapReceiver, List, Lsub, Select
from mailcove.proto.imap.commands import Create, Rename

ATOMS = b"!#$&'+,-.0123456789:;<=>?@^_`|[}"  # every ATOM-CHAR class imaptest's atoms group uses


def one(wire: bytes, utf8: bool = False) -> object:
    r = ImapReceiver(utf8=utf8)
    r.receive_data(wire + b"\r\n")
    evs = []
    while (e := r.next_event()) is not NEED_DATA:
        evs.append(e)
    assert len(evs) == 1, evs
    return evs[0]


@pytest.mark.parametrize("wire", [
    b"a SELECT " + ATOMS,
    b'a SELECT "&Jjo!"',
    b"a SELECT &",
    b'a CREATE "a\x01b"',
    b"a CREATE a/../b",
    b"a RENAME x &AOQ",
    b"a STATUS &-&Jjo (MESSAGES)",
])
def test_unusable_name_is_no_cannot(wire: bytes) -> None:
    got = one(wire)
    assert isinstance(got, BadCommand), got
    assert (got.status, got.code) == ("NO", "CANNOT"), got


def test_invalid_utf8_name_in_literal_is_no() -> None:
    got = one(b"a SELECT {2+}\r\n\xff\xfe", utf8=True)
    assert isinstance(got, BadCommand) and (got.status, got.code) == ("NO", "CANNOT")


def test_atom_char_names_still_parse() -> None:
    assert one(b"a SELECT ~foo") == Select(tag="a", mailbox="~foo")
    assert one(b"a CREATE !#$&-+,.:;<=>?@^_`|[}") == Create(tag="a", mailbox="!#$&+,.:;<=>?@^_`|[}")
    assert one(b"a RENAME a]b c") == Rename(tag="a", old="a]b", new="c")


def test_unusable_pattern_matches_nothing() -> None:
    got = one(b'a LIST "" ' + ATOMS + b"%*")
    assert isinstance(got, List) and got.patterns == ()
    got = one(b'a LIST "" ("&Jjo!" "ok*" "x..y")')
    assert isinstance(got, List) and got.patterns == ("ok*",)
    got = one(b'a LIST "&Jjo!" "*"')
    assert isinstance(got, List) and got.patterns == ()
    got = one(b'a LSUB "" ' + ATOMS)
    assert got == Lsub(tag="a", reference="", pattern=None)
    got = one(b'a LSUB "&Jjo!" "*"')
    assert got == Lsub(tag="a", reference="", pattern=None)
    assert one(b'a LIST "" "~foo"') == List(tag="a", reference="", patterns=("~foo",))
