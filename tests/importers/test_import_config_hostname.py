"""`import sendmail` / `import dovecot` set `hostname`, so the imported server does not greet as
`localhost`: from sendmail.cf's Dj (or a fully qualified Dw), and the report says which. A
hostname already in the config file is kept."""

from __future__ import annotations

import os
import smtplib
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

from mailcove_testing import REPO, ServerProcess

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
