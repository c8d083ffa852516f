"""From: forgery on submission (issue 13, finding 7). A logged-in user may name only themselves
as the author or sender of a message. The review got past the check with a header longer than
the 256 KiB scan, two From: fields, Sender:/Resent-From: naming someone else, a non-field line
or an 8-bit field name before From:, and a bare CR or NUL. Each is refused now; an honest
message (Reply-To: someone else, a large but not over-long header) still goes through."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "smtp"))
from smtp_lab import PASSWORD, RawClient, start_lab

A, B = b"a@hamap.local", b"b@hamap.local"
PAD = b"".join(b"X-Pad-%06d: %s\r\n" % (i, b"p" * 60) for i in range(4000))  # 76 bytes a line, about 300 KiB

FORGED: dict[str, bytes] = {
    "header over the scan limit": b"From: a@hamap.local\r\n" + PAD + b"Resent-From: Bob <b@hamap.local>\r\n",
    "From: after the scan limit": b"Subject: x\r\n" + PAD + b"From: Bob <b@hamap.local>\r\n",
    "two From: fields": b"From: a@hamap.local\r\nFrom: Bob <b@hamap.local>\r\n",
    "two From: fields, foreign first": b"From: Bob <b@hamap.local>\r\nFrom: a@hamap.local\r\n",
    "Sender: another user": b"From: a@hamap.local\r\nSender: b@hamap.local\r\n",
    "Resent-From: another user": b"From: a@hamap.local\r\nResent-From: b@hamap.local\r\n",
    "Resent-Sender: another user": b"From: a@hamap.local\r\nResent-Sender: b@hamap.local\r\n",
    "non-field line before From:": b"Subject: x\r\nnot a field\r\nFrom: b@hamap.local\r\n",
    "8-bit field name before From:": b"X-\xc3\xa9t\xc3\xa9: y\r\nFrom: b@hamap.local\r\n",
    "continuation line first": b" folded\r\nFrom: b@hamap.local\r\n",
    "bare CR in From:": b"From: a@hamap.local\rFrom: b@hamap.local\r\n",
    "NUL in From:": b"From: a@hamap.local\x00b@hamap.local\r\n",
    "bare LF hides a From:": b"Subject: x\nFrom: b@hamap.local\r\n",
    "space before the colon": b"From : b@hamap.local\r\n",
    "upper case name": b"FROM: b@hamap.local\r\n",
    "folded From:": b"From: Alice\r\n <b@hamap.local>\r\n",
    "second address in From:": b"From: a@hamap.local, b@hamap.local\r\n",
}

HONEST: dict[str, bytes] = {
    "plain": b"From: Alice <a@hamap.local>\r\nSubject: hi\r\n",
    "Reply-To: someone else": b"From: a@hamap.local\r\nReply-To: b@hamap.local\r\nSender: a@hamap.local\r\n",
    "a large header under the limit": b"From: a@hamap.local\r\n" + PAD[: 200 * 1024 // 76 * 76],
    "no From: at all": b"Subject: anonymous\r\n",
}


def _login(lab) -> RawClient:  # type: ignore[no-untyped-def]
    c = lab.raw("submission")
    assert c.cmd(b"EHLO x").startswith(b"250")
    token = base64.b64encode(b"\0a@hamap.local\0" + PASSWORD.encode())
    assert c.cmd(b"AUTH PLAIN " + token).startswith(b"235")
    return c


def _send(c: RawClient, header: bytes, *, bdat: bool = False) -> bytes:
    message = header + b"\r\nbody\r\n"
    c.send(b"MAIL FROM:<a@hamap.local>\r\nRCPT TO:<b@hamap.local>\r\n")
    assert [r[:3] for r in c.replies(2)] == [b"250", b"250"]
    if bdat:
        # The header split over several chunks (several reads): the check must see all of it.
        cut = [0, 7, len(message) // 2, len(message) - 3, len(message)]
        for i in range(len(cut) - 1):
            chunk = message[cut[i] : cut[i + 1]]
            last = b" LAST" if i == len(cut) - 2 else b""
            c.send(b"BDAT %d%s\r\n" % (len(chunk), last) + chunk)
        replies = c.replies(len(cut) - 1)
        assert all(r.startswith(b"250") for r in replies[:-1]), replies
        return replies[-1]
    c.send(b"DATA\r\n")
    assert c.reply().startswith(b"354")
    c.send(message + b".\r\n")
    return c.reply()


def test_forged_originators_are_refused(serve_factory):
    lab = start_lab(serve_factory, auth="allow_plaintext = true")
    c = _login(lab)
    for bdat in (False, True):
        for name, header in FORGED.items():
            reply = _send(c, header, bdat=bdat)
            assert reply.startswith((b"550", b"552")), (name, bdat, reply)
    assert c.cmd(b"QUIT").startswith(b"221")
    c.close()
    assert lab.inbox("b@hamap.local") == []


def test_honest_messages_still_pass(serve_factory):
    lab = start_lab(serve_factory, auth="allow_plaintext = true")
    c = _login(lab)
    for bdat in (False, True):
        for name, header in HONEST.items():
            assert _send(c, header, bdat=bdat).startswith(b"250"), (name, bdat)
    c.close()
    assert len(lab.inbox("b@hamap.local")) == 2 * len(HONEST)
