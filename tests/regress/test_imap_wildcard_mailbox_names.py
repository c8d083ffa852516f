"""Mailbox names with the LIST wildcards (issue 13, finding 13): `*` and `%` could be created, so
a mailbox existed that no LIST pattern could name on its own. CREATE and RENAME of any name
containing them answer NO (the store refuses them, store/names.py) and nothing is created."""

# ruff: noqa: F811 - the fixtures are imported from imap_lab and then requested by name
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "imap"))
from imap_lab import imap, imap_module  # noqa: F401

WILD = [b'"*"', b'"%"', b'"a*b"', b'"x%"', b'"Archive/*"', b'"%/x"', b'"**"', b"{1+}\r\n*", b"{1+}\r\n%"]


def test_wildcard_names_cannot_be_created(imap) -> None:
    c = imap.client()
    before = {r.data["name"] for r in c.ok('LIST "" "*"') if r.kind == "LIST"}
    for name in WILD:
        for verb in (b"CREATE ", b"RENAME Archive ", b"RENAME INBOX "):
            tag = c.tag()
            c.send(tag.encode() + b" " + verb + name + b"\r\n")
            _, done = c.until(tag)
            assert done.status == "NO", (verb, name, done)
    c.ok("NOOP")
    after = {r.data["name"] for r in c.ok('LIST "" "*"') if r.kind == "LIST"}
    assert after == before
    assert not any(b"*" in n or b"%" in n for n in after)
    c.ok('CREATE "plain/name"')  # ordinary names still work
