"""`make install`, the Debian 12 / Ubuntu 24.04 install path of docs/deploy.md, end to end.

Run as root in a private mount namespace whose /opt, /usr/local, /etc, /var/lib, /run and the
checkout are overlays: `make install` writes the real paths (/opt/mailcove, /usr/local/bin, the
unit, the `mailcove` account), and the host sees none of it. Then, as an admin would:
`mailcove` is on the default PATH of root and of the service user, the installed unit passes
`systemd-analyze verify` (its ExecStart exists), and `mailcove serve` started as root (in a
private network namespace: the standard ports are its own) drops to `mailcove` after binding,
which a Python under /root would have prevented; a first start that fails after that drop
leaves no data dir behind. `make uninstall` removes it again.

The Rocky/RHEL 9 path (`dnf install python3.11`, then the same `make install`) cannot run on
this Debian machine; docs/deploy.md says so."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from mailcove_testing import REPO, require_tool, unavailable

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
OVERLAID = ("/opt", "/usr/local", "/etc", "/var/lib", "/run", str(REPO))


def _script(scratch: Path) -> str:
    mounts = "\n".join(
        f"mkdir -p {scratch}/{i}.u {scratch}/{i}.w && mount -t overlay overlay "
        f"-o lowerdir={d},upperdir={scratch}/{i}.u,workdir={scratch}/{i}.w {d}"
        for i, d in enumerate(OVERLAID)
    )
    return f"""
set -e
{mounts}
# a host that already has the account or an install would hide what `make install` does
userdel mailcove 2>/dev/null || true
rm -rf /opt/mailcove /usr/local/bin/mailcove /etc/systemd/system/mailcove.service
cd {REPO}
make install
echo "== root:    $(env -i PATH={DEFAULT_PATH} sh -c 'command -v mailcove')"
echo "== service: $(runuser -u mailcove -- env -i PATH=/usr/local/bin:/usr/bin:/bin sh -c 'mailcove --version')"
systemd-analyze verify /etc/systemd/system/mailcove.service
echo "== verify ok"
export MAILCOVE_CONFIG=/etc/mailcove/mailcove.toml
echo 'It1' | env -i PATH={DEFAULT_PATH} MAILCOVE_CONFIG=$MAILCOVE_CONFIG mailcove setup example.org \\
    --hostname mx.example.org --users alice --password-stdin
# an admin command after setup, on the data dir make install gave to mailcove
echo 'It1' | env -i PATH={DEFAULT_PATH} MAILCOVE_CONFIG=$MAILCOVE_CONFIG mailcove user add bob@example.org \
    --password-stdin
echo "== owners: $(find /var/lib/mailcove ! -user mailcove | wc -l) not mailcove's"
unshare --net bash -c '
  ip link set lo up
  env -i PATH={DEFAULT_PATH} MAILCOVE_CONFIG=$MAILCOVE_CONFIG mailcove serve --workers 1 > {scratch}/serve.out 2>&1 &
  pid=$!
  for i in $(seq 300); do
    grep -qx ready {scratch}/serve.out && break; kill -0 $pid 2>/dev/null || break; sleep 0.1
  done
  kill -TERM $pid
  wait $pid
  echo "== serve exited $?"'
cat {scratch}/serve.out
# A first start that fails only after dropping to mailcove (a PostgreSQL store it cannot open:
# no asyncpg here, nor a server) takes away the data dir it made; mailcove could not, from /var/lib.
printf '[store]\nbackend = "postgres"\ndsn = "postgresql://mc@127.0.0.1:1/mc"\n' > /etc/mailcove/pg.toml
chmod 644 /etc/mailcove/pg.toml
unshare --net bash -c '
  ip link set lo up
  env -i PATH={DEFAULT_PATH} mailcove --config /etc/mailcove/pg.toml --data /var/lib/mailcove-pg serve \
      --workers 1 > {scratch}/pg.out 2>&1
  echo "== failed start exited $?"'
cat {scratch}/pg.out
for i in $(seq 50); do test -e /var/lib/mailcove-pg || break; sleep 0.1; done
echo "== failed start's data dir: $(test -e /var/lib/mailcove-pg && echo left || echo gone)"
make uninstall
test ! -e /usr/local/bin/mailcove && test ! -e /opt/mailcove && echo "== uninstalled"
"""


def test_make_install_puts_mailcove_on_path_for_root_and_the_service_user() -> None:
    if os.geteuid() != 0:
        unavailable("root (make install writes /opt, /usr/local/bin and /etc, here in a private namespace)")
    for tool in ("unshare", "make", "runuser", "systemd-analyze", "ip"):
        require_tool(tool)
    if not Path("/usr/bin/python3").exists():
        unavailable("Debian's python3 (python3-venv)")
    scratch = Path(tempfile.mkdtemp(prefix="mailcove-make-install-", dir="/var/tmp"))
    try:
        r = subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", "-c", _script(scratch)],
                           capture_output=True, text=True, timeout=600, cwd="/", start_new_session=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "== root:    /usr/local/bin/mailcove\n" in out, out
    assert "== service: mailcove, version" in out, out
    assert "== verify ok" in out, out
    assert "== owners: 0 not mailcove's" in out, out
    assert "\nready\n" in out and "== serve exited 0" in out, out
    assert "mailcove (dropped from root after binding)" in out, out
    assert "== failed start exited 1" in out, out
    assert "== failed start's data dir: gone" in out, out
    assert "== uninstalled" in out, out
