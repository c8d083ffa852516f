# ruff: noqa: F811 - the fixtures are imported from imap_lab and then requested by name
"""Random command lines (valid words with random, often broken, arguments) in every state: each
gets a tagged answer or BYE, no session ever ends in an exception, and the server keeps serving."""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "imap"))
from imap_lab import Client, imap, imap_module, message  # noqa: F401

from mailcove.proto.imap.client import Tagged, Untagged

WORDS = ["CAPABILITY", "NOOP", "LOGOUT", "ID", "ENABLE", "SELECT", "EXAMINE", "CREATE", "DELETE", "RENAME",
         "SUBSCRIBE", "UNSUBSCRIBE", "LIST", "LSUB", "STATUS", "NAMESPACE", "CHECK", "CLOSE", "UNSELECT",
         "EXPUNGE", "SEARCH", "FETCH", "STORE", "COPY", "MOVE", "SORT", "THREAD", "UID FETCH", "UID STORE",
         "UID SEARCH", "UID EXPUNGE", "UID COPY", "UID MOVE", "GETQUOTA", "GETQUOTAROOT", "SETQUOTA"]
ARGS = ["INBOX", "Trash", '"x y"', "1", "1:*", "*", "2,4:5", "$", "(FLAGS)", "(BODY[])", "(BODY.PEEK[1.MIME])",
        "BODY[HEADER.FIELDS (A B)]", "+FLAGS", "-FLAGS.SILENT", "(\\Seen)", "(\\Deleted $x)", "ALL", "UNSEEN",
        "OR", "NOT", "(", ")", "\"\"", "\"*\"", "%", "(MESSAGES UNSEEN)", "(CONDSTORE)", "UTF-8", "(DATE)",
        "REFERENCES", "RETURN", "(MIN MAX)", "CHARSET", "NIL", "{3+}\r\nabc", "\\", "]", "~", "&Jjo-",
        "(UNCHANGEDSINCE 1)", "(CHANGEDSINCE 1 VANISHED)", "IMAP4rev2", "QRESYNC", "HEADER", "X", "BEFORE",
        "1-Jan-2020", "LARGER", "99"]


def test_random_commands_never_break_a_session(imap):
    for i in range(3):
        imap.deliver(message(f"m{i}"))
    rng = random.Random(4)
    sent = 0
    c = imap.client()
    for _ in range(400):
        line = rng.choice(WORDS) + "".join(" " + rng.choice(ARGS) for _ in range(rng.randint(0, 4)))
        if line.startswith("LOGOUT"):
            continue
        tag = c.tag()
        c.send(f"{tag} {line}\r\n".encode())
        sent += 1
        while True:
            try:
                r = c.read_one(10)
            except ConnectionError:
                r = None
            if r is None or (isinstance(r, Untagged) and r.kind == "BYE"):
                c = imap.client()  # too many BADs in a row: start again
                break
            if isinstance(r, Tagged) and r.tag == tag:
                break
            if not isinstance(r, (Tagged, Untagged)):  # a continuation for a literal: abandon it
                c.close()
                c = imap.client()
                break
    logs = imap.srv.logs()
    assert "session failed" not in logs and "Traceback" not in logs, logs[-3000:]
    assert sent > 300
    imap.client().ok("NOOP")
