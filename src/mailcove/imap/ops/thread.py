"""THREAD and UID THREAD (RFC 5256): ORDEREDSUBJECT and REFERENCES."""

from __future__ import annotations

from mailcove.imap.ops.search import evaluate
from mailcove.imap.ops.sort import metas_for
from mailcove.imap.session import Reply, Session
from mailcove.imap.thread import Node, format_threads, ordered_subject, references
from mailcove.proto.imap.commands import Thread


def _renumber(nodes: list[Node], to: dict[int, int]) -> list[Node]:
    return [(to.get(i, 0), _renumber(ch, to)) for i, ch in nodes]


async def run(s: Session, cmd: Thread) -> str:
    algo = cmd.algorithm.upper()
    if algo not in ("ORDEREDSUBJECT", "REFERENCES"):
        raise Reply("NO", f"Unsupported threading algorithm {cmd.algorithm}", "CANNOT")
    found = await evaluate(s, cmd.criteria)
    await metas_for(s, found)
    items = [(m.seq, m.meta) for m in found if m.meta is not None]
    nodes = ordered_subject(items) if algo == "ORDEREDSUBJECT" else references(items)  # type: ignore[arg-type]
    if cmd.uid:
        nodes = _renumber(nodes, {m.seq: m.uid for m in found})
    s.io.write(b"* THREAD" + (b" " if nodes else b"") + format_threads(nodes) + b"\r\n")
    return "THREAD completed"
