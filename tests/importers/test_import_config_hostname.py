"""`import sendmail` / `import dovecot` set `hostname`, so the imported server does not greet as
`localhost`: from sendmail.cf's Dj (or a fully qualified Dw), else the machine's FQDN, and the
report says which. A hostname already in the config file is kept.

The FQDN cases run the real `mailcove` command in a private UTS and mount namespace whose host
name is `rocky9-3` (the seed's) and whose /etc/hosts lists it as seed Rocky installs do, so the
machine's real name and /etc/hosts are neither read nor changed."""

from __future__ import annotations

import os
import shlex
import smtplib
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

from mailcove_testing import REPO, ServerProcess, require_tool, unavailable

# The lines of a generated sendmail.cf that matter here (the rest of the file is m4 output).
SENDMAIL_CF = """\
# my official domain name
# ... define this only if sendmail cannot automatically determine your domain
#Dj$w.Foo.COM
Dwmx1
Dmhamap.local
Dj$w.$m
O QueueDirectory=/var/spool/mqueue
"""


def mailcove(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH", "")) if p)
    env.pop("MAILCOVE_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "mailcove", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=120)


def old_etc(base: Path, sendmail_cf: str | None = None) -> Path:
    mail = base / "etc" / "mail"
    mail.mkdir(parents=True)
    (mail / "local-host-names").write_text("rocky9-3\nhamap.local\nmx1.hamap.local\n")
    if sendmail_cf is not None:
        (mail / "sendmail.cf").write_text(sendmail_cf)
    dove = base / "etc" / "dovecot"
    dove.mkdir()
    (dove / "dovecot.conf").write_text("protocols = imap pop3\nlisten = *\nssl = no\n")
    return base / "etc"


def test_hostname_from_sendmail_cf_dj_and_the_server_greets_with_it(
        serve_factory: Callable[..., ServerProcess], tmp_path: Path) -> None:
    etc = old_etc(tmp_path / "old", SENDMAIL_CF)
    cfg, data = tmp_path / "mailcove.toml", tmp_path / "data"
    r = mailcove("--config", str(cfg), "--data", str(data), "import", "sendmail", str(etc / "mail"), cwd=tmp_path)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert tomllib.loads(cfg.read_text())["hostname"] == "mx1.hamap.local"
    line = next(ln for ln in r.stdout.splitlines() if ln.strip().startswith("+ hostname ="))
    assert f"[{etc / 'mail' / 'sendmail.cf'}:6]" in line and "Dj" in line, r.stdout
    # a real server started from the written file greets with it
    srv = serve_factory(cfg.read_text(), data_dir=data)
    host, port = srv.address("smtp")
    with smtplib.SMTP(timeout=30) as c:
        code, greeting = c.connect(host, port)
        assert code == 220 and greeting.split()[0] == b"mx1.hamap.local", greeting
    assert srv.banner.startswith("mailcove") and "serving mx1.hamap.local" in srv.banner, srv.banner


def test_a_dw_that_is_not_qualified_is_reported(tmp_path: Path) -> None:
    etc = old_etc(tmp_path / "old", "Dwrocky9-3\n")
    cfg = tmp_path / "mailcove.toml"
    cfg.write_text('hostname = "mx1.hamap.local"\n')  # the admin's own: kept
    r = mailcove("--config", str(cfg), "--data", str(tmp_path / "data"), "import", "sendmail", str(etc / "mail"),
                 "--json", cwd=tmp_path)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert tomllib.loads(cfg.read_text())["hostname"] == "mx1.hamap.local"
    assert "not a fully qualified host name" in r.stdout and "Dwrocky9-3" in r.stdout, r.stdout


def run_in_seed_machine(tmp_path: Path, commands: list[list[str]]) -> list[str]:
    """Each command as `mailcove ...` in a namespace whose host name is rocky9-3 and whose
    /etc/hosts says `rocky9-3.hamap.local rocky9-3`; returns their outputs."""
    if os.geteuid() != 0:
        unavailable("root (a private UTS and mount namespace with its own host name)")
    unshare = require_tool("unshare")
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost localhost.localdomain\n192.0.2.10 rocky9-3.hamap.local rocky9-3\n")
    py = shlex.quote(sys.executable)
    script = ["set -e", "hostname rocky9-3", f"mount --bind {shlex.quote(str(hosts))} /etc/hosts"]
    for i, args in enumerate(commands):
        script.append(f"{py} -m mailcove {' '.join(map(shlex.quote, args))} > {tmp_path}/out{i}.txt")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH", "")) if p)
    env.pop("MAILCOVE_CONFIG", None)
    r = subprocess.run([unshare, "--uts", "--mount", "--propagation", "private", "bash", "-c", "\n".join(script)],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, (r.stdout, r.stderr)
    return [(tmp_path / f"out{i}.txt").read_text() for i in range(len(commands))]


def test_without_dj_the_machine_fqdn_for_sendmail_and_dovecot(tmp_path: Path) -> None:
    etc = old_etc(tmp_path / "old")
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    out = run_in_seed_machine(tmp_path, [
        ["--config", str(a), "--data", str(tmp_path / "da"), "import", "sendmail", str(etc / "mail")],
        ["--config", str(b), "--data", str(tmp_path / "db"), "import", "dovecot", str(etc / "dovecot")],
    ])
    for path, report in zip((a, b), out, strict=True):
        assert tomllib.loads(path.read_text())["hostname"] == "rocky9-3.hamap.local", report
        line = next(ln for ln in report.splitlines() if ln.strip().startswith("+ hostname ="))
        assert "[this machine]" in line and "the machine's FQDN" in line, report
