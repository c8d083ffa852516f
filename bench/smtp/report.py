"""Tables for the terminal and for the `## SMTP (bench/smtp)` section of docs/benchmarks.md."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from bench.common import median

if TYPE_CHECKING:
    from bench.smtp.__main__ import Results

HEADING = "## SMTP (bench/smtp)"
BEGIN = "<!-- bench/smtp results: written by `python -m bench.smtp --write-docs`; edit outside these markers -->"
END = "<!-- bench/smtp results end -->"
ORDER = ("mailcove", "postfix-default", "postfix-tuned", "aiosmtpd", "smtp-sink")


def _fmt(x: float, digits: int = 0) -> str:
    return "n/a" if math.isnan(x) else f"{x:,.{digits}f}"


def _ratio(a: float, b: float) -> str:
    return "n/a" if math.isnan(a) or math.isnan(b) or b == 0 else f"{a / b:.2f}x"


def _size(n: int) -> str:
    return f"{n // 1024} KB" if n % 1024 == 0 else f"{n} B"


def markdown(results: Results, cells: list[tuple[int, int, int]]) -> str:
    peers = [p for p in ORDER if p in results.peers]

    def cell_values(peer: str, conns: int, size: int, what: str) -> list[float]:
        out = []
        for s in results.samples:
            if s.peer == peer and s.conns == conns and s.size == size and s.ok:
                values = {"stored": s.stored_rate, "accepted": s.accepted_rate, "cpu": s.cpu_s * 1000 / s.messages,
                          "settled_cpu": s.settled_cpu_s * 1000 / s.messages, "settle": s.settle_s}
                out.append(values[what])
        return out

    def med(peer: str, conns: int, size: int, what: str) -> float:
        return median(cell_values(peer, conns, size, what))

    def runs(peer: str, conns: int, size: int) -> str:
        total = sum(1 for s in results.samples if s.peer == peer and s.conns == conns and s.size == size)
        good = len(cell_values(peer, conns, size, "stored"))
        return "" if good == total else f" ({total - good} of {total} failed)"

    nruns = max(
        (sum(1 for s in results.samples if s.peer == p and (s.conns, s.size) == c[:2]) for c in cells for p in peers),
        default=0,
    )
    lines = [
        f"Measured {results.started} at commit `{results.commit}` ({results.machine}) by:",
        "",
        "```text",  # a record of the command, not a block to paste (tests/e2e/test_doc_blocks.py)
        f".venv/bin/{results.command}",
        "```",
        "",
        "Machine conditions (it is shared): "
        + "; ".join(f"{when}: new-file fsync {ms:.2f} ms, load {load:.1f}" for when, ms, load in results.conditions)
        + ".",
        "",
        "Servers: " + "; ".join(f"**{p}**: {results.peers[p]}" for p in peers) + ".",
        "",
        f"**Stored messages/s** (smtp-source start until the last message is in the mailbox; median of {nruns} runs):",
        "",
    ]
    head = "| connections | size | messages | " + " | ".join(peers)
    has_mc = "mailcove" in peers
    ratio_cols = [p for p in ("postfix-tuned", "postfix-default", "aiosmtpd") if p in peers] if has_mc else []
    head += "".join(f" | mailcove / {p}" for p in ratio_cols) + " |"
    lines += [head, "|" + "---|" * (3 + len(peers) + len(ratio_cols))]
    for conns, size, messages in cells:
        row = f"| {conns} | {_size(size)} | {messages} | "
        row += " | ".join(_fmt(med(p, conns, size, "stored")) + runs(p, conns, size) for p in peers)
        mc = med("mailcove", conns, size, "stored") if has_mc else float("nan")
        row += "".join(f" | {_ratio(mc, med(p, conns, size, 'stored'))}" for p in ratio_cols) + " |"
        lines.append(row)

    lines += ["", "Accepted messages/s (smtp-source's own run time: every message had its reply after DATA):", ""]
    lines += ["| connections | size | " + " | ".join(peers) + " |", "|" + "---|" * (2 + len(peers))]
    for conns, size, _ in cells:
        vals = " | ".join(_fmt(med(p, conns, size, "accepted")) for p in peers)
        lines.append(f"| {conns} | {_size(size)} | {vals} |")

    lines += ["", "Server CPU per stored message, ms (the server's whole process tree, user + system):", ""]
    lines += ["| connections | size | " + " | ".join(peers) + " |", "|" + "---|" * (2 + len(peers))]
    for conns, size, _ in cells:
        vals = " | ".join(_fmt(med(p, conns, size, "cpu"), 2) for p in peers)
        lines.append(f"| {conns} | {_size(size)} | {vals} |")

    if any(s.settled_cpu_s for s in results.samples):
        lines += ["", "The same, counted until the work deferred past storing was done too (mailcove's full-text",
                  "index; nothing for the others), and how long after the last message was stored that was, s:", ""]
        lines += ["| connections | size | " + " | ".join(f"{p} ms | {p} s" for p in peers) + " |",
                  "|" + "---|" * (2 + 2 * len(peers))]
        for conns, size, _ in cells:
            vals = " | ".join(
                f"{_fmt(med(p, conns, size, 'settled_cpu'), 2)} | {_fmt(med(p, conns, size, 'settle'), 1)}"
                for p in peers
            )
            lines.append(f"| {conns} | {_size(size)} | {vals} |")

    if results.latency:
        lines += ["", "Latency per message, 1 KB, 50 connections, Python client (bench/smtp/latency.py), ms,"]
        lines += ["medians of the runs' percentiles:", ""]
        lines += ["| server | p50 | p90 | p99 | p99 / p50 | max |", "|---|---|---|---|---|---|"]
        for p in peers:
            lat = [x for x in results.latency if x.peer == p]
            if not lat:
                continue
            p50 = median([x.p50_ms for x in lat])
            p99 = median([x.p99_ms for x in lat])
            lines.append(
                f"| {p} | {p50:.2f} | {median([x.p90_ms for x in lat]):.2f} | {p99:.2f} | {p99 / p50:.2f} | "
                f"{median([x.max_ms for x in lat]):.2f} |"
            )

    if has_mc:
        lines += ["", "Targets (issue 3, item 8):", ""]
        targets = [
            ("≥ 2.0x tuned Postfix, 1 KB, 50 connections", "postfix-tuned", 1024, 2.0),
            ("≥ 1.5x aiosmtpd, 1 KB, 50 connections", "aiosmtpd", 1024, 1.5),
            ("≥ 1.0x tuned Postfix, 100 KB, 50 connections", "postfix-tuned", 102400, 1.0),
        ]
        for label, peer, size, goal in targets:
            a, b = med("mailcove", 50, size, "stored"), med(peer, 50, size, "stored")
            if math.isnan(a) or math.isnan(b):
                continue
            verdict = "met" if a / b >= goal else "**missed**"
            lines.append(f"- {label}: {a / b:.2f}x, {verdict}")
        lat = [x for x in results.latency if x.peer == "mailcove"]
        if lat:
            q = median([x.p99_ms for x in lat]) / median([x.p50_ms for x in lat])
            lines.append(f"- p99 ≤ 2x median, 1 KB: {q:.2f}x, {'met' if q <= 2 else '**missed**'}")
    return "\n".join(lines) + "\n"


def write_docs(path: Path, generated: str) -> None:
    """Replace only the generated block of this bench's section; other sections belong to other
    benches (and engineers), so the file is read right before it is written."""
    text = path.read_text()
    block = f"{BEGIN}\n\n{generated}\n{END}"
    if HEADING not in text:
        text = text.rstrip("\n") + f"\n\n{HEADING}\n\n{block}\n"
    else:
        start = text.index(HEADING)
        nxt = text.find("\n## ", start + len(HEADING))
        end = len(text) if nxt == -1 else nxt + 1
        section = text[start:end]
        if BEGIN in section and END in section:
            a = section.index(BEGIN)
            b = section.index(END) + len(END)
            section = section[:a] + block + section[b:]
        else:
            section = section.rstrip("\n") + f"\n\n{block}\n" + ("\n" if nxt != -1 else "")
        text = text[:start] + section + text[end:]
    path.write_text(text)
