"""THREAD and UID THREAD (RFC 5256): ORDEREDSUBJECT and REFERENCES."""

from __future__ import annotations

from mailcove.imap.ops.search import evaluate
from mailcove.imap.ops.sort import metas_for
from mailcove.imap.session import Reply, Session
from mailcove.imap.thread import ordered_subject, references
from mailcove.proto.imap.commands import Thread


async def run(s: Session, cmd: Thread) -> str:
    algo = cmd.algorithm.upper()
    if algo not in ("ORDEREDSUBJECT", "REFERENCES"):
        raise Reply("NO", f"Unsupported threading algorithm {cmd.algorithm}", "CANNOT")
    found = await evaluate(s, cmd.criteria)
    await metas_for(s, found)
    # The algorithms break ties by position in `items` (mailbox order), never by the number, so
    # UID THREAD threads UIDs directly.
    items = [(m.uid if cmd.uid else m.seq, m.meta) for m in found if m.meta is not None]
    nodes = ordered_subject(items) if algo == "ORDEREDSUBJECT" else references(items)  # type: ignore[arg-type]
    s.write(s.enc.thread(nodes))
    return "THREAD completed"
