"""Issue 14: a message is stored exactly as the client sent it, and the server's header lines are
a value served in front of it. A large message's spool file becomes the stored file unchanged
(before, the session wrote Return-Path and Received into the spool, so the stored file began with
them); the local copy is served with Return-Path, the queued copy without it and with nothing
stripped. What IMAP and POP3 serve is what it was before."""

from __future__ import annotations

import os

from smtp_lab import PASSWORD, start_lab, strip_trace


def _blob_files(root: os.PathLike[str]) -> list[bytes]:
    blobs = os.path.join(root, "blobs")
    return [open(os.path.join(d, f), "rb").read() for d, _, files in os.walk(blobs) for f in files]


def test_a_large_message_is_stored_as_received(serve_factory) -> None:  # type: ignore[no-untyped-def]
    lab = start_lab(serve_factory, auth="allow_plaintext = true")
    line = b"0123456789" * 7 + b"\r\n"
    body = (b"From: a@hamap.local\r\nTo: b@hamap.local, far@remote.example\r\nSubject: large\r\n\r\n"
            + line * 4000)  # 288 KB: past [store] inline_max_bytes, so the spool goes to a file
    with lab.smtp("submission") as c:
        c.ehlo("client.example")
        c.login("a@hamap.local", PASSWORD)
        c.sendmail("a@hamap.local", ["b@hamap.local", "far@remote.example"], body)

    [stored] = lab.inbox("b@hamap.local")
    trace, rest = strip_trace(stored)
    assert rest == body
    assert trace.startswith(b"Return-Path: <a@hamap.local>\r\nReceived: from client.example ([127.0.0.1])")
    # the one file on disk holds exactly the bytes the client sent: nothing was written into it
    assert _blob_files(lab.srv.data_dir) == [body]
    # the queue relays its own prefix and the same bytes: no Return-Path, nothing stripped
    [(item, queued)] = lab.queue()
    assert queued == trace[len(b"Return-Path: <a@hamap.local>\r\n") :] + body
    assert item.size == len(queued)
