"""THREAD=ORDEREDSUBJECT and THREAD=REFERENCES (RFC 5256)."""

from __future__ import annotations

from imap_lab import message


def _threads(untagged):
    return next(r for r in untagged if r.kind == "THREAD")


def test_references_and_orderedsubject(imap):
    imap.deliver(message("topic", msgid="<a@x>", date="Mon, 02 Nov 2026 10:00:00 +0000"))
    imap.deliver(message("Re: topic", msgid="<b@x>", extra="In-Reply-To: <a@x>\r\nReferences: <a@x>\r\n",
                         date="Mon, 02 Nov 2026 11:00:00 +0000"))
    imap.deliver(message("other", msgid="<c@x>", date="Mon, 02 Nov 2026 12:00:00 +0000"))
    imap.deliver(message("Re: topic", msgid="<d@x>", extra="References: <a@x> <b@x>\r\n",
                         date="Mon, 02 Nov 2026 13:00:00 +0000"))
    imap.deliver(message("Re: topic", msgid="<e@x>", extra="References: <a@x>\r\n",
                         date="Mon, 02 Nov 2026 14:00:00 +0000"))
    c = imap.client(select="INBOX")
    r = _threads(c.ok("THREAD REFERENCES UTF-8 ALL"))
    assert r.raw == b"* THREAD (1 (2 4)(5))(3)"
    r = _threads(c.ok("THREAD ORDEREDSUBJECT UTF-8 ALL"))
    assert r.raw == b"* THREAD (1 (2)(4)(5))(3)"  # threads in the order of their first date
    r = _threads(c.ok("UID THREAD REFERENCES UTF-8 NOT SUBJECT other"))
    assert r.raw == b"* THREAD (1 (2 4)(5))"
    _, done = c.cmd("THREAD NONSENSE UTF-8 ALL")
    assert done.status in ("NO", "BAD")


# --- the algorithms alone (no server): every message exactly once, whatever the headers say ----

import asyncio  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from mailcove.core import cooperative  # noqa: E402
from mailcove.imap.thread import fields, ordered_subject_steps, references_steps  # noqa: E402
from mailcove.message import scan  # noqa: E402
from mailcove.proto.imap.responses import ResponseEncoder  # noqa: E402
from mailcove.store.api import MessageMeta  # noqa: E402

_IDS = st.integers(0, 8).map(lambda n: f"<m{n}@x>")
_MESSAGE = st.fixed_dictionaries({
    "mid": st.one_of(st.none(), _IDS),
    "refs": st.lists(_IDS, max_size=5),
    "irt": st.one_of(st.none(), _IDS),
    "subject": st.sampled_from(["a", "Re: a", "Fwd: a", "[list] Re: b", "b (fwd)", "", "RE: re: a"]),
    "hour": st.one_of(st.none(), st.integers(0, 3)),
})


def _meta(i: int, m: dict) -> MessageMeta:
    h = ""
    if m["mid"]:
        h += f"Message-ID: {m['mid']}\r\n"
    if m["refs"]:
        h += "References: " + " ".join(m["refs"]) + "\r\n"
    if m["irt"]:
        h += f"In-Reply-To: {m['irt']}\r\n"
    h += f"Subject: {m['subject']}\r\n"
    if m["hour"] is not None:
        h += f"Date: Mon, 02 Nov 2026 {m['hour']:02d}:00:00 +0000\r\n"
    raw = (h + "\r\nbody\r\n").encode()
    return MessageMeta(uid=i, flags=frozenset(), modseq=1, internaldate=1000.0 + i % 3, size=len(raw), info=scan(raw))


def references(items: list[tuple[int, MessageMeta]]) -> list:
    # as imap/ops/thread.py runs it, without the session
    return asyncio.run(cooperative.drive(references_steps([(i, fields(m)) for i, m in items])))


def ordered_subject(items: list[tuple[int, MessageMeta]]) -> list:
    return asyncio.run(cooperative.drive(ordered_subject_steps([(i, fields(m)) for i, m in items])))


def _ids(wire: bytes) -> list[int]:
    return sorted(int(t) for t in wire.replace(b"(", b" ").replace(b")", b" ").split())


@settings(max_examples=300, deadline=None)
@given(st.lists(_MESSAGE, min_size=1, max_size=12))
def test_threads_hold_every_message_once(messages: list[dict]) -> None:
    items = [(i, _meta(i, m)) for i, m in enumerate(messages, 1)]
    for algo in (references, ordered_subject):
        wire = ResponseEncoder(rev2=False, utf8=False).thread(algo(items)).removeprefix(b"* THREAD").strip()
        assert _ids(wire) == list(range(1, len(items) + 1)), (algo.__name__, wire)
        assert wire.count(b"(") == wire.count(b")")
        assert b"()" not in wire and b" )" not in wire and b"( " not in wire
