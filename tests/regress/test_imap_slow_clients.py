"""Issue 13 finding 5 (IMAP part): login_timeout is a deadline from connect. A client trickling
one byte at a time must not keep an unauthenticated connection open for ever."""

# ruff: noqa: F811 - the fixtures are imported from imap_lab and then requested by name
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "imap"))
from imap_lab import imap_factory  # noqa: F401

from mailcove.proto.imap.client import Untagged


def test_trickling_before_login_is_cut_at_the_login_deadline(imap_factory):
    box = imap_factory("[auth]\nallow_plaintext = true\n[imap]\nlogin_timeout = 2\n", name="slow")
    c = box.raw()
    start = time.monotonic()
    closed_at = None
    for ch in b"a LOGIN somebody password-never-ends":
        try:
            c.send(bytes([ch]))
        except OSError:
            closed_at = time.monotonic()
            break
        seen = c.poll(0.4)
        if any(isinstance(r, Untagged) and r.kind == "BYE" for r in seen):
            closed_at = time.monotonic()
            break
    assert closed_at is not None, "still open after trickling for the whole string"
    assert closed_at - start < 4.0
    box.client().ok("NOOP")  # others are served
