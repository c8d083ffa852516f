"""What every check returns: Findings, each with a status and, for a problem, the fix.

A `note` is what would be a problem on a public server but is how the seed's lab is meant to be
(`mailcove setup --lab`: no TLS, plaintext passwords, names from /etc/hosts instead of DNS): it is
shown with its fix, for the day the lab becomes a server, and does not make the check fail."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from mailcove.config import Settings

Status = Literal["ok", "note", "warn", "fail"]
STATUSES: tuple[Status, ...] = ("ok", "note", "warn", "fail")
STATE_FILE = "serve.json"


@dataclass(frozen=True, slots=True)
class Finding:
    check: str  # listeners | tls | dns | relay | index
    subject: str  # what was looked at: "imap 127.0.0.1:143", "certificate", "hamap.local MX"
    status: Status
    detail: str
    fix: str = ""


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)

    @property
    def failed(self) -> list[Finding]:
        return [f for f in self.findings if f.status == "fail"]

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_json(self) -> str:
        counts = {s: sum(1 for f in self.findings if f.status == s) for s in STATUSES}
        return json.dumps({"ok": self.ok, "counts": counts, "findings": [asdict(f) for f in self.findings]},
                          indent=2)


def lab_mode(settings: Settings) -> bool:
    """The seed's lab as `mailcove setup --lab` writes it: TLS off and plaintext passwords."""
    return not settings.tls.enabled and settings.auth.allow_plaintext


def as_lab_note(finding: Finding) -> Finding:
    """A DNS or TLS finding in lab mode: a note instead of a warning or failure."""
    if finding.status not in ("warn", "fail"):
        return finding
    return replace(finding, status="note", detail=f"{finding.detail} (lab mode: fine for a lab, not for a server)")


@dataclass(frozen=True, slots=True)
class ServerState:
    """The running server as its <data_dir>/serve.json describes it."""

    pid: int
    listeners: dict[str, list[str]]
    alive: bool
    path: Path


def load_state(settings: Settings) -> ServerState | None:
    path = settings.data_dir / STATE_FILE
    try:
        raw: dict[str, Any] = json.loads(path.read_text())
        pid = int(raw.get("pid", 0))
        listeners = {str(k): [str(a) for a in v] for k, v in dict(raw.get("listeners", {})).items()}
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    return ServerState(pid, listeners, _alive(pid), path)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user (the unprivileged mailcove user)
    return True


def split_address(text: str) -> tuple[str, int]:
    """"0.0.0.0:25" / "[::]:25" / "127.0.0.1:2525" -> where to connect: a wildcard bind is
    reached on loopback."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if host in ("0.0.0.0", "", "*"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return host, int(port)
