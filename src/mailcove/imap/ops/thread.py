"""THREAD and UID THREAD (RFC 5256): ORDEREDSUBJECT and REFERENCES."""

from __future__ import annotations

from mailcove.core import cooperative
from mailcove.imap.ops.search import evaluate
from mailcove.imap.ops.sort import fields_of
from mailcove.imap.session import Reply, Session
from mailcove.imap.thread import fields, ordered_subject_steps, references_steps
from mailcove.proto.imap.commands import Thread


async def run(s: Session, cmd: Thread) -> str:
    algo = cmd.algorithm.upper()
    if algo not in ("ORDEREDSUBJECT", "REFERENCES"):
        raise Reply("NO", f"Unsupported threading algorithm {cmd.algorithm}", "CANNOT")
    found = await evaluate(s, cmd.criteria)
    # The algorithms break ties by position in `items` (mailbox order), never by the number, so
    # UID THREAD threads UIDs directly.
    items = [(m.uid if cmd.uid else m.seq, f) for m, f in await fields_of(s, found, fields)]
    steps = ordered_subject_steps(items) if algo == "ORDEREDSUBJECT" else references_steps(items)
    nodes = await cooperative.drive(steps)
    s.write(s.enc.thread(nodes))
    return "THREAD completed"
