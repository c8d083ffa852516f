"""contrib/: the systemd unit passes `systemd-analyze verify` without a single warning and keeps
its hardening; sysusers.d and tmpfiles.d files create the account and directories in a scratch
root. (Starting the unit needs systemd as PID 1, which CI containers do not have.)"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from mailcove_testing import REPO, require_tool

UNIT = REPO / "contrib" / "systemd" / "mailcove.service"
SYSUSERS = REPO / "contrib" / "sysusers.d" / "mailcove.conf"
TMPFILES = REPO / "contrib" / "tmpfiles.d" / "mailcove.conf"


def _directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def _local_unit(tmp_path: Path) -> Path:
    """The repo's unit with ExecStart pointing at this checkout's mailcove (verify checks that
    the program exists; the installed path is /usr/local/bin/mailcove)."""
    mailcove = shutil.which("mailcove") or str(Path(REPO / ".venv" / "bin" / "mailcove"))
    text = UNIT.read_text().replace("/usr/local/bin/mailcove", mailcove)
    unit = tmp_path / "mailcove.service"
    unit.write_text(text)
    return unit


def test_unit_has_the_hardening_the_issue_names() -> None:
    d = _directives(UNIT.read_text())
    expect = {
        "User": "mailcove", "Group": "mailcove", "Type": "notify",
        "AmbientCapabilities": "CAP_NET_BIND_SERVICE", "CapabilityBoundingSet": "CAP_NET_BIND_SERVICE",
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ReadWritePaths": "/var/lib/mailcove",
        "ProtectHome": "read-only", "PrivateTmp": "yes", "PrivateDevices": "yes",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "SystemCallFilter": "@system-service",
        "StateDirectory": "mailcove", "RuntimeDirectory": "mailcove", "ExecReload": "/bin/kill -HUP $MAINPID",
    }
    for key, value in expect.items():
        assert d.get(key) == [value], (key, d.get(key))
    assert int(d["LimitNOFILE"][0]) >= 65536
    assert "#SupplementaryGroups=shadow" in UNIT.read_text()


def test_systemd_analyze_verify_is_silent(tmp_path: Path) -> None:
    tool = require_tool("systemd-analyze")
    unit = _local_unit(tmp_path)
    r = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    # verify exits 0 even for directives it ignores; any output is a problem in the unit
    assert r.returncode == 0 and not (r.stdout + r.stderr).strip(), r.stdout + r.stderr
    r = subprocess.run([tool, "security", "--offline=yes", str(unit)], capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for mailcove.service: ([0-9.]+)", r.stdout + r.stderr)
    assert m is not None, r.stdout + r.stderr
    # systemd's scale: 10 is unprotected; the unit scores 1.9 ("OK") with systemd 252
    assert float(m.group(1)) <= 2.5, r.stdout


def test_verify_notices_a_broken_unit(tmp_path: Path) -> None:
    """The check above would catch a typo: systemd-analyze reports it (while still exiting 0)."""
    tool = require_tool("systemd-analyze")
    unit = _local_unit(tmp_path)
    unit.write_text(unit.read_text().replace("ProtectHome=read-only", "ProtectHome=readonly"))
    r = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert "ProtectHome" in r.stderr or "protect home" in r.stderr.lower(), r.stderr


def test_sysusers_and_tmpfiles_in_a_scratch_root(tmp_path: Path) -> None:
    sysusers = require_tool("systemd-sysusers")
    tmpfiles = require_tool("systemd-tmpfiles")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    subprocess.run([sysusers, f"--root={root}", str(SYSUSERS)], check=True, capture_output=True, timeout=60)
    line = next(x for x in (root / "etc" / "passwd").read_text().splitlines() if x.startswith("mailcove:"))
    _name, _x, uid, gid, _gecos, home, shell = line.split(":")
    assert home == "/var/lib/mailcove" and shell == "/usr/sbin/nologin"
    subprocess.run([tmpfiles, "--create", f"--root={root}", str(TMPFILES)], check=True, capture_output=True,
                   timeout=60)
    data = (root / "var" / "lib" / "mailcove").stat()
    assert (data.st_uid, data.st_gid, data.st_mode & 0o777) == (int(uid), int(gid), 0o700)
    assert (root / "run" / "mailcove").stat().st_uid == int(uid)
