"""What every check returns: Findings, each with a status and, for a problem, the fix."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from mailcove.config import Settings

Status = Literal["ok", "warn", "fail"]
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
        counts = {s: sum(1 for f in self.findings if f.status == s) for s in ("ok", "warn", "fail")}
        return json.dumps({"ok": self.ok, "counts": counts, "findings": [asdict(f) for f in self.findings]},
                          indent=2)


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
