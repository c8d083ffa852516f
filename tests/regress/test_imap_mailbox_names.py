"""Mailbox name attacks: "..", NUL and control characters, bad modified UTF-7, over-long and
over-deep names. Each is refused with a protocol error and the session carries on."""

# ruff: noqa: F811 - the fixtures are imported from imap_lab and then requested by name
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "imap"))
from imap_lab import Client, imap, imap_module  # noqa: F401


def _refused(c: Client, line: bytes) -> None:
    tag = c.tag()
    c.send(tag.encode() + b" " + line + b"\r\n")
    _, done = c.until(tag)
    assert done.status in ("NO", "BAD"), (line, done)
    c.ok("NOOP")  # consecutive BADs end the session (a limit); keep it going


def test_bad_names_are_refused(imap):
    c = imap.client()
    for name in (b'"a/../b"', b'".."', b'"a/.."', b'"../x"', b'"x\\"', b'"/abs"', b'"a//b"', b'"tab\tname"',
                 b'"&Jjo"', b'"&AGEAYgBj-"', b"{3+}\r\na\x00b", b'"' + b"x" * 2000 + b'"',
                 b'"' + b"/".join([b"d"] * 60) + b'"', b'"bell\x07"', b'"a/ /b"'):
        for verb in (b"CREATE", b"SELECT", b"RENAME INBOX"):
            _refused(c, verb + b" " + name)
    c.ok("NOOP")
    names = {r.data["name"] for r in c.ok('LIST "" "*"') if r.kind == "LIST"}
    assert names == {b"INBOX", b"Sent", b"Drafts", b"Trash", b"Junk", b"Archive"}


def test_valid_unusual_names_round_trip(imap):
    c = imap.client()
    for name in (b'"with space"', b'"Caf&AOk-"', b'"a.b"', b'"&AKM-100"', b'"x&-y"'):
        c.ok(b"CREATE " + name)
        untagged = c.ok(b"LIST \"\" " + name)
        assert [r.data["name"] for r in untagged if r.kind == "LIST"] == [name.strip(b'"')]
