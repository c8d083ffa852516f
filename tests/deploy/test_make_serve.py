"""`make serve` next to the programs it replaces, and once the `mailcove` account exists.

- A port another program listens on stops the start with one line that names the program and
  pid (from /proc) and the ways out: stop it, `--listen NAME=...`, `make serve ARGS=...`.
- Started as root without `[server] user`, with a `mailcove` account that cannot read this Python
  (pyenv under /root, mode 0700; made so in the namespace where the Python is readable):
  `make serve` keeps root and the banner says why and what to do, instead of refusing to start.
  A user named on purpose is still refused, in one line.

The `make serve` test runs in a private mount and network namespace: /etc is an overlay (the
`mailcove` account is created there only), the checkout is an overlay too (the data dir
./mailcove-data lands in it), and the standard ports are the namespace's own."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from mailcove_testing import REPO, ServerProcess, require_tool, unavailable


def test_port_in_use_names_the_program_that_holds_it(serve_factory: Callable[..., ServerProcess]) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        srv = serve_factory(listeners={"smtp": f"127.0.0.1:{port}"}, start=False)
        r = srv.run_to_exit()
    assert r.returncode == 2, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    line = lines[0]
    assert f"listen.smtp: 127.0.0.1:{port}: Address already in use" in line, line
    me = Path(f"/proc/{os.getpid()}/comm").read_text().strip()
    assert f"held by {me} (pid {os.getpid()})" in line, line
    assert "--listen smtp=" in line and "make serve ARGS=" in line, line


def _in_namespace(script: str, scratch: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    setup = f"""
set -e
ip link set lo up
mkdir -p {scratch}/etc.u {scratch}/etc.w {scratch}/repo.u {scratch}/repo.w
mount -t overlay overlay -o lowerdir=/etc,upperdir={scratch}/etc.u,workdir={scratch}/etc.w /etc
mount -t overlay overlay -o lowerdir={REPO},upperdir={scratch}/repo.u,workdir={scratch}/repo.w {REPO}
rm -rf {REPO}/mailcove-data
id mailcove >/dev/null 2>&1 || useradd --system --user-group --no-create-home --home-dir /var/lib/mailcove \\
    --shell /usr/sbin/nologin mailcove
set +e
"""
    return subprocess.run(["unshare", "--mount", "--net", "--propagation", "private", "bash", "-c", setup + script],
                          capture_output=True, text=True, timeout=timeout, cwd="/", start_new_session=True)


def test_make_serve_keeps_root_when_the_mailcove_user_cannot_read_python() -> None:
    if os.geteuid() != 0:
        unavailable("root (a private network namespace and the `mailcove` account in it)")
    for tool in ("unshare", "make", "useradd", "ip"):
        require_tool(tool)
    scratch = Path(tempfile.mkdtemp(prefix="mailcove-make-serve-", dir="/var/tmp"))
    stdlib = Path(os.__file__).resolve().parent
    try:
        # `make serve` in the foreground until `ready`, then SIGTERM: what Ctrl-C does. Where this
        # Python is readable by anyone (a system Python), the namespace closes its standard library
        # to other users, as pyenv under /root does: an overlay whose top directory is mode 0700.
        r = _in_namespace(f"""
mkdir -p {scratch}/py.u {scratch}/py.w
mount -t overlay overlay -o lowerdir={stdlib},upperdir={scratch}/py.u,workdir={scratch}/py.w {stdlib}
chmod 700 {stdlib}
cd {REPO}
touch .venv/.installed  # the venv is this one; no network in here to refresh it
make serve ARGS='--workers 1' > {scratch}/out 2>&1 &
pid=$!
for i in $(seq 300); do grep -qx ready {scratch}/out && break; kill -0 $pid 2>/dev/null || break; sleep 0.1; done
pkill -TERM -P $pid
wait $pid
echo "make exited $?"
cat {scratch}/out
# a user named on purpose is refused in one line, with the way out
.venv/bin/mailcove serve --user mailcove --workers 1 --listen smtp=127.0.0.1:2525
echo "named exited $?"
""", scratch, timeout=120)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    out = r.stdout + r.stderr
    assert "make exited 0" in out, out
    assert "\nready\n" in out, out
    assert "WARNING: mailcove cannot read the Python code in" in out and "not dropping privileges" in out, out
    assert "install mailcove outside" in out, out
    assert "named exited 2" in out, out
    assert "mailcove cannot read the Python code" in out and "`mailcove serve --user root`" in out, out
