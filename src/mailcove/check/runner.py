"""Runs the checks and collects one Report."""

from __future__ import annotations

from collections.abc import Sequence

from mailcove.check import dns, listeners, relay, textindex, tls
from mailcove.check.model import Report, as_lab_note, lab_mode, load_state
from mailcove.config import Settings
from mailcove.directory import open_directory


async def local_domains(settings: Settings) -> list[str]:
    async with open_directory(settings) as directory:
        return [d.name for d in await directory.list_domains() if d.alias_of is None]


async def run(settings: Settings, *, domains: Sequence[str] = (), addresses: Sequence[str] = (),
              probe_from: str | None = None, timeout: float = 5.0, skip: Sequence[str] = ()) -> Report:
    report = Report()
    state = load_state(settings)
    # A lab's clients find the server through /etc/hosts and talk to it in clear, on purpose.
    lab = as_lab_note if lab_mode(settings) else None
    if "listeners" not in skip:
        report.findings += await listeners.check(settings, state, timeout)
    if "tls" not in skip:
        found = await tls.check(settings, state, timeout)
        report.findings += [lab(f) for f in found] if lab else found
    if "dns" not in skip:
        names = list(domains) or await local_domains(settings)
        found = await dns.check(settings, names, list(addresses), timeout, lab=lab is not None)
        report.findings += [lab(f) for f in found] if lab else found
    if "relay" not in skip:
        report.findings += await relay.check(settings, state, timeout, probe_from)
    if "index" not in skip:
        report.findings += await textindex.check(settings, state)
    return report
