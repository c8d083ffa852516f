"""Run the real `mailcove sendmail` as root or as another Unix user (setpriv), against a lab's
submit socket. For tests/regress/test_sendmail_*.py."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def require_other_user() -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run sendmail as another user")


def sendmail(lab, *args: str, input: bytes, user: str | None = None) -> subprocess.CompletedProcess[bytes]:  # type: ignore[no-untyped-def]
    """`mailcove sendmail ARGS < input`, as `user` (None: this process's user). The other user
    reads a copy of the config next to the submit socket (the lab's own is under pytest's 0700
    tmp dir) and has no access to the data dir, as on a real host."""
    cfg = lab.submit_socket.parent / "client.toml"
    if not cfg.exists():
        cfg.write_text(lab.srv.config_path.read_text())
        cfg.chmod(0o644)
    argv = [sys.executable, "-m", "mailcove", "--config", str(cfg), "sendmail", *args]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    if user is not None:
        pw = pwd.getpwnam(user)
        argv = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups", *argv]
        # $LOGNAME left as root's: the name must come from the uid, not from the environment.
        env.update(HOME="/", LOGNAME="root", USER="root")
    return subprocess.run(argv, input=input, capture_output=True, timeout=60, env=env, cwd=REPO)
