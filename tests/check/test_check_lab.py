"""`mailcove check` and `mailcove dns` in the seed's lab (docs/seed-lab.md's set-up).

The lab's commands run in a private mount and network namespace: the standard ports are the
namespace's own, and /etc/hosts is a private copy that names mx1.hamap.local and
autoconfig.hamap.local, as the lab's machines do. There is no DNS (the namespace has no route
out). The check must resolve the host through the system resolver (/etc/hosts first), report
what a lab lacks on purpose (DNS records, TLS) as notes, and exit 0. `mailcove dns` must print only
records for what the lab serves, a DMARC comment that agrees with its record, and refuse names
that are not local domains."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from mailcove_testing import REPO, require_tool, unavailable

sys.path.insert(0, str(REPO / "tests" / "e2e"))

from test_seed_lab import doc_commands


def run_lab(tmp_path: Path) -> Path:
    """The lab's set-up and server in private namespaces; the commands' outputs land in tmp_path."""
    if os.geteuid() != 0:
        unavailable("root (private mount and network namespaces for the lab)")
    unshare, ip = require_tool("unshare"), require_tool("ip")
    hosts = tmp_path / "hosts"
    hosts.write_text(Path("/etc/hosts").read_text() + "\n127.0.0.1 mx1.hamap.local autoconfig.hamap.local\n")
    cfg, data = tmp_path / "mailcove.toml", tmp_path / "data"
    # the doc's LAN (10.0.0.0/24) as it is: the check's relay probe comes from 127.0.0.2, outside it
    lines = [ln for ln in doc_commands() if not ln.startswith("export ")]
    assert lines[-1] == "mailcove serve"
    out = shlex.quote(str(tmp_path))
    script = [
        "set -e",
        f"{ip} link set lo up",
        f"mount --bind {shlex.quote(str(hosts))} /etc/hosts",
        f"export MAILCOVE_CONFIG={shlex.quote(str(cfg))}",
        *[ln.replace("mailcove setup", f"mailcove --data {shlex.quote(str(data))} setup") for ln in lines[:-1]],
        f"mailcove serve > {out}/serve.out 2>&1 &",
        f"for i in $(seq 600); do grep -q '^ready' {out}/serve.out && break; sleep 0.1; done",
        f"rc=0; mailcove check --json --timeout 2 > {out}/check.json || rc=$?; echo $rc > {out}/check.rc",
        f"mailcove check --timeout 2 > {out}/check.txt || true",
        f"mailcove dns hamap.local > {out}/dns.txt",
        f"mailcove dns mx1.hamap.local > {out}/dns-alias.txt",
        f"for d in 'bad domain' example.org; do rc=0; mailcove dns \"$d\" 2>> {out}/refused.txt || rc=$?; "
        f"echo $rc >> {out}/refused.rc; done",
        "kill %1; wait",
        # the same machine, set up as a server (not --lab): /etc/hosts alone does not publish the host
        f"echo It1 | mailcove --config {out}/server.toml --data {out}/server-data setup hamap.local "
        "--hostname mx1.hamap.local --users a --password-stdin > /dev/null",
        f"mailcove --config {out}/server.toml --data {out}/server-data check --skip listeners --skip tls "
        f"--skip relay --skip index --json --timeout 2 > {out}/server.json || true",
    ]
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.pop("MAILCOVE_CONFIG", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH", "")) if p)
    r = subprocess.run([unshare, "--mount", "--net", "--propagation", "private", "bash", "-c", "\n".join(script)],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    serve = (tmp_path / "serve.out").read_text() if (tmp_path / "serve.out").exists() else ""
    assert r.returncode == 0, (r.stdout, r.stderr, serve)
    return tmp_path


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_lab(tmp_path_factory.mktemp("lab"))


def test_check_in_the_lab_has_notes_not_failures(lab: Path) -> None:
    text = (lab / "check.txt").read_text()
    assert (lab / "check.rc").read_text().strip() == "0", text
    report = json.loads((lab / "check.json").read_text())
    assert report["ok"] is True and report["counts"]["fail"] == 0 and report["counts"]["warn"] == 0, text
    assert report["counts"]["note"] > 0, text
    by_subject = {f["subject"]: f for f in report["findings"]}
    # /etc/hosts names the host: resolved, as every program on the machine sees it
    assert by_subject["mx1.hamap.local A/AAAA"]["status"] == "ok", text
    assert "127.0.0.1" in by_subject["mx1.hamap.local A/AAAA"]["detail"]
    assert by_subject["autoconfig.hamap.local CNAME"]["status"] == "ok", text
    # no DNS in the lab: the MX is a note, with the zone line for the day it gets DNS
    mx = by_subject["hamap.local MX"]
    assert mx["status"] == "note" and mx["fix"] == "add to the zone: hamap.local. IN MX 10 mx1.hamap.local.", mx
    assert by_subject["tls"]["status"] == "note", text
    # nothing is asked for that the lab does not serve
    for absent in ("_imaps._tcp", "_pop3s._tcp", "_submissions._tcp", "autodiscover", "mta-sts", "_smtp._tls"):
        assert not [s for s in by_subject if absent in s], (absent, text)
    assert re.search(r"^no problems found, \d+ lab-mode notes$", text, re.M), text


def test_dns_prints_what_the_lab_serves(lab: Path) -> None:
    zone = (lab / "dns.txt").read_text()
    srv = re.findall(r"^_(\w+)\._tcp\.hamap\.local\. IN SRV 0 1 (\d+) mx1\.hamap\.local\.$", zone, re.M)
    assert srv == [("submission", "587"), ("imap", "143"), ("pop3", "110")], zone
    assert "autoconfig.hamap.local. IN CNAME mx1.hamap.local." in zone
    for absent in ("autodiscover", "mta-sts", "_smtp._tls", "_imaps", "_pop3s", "_submissions"):
        assert absent not in zone, (absent, zone)
    # the DMARC comment and the record name the same policy
    comment = re.search(r"^; DMARC.*?\bp=(\w+)", zone, re.M)
    record = re.search(r'^_dmarc\.hamap\.local\. IN TXT "v=DMARC1; p=(\w+);', zone, re.M)
    assert comment and record and comment.group(1) == record.group(1) == "none", zone
    assert "_dmarc.mx1.hamap.local." in (lab / "dns-alias.txt").read_text()  # an alias of a local domain


def test_dns_refuses_names_that_are_not_local_domains(lab: Path) -> None:
    assert (lab / "refused.rc").read_text().split() == ["1", "1"]
    lines = (lab / "refused.txt").read_text().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("mailcove: 'bad domain' is not a local domain (the local domains are hamap.local, "
                               "mx1.hamap.local)"), lines
    assert lines[1].startswith("mailcove: 'example.org' is not a local domain"), lines


def test_outside_the_lab_etc_hosts_alone_does_not_publish_the_host(lab: Path) -> None:
    report = json.loads((lab / "server.json").read_text())
    host = next(f for f in report["findings"] if f["subject"] == "mx1.hamap.local A/AAAA")
    assert host["status"] == "fail", host
    assert "only this machine resolves it (127.0.0.1, /etc/hosts)" in host["detail"], host
    assert report["counts"]["note"] == 0 and report["ok"] is False, report["counts"]
