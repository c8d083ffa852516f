"""The real `mailcove` command in a child process, as an administrator runs it: no controlling
terminal (a new session), no $MAILCOVE_CONFIG from the caller, the checked-out source."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mailcove_testing import REPO

# Cheap argon2 for speed (the CLI reads it from a real config file, as an administrator's would).
FAST_CONFIG = "[auth]\nargon2_time_cost = 1\nargon2_memory_kib = 1024\n"


def mailcove(*args: str | Path, input: str = "", cwd: Path | None = None,
             environ: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH", "")) if p)
    env.pop("MAILCOVE_CONFIG", None)
    env.update(environ or {})
    return subprocess.run([sys.executable, "-m", "mailcove", *map(str, args)], input=input, capture_output=True,
                          text=True, env=env, cwd=cwd or REPO, timeout=120, start_new_session=True)


def one_line(r: subprocess.CompletedProcess[str]) -> str:
    """The one `mailcove:` line a failing command prints on stderr (and nothing else there)."""
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mailcove: "), r.stderr
    return lines[0]
