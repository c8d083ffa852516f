"""Helpers for the deployment tests: a service user the test creates, and data dirs it can reach.

pytest's tmp dirs are 0700 root, so a server that drops to another user could not reach a data
dir there; `reachable_dir` makes one under /tmp whose parents are traversable."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailcove_testing import unavailable

USER = "mailcove-t5"
SUPP_GROUP = "mailcove-t5x"


@dataclass(frozen=True)
class ServiceUser:
    name: str
    uid: int
    gid: int
    supplementary_gid: int


def _need_root() -> None:
    if os.geteuid() != 0:
        unavailable("root (the privilege tests)")


@pytest.fixture(scope="session")
def service_user() -> ServiceUser:
    """A system user with a supplementary group (standing in for `shadow` membership).
    Created once and left in place: names are private to this test module, and removing
    accounts while another test run may use them would be worse than leaving them."""
    _need_root()
    for tool in ("useradd", "groupadd", "usermod"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is required to create the test's service user")
    try:
        grp.getgrnam(SUPP_GROUP)
    except KeyError:
        subprocess.run(["groupadd", "--system", SUPP_GROUP], check=False, capture_output=True)
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", "--user-group", USER], check=False, capture_output=True)
    subprocess.run(["usermod", "-a", "-G", SUPP_GROUP, USER], check=True, capture_output=True)
    pw = pwd.getpwnam(USER)
    return ServiceUser(USER, pw.pw_uid, pw.pw_gid, grp.getgrnam(SUPP_GROUP).gr_gid)


@pytest.fixture
def reachable_dir() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="mailcove-deploy-", dir="/tmp"))
    os.chmod(base, 0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def python_visible_wrap(user: ServiceUser, scratch: Path) -> list[str]:
    """A command prefix that lets `user` read this Python when it lives under a directory the
    user cannot enter (pyenv under /root, mode 0700, on the build machines).

    In a private mount namespace the blocking directory is covered by an empty 0755 tmpfs and
    only the Python installation is bound back into it: the server still runs as `user` with
    no extra rights to anything else, and the host sees no change. [] when nothing blocks."""
    prefix = Path(os.__file__).resolve().parent
    blocked: Path | None = None
    for parent in reversed(prefix.parents):
        mode = parent.stat().st_mode
        if parent.stat().st_uid != user.uid and not mode & stat.S_IXOTH:
            blocked = parent
            break
    if blocked is None:
        return []
    if shutil.which("unshare") is None:
        pytest.fail(f"{prefix} is not reachable by {user.name} and unshare is missing to expose it")
    child = blocked / prefix.relative_to(blocked).parts[0]  # e.g. /root/.pyenv
    keep = scratch / "python-keep"
    keep.mkdir()
    script = (
        "set -e\n"
        f"mount --bind {child} {keep}\n"
        f"mount -t tmpfs -o mode=0755 tmpfs {blocked}\n"
        f"mkdir -p {child}\n"
        f"mount --move {keep} {child}\n"
        'exec "$@"\n'
    )
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "mailcove-wrap"]


__all__ = ["ServiceUser", "python_visible_wrap", "reachable_dir", "service_user"]
