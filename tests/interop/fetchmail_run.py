"""fetchmail as the IMAP and POP3 interop tests run it: a private rc file and id file in the
test's temp dir, each fetched message written by an mda into tmp/out, and fetchmail's own
Received: field taken off again for comparing bytes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from mailcove_testing import require_tool


def run_fetchmail(tmp: Path, port: int, user: str, password: str, *, protocol: str, tls: str,
                  extra: str = "") -> subprocess.CompletedProcess[str]:
    """One fetchmail run against 127.0.0.1:`port`. `protocol` is what follows `protocol` in the
    rc file ("IMAP", "POP3 uidl"), `tls` its TLS options, `extra` more user options ("keep")."""
    fetchmail = require_tool("fetchmail")
    out = tmp / "out"
    out.mkdir(exist_ok=True)
    rc = tmp / "fetchmailrc"
    rc.write_text(
        "set no syslog\n"
        f"poll 127.0.0.1 service {port} protocol {protocol} auth password no envelope\n"
        f'  user "{user}" there with password "{password}" is "root" here\n'
        f'  {tls} norewrite {extra} mda "cat > `mktemp {out}/m.XXXXXXXX`"\n'
    )
    rc.chmod(0o600)
    env = dict(os.environ, HOME=str(tmp), FETCHMAILHOME=str(tmp))
    return subprocess.run(
        [fetchmail, "-f", str(rc), "-N", "-v", "--idfile", str(tmp / "fetchids"), "--pidfile", str(tmp / "pid")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def fetched(tmp: Path) -> list[bytes]:
    """What the runs so far delivered, oldest first."""
    return [p.read_bytes() for p in sorted((tmp / "out").iterdir(), key=lambda p: p.stat().st_mtime_ns)]


def strip_received(data: bytes) -> bytes:
    """fetchmail's own Received: field (folded over several lines) comes first."""
    assert data.startswith(b"Received: from 127.0.0.1"), data[:200]
    lines = data.split(b"\n")
    i = 1
    while lines[i][:1] in (b" ", b"\t"):
        i += 1
    return b"\n".join(lines[i:])
