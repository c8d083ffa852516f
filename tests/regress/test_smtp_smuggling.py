"""SMTP smuggling (CVE-2023-51764 and relatives): only CRLF.CRLF ends the data. A bare LF or CR
around a dot is message content, so a second "message" hidden inside the first is never seen as
commands, and the stored bytes are exactly what was sent."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "smtp"))
from smtp_lab import start_lab, strip_trace

FAKE_ENDS = [b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\r.\r\n", b"\r\n.\r", b"\r\n.\r\r\n", b"\n..\n"]




def test_smuggling_variants_never_end_data(serve_factory):
    lab = start_lab(serve_factory)
    for i, fake in enumerate(FAKE_ENDS):
        smuggled = (b"MAIL FROM:<evil@example.org>\r\nRCPT TO:<b@hamap.local>\r\nDATA\r\n"
                    b"Subject: smuggled\r\n\r\nbad\r\n")
        body = b"Subject: v%d\r\n\r\nfirst" % i + fake + smuggled
        c = lab.raw(source="127.0.0.3")
        assert c.cmd(b"EHLO x").startswith(b"250")
        c.send(b"MAIL FROM:<x@example.org>\r\nRCPT TO:<a@hamap.local>\r\nDATA\r\n")
        assert [r[:3] for r in c.replies(3)] == [b"250", b"250", b"354"]
        c.send(body + b"\r\n.\r\n")
        assert c.reply().startswith(b"250 2.0.0")
        assert c.cmd(b"QUIT").startswith(b"221")
        c.close()
        stored = lab.inbox("a@hamap.local")
        assert len(stored) == i + 1
        # What we store is what was sent (the dot-stuffing of "\n..\n" is not undone: it is not
        # at a line start in SMTP terms).
        assert strip_trace(stored[-1])[1] == body + b"\r\n"
    assert lab.inbox("b@hamap.local") == []


def test_bdat_chunk_boundaries_are_not_data_ends(serve_factory):
    """With BDAT, a CRLF.CRLF inside a chunk is data, and the chunk sizes are exact."""
    lab = start_lab(serve_factory)
    c = lab.raw()
    c.cmd(b"EHLO x")
    part1 = b"Subject: chunks\r\n\r\nline\r\n.\r\nMAIL FROM:<e@x.org>\r\n"
    part2 = b"RCPT TO:<b@hamap.local>\r\n"
    part3 = b".\r\n"
    c.send(b"MAIL FROM:<x@example.org>\r\nRCPT TO:<a@hamap.local>\r\n"
           + b"BDAT %d\r\n" % len(part1) + part1 + b"BDAT %d\r\n" % len(part2) + part2
           + b"BDAT %d LAST\r\n" % len(part3) + part3)
    replies = c.replies(5)
    assert [r[:3] for r in replies] == [b"250"] * 5, replies
    c.close()
    [stored] = lab.inbox("a@hamap.local")
    assert strip_trace(stored)[1] == part1 + part2 + part3
    assert lab.inbox("b@hamap.local") == []
