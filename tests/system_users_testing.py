"""Real Unix accounts for the system-users tests (tests/directory/test_system_users*.py,
tests/e2e/test_system_users.py).

The accounts are made with useradd/chpasswd and removed with `userdel -r` at teardown. Every name
starts with a random per-fixture prefix ("mct" + 6 hex digits), so parallel runs never clash and a
crashed run's leftovers are easy to find (`getent passwd | grep ^mct`). Creating accounts needs
root: a developer machine (not root) skips these tests; under CI=true (root) they must run, and a
missing tool fails them rather than skipping.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from mailcove_testing import require_tool, unavailable

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_root() -> None:
    if os.geteuid() != 0:
        unavailable("root (the system-users tests create Unix accounts)")
    for tool in ("useradd", "userdel", "usermod", "chpasswd", "chage", "runuser"):
        require_tool(tool)


def _run(args: list[str], stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a shadow-utils command, retrying while another one (a parallel test worker) holds the
    /etc/passwd or /etc/shadow lock."""
    for _ in range(50):
        r = subprocess.run(args, input=stdin, text=True, capture_output=True)
        if r.returncode == 0 or "lock" not in (r.stderr or "").lower():
            break
        time.sleep(0.1)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


class UnixUsers:
    """Creates accounts named `<prefix>_<short>`; `remove_all()` deletes them and their homes."""

    def __init__(self) -> None:
        self.prefix = "mct" + secrets.token_hex(3)
        self.created: list[str] = []

    def name(self, short: str) -> str:
        return f"{self.prefix}_{short}"

    def add(
        self, short: str, password: str | None = "It1-Unix", *, system: bool = False, home: bool = True,
        groups: tuple[str, ...] = (), crypt_method: str | None = None,
    ) -> pwd.struct_passwd:
        name = self.name(short)
        args = ["useradd", "-s", "/usr/sbin/nologin"]
        args += ["-m"] if home else ["-M"]
        if system:
            args.append("-r")  # a system account: uid below UID_MIN
        if groups:
            args += ["-G", ",".join(groups)]
        _run([*args, name])
        self.created.append(name)
        if password is not None:
            self.set_password(short, password, crypt_method=crypt_method)
        return pwd.getpwnam(name)

    def set_password(self, short: str, password: str, *, crypt_method: str | None = None) -> None:
        cmd = ["chpasswd"] + (["-c", crypt_method] if crypt_method else [])
        _run(cmd, stdin=f"{self.name(short)}:{password}\n")

    def run(self, *args: str) -> None:
        _run(list(args))

    def home(self, short: str) -> Path:
        return Path(pwd.getpwnam(self.name(short)).pw_dir)

    def write_forward(self, short: str, text: str, mode: int = 0o644) -> Path:
        pw = pwd.getpwnam(self.name(short))
        path = Path(pw.pw_dir) / ".forward"
        path.write_text(text)
        os.chown(path, pw.pw_uid, pw.pw_gid)
        path.chmod(mode)
        return path

    def remove_all(self) -> None:
        for name in reversed(self.created):
            home = None
            try:
                home = pwd.getpwnam(name).pw_dir
            except KeyError:
                continue
            _run(["userdel", "-r", "-f", name], check=False)
            if home and home.startswith("/home/") and os.path.isdir(home):
                shutil.rmtree(home, ignore_errors=True)
        self.created.clear()


def unix_users_fixture() -> Iterator[UnixUsers]:
    """The body of each test module's `unix_users` fixture (`yield from unix_users_fixture()`)."""
    require_root()
    users = UnixUsers()
    try:
        yield users
    finally:
        users.remove_all()
