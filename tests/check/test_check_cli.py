"""`mailcove check` against real servers: all good (listeners, certificate, every record of
`mailcove dns` served by dnsmasq, relay refused) exits 0; then DNS records missing, an open relay,
a server that died, an expired and a mismatched certificate each print the problem and its fix
and exit 1."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "queue"))

from outbound_testing import Dnsmasq

from mailcove_testing import REPO, ServerProcess, run_async

DOMAIN = "hamap.test"
HOST = "mx1.hamap.test"


def cli(srv: ServerProcess, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH", "")) if p)
    env.pop("MAILCOVE_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "mailcove", "--config", str(srv.config_path), "--data",
                           str(srv.data_dir), *args], input=input, capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=120)


def ok(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 0, (r.args, r.stdout, r.stderr)
    return r.stdout


def serve_zone(dns: Dnsmasq, zone: str) -> None:
    """`mailcove dns` output (zone-file lines) as dnsmasq options: what an admin pastes."""
    for line in zone.splitlines():
        line = line.split(" ; ", 1)[0].strip()
        if not line or line.startswith(";"):
            continue
        name, _in, rtype, rdata = line.split(None, 3)
        name = name.rstrip(".")
        if rtype == "MX":
            pref, target = rdata.split()
            dns.mx(name, target.rstrip("."), int(pref))
        elif rtype in ("A", "AAAA"):
            dns.host(name, rdata)
        elif rtype == "TXT":
            dns.txt(name, *shlex.split(rdata.strip("() ")))
        elif rtype == "SRV":
            prio, weight, port, target = rdata.split()
            dns.args.append(f"--srv-host={name},{target.rstrip('.')},{port},{prio},{weight}")
        elif rtype == "CNAME":
            dns.args.append(f"--cname={name},{rdata.rstrip('.')}")
        else:
            raise AssertionError(line)


def make_server(serve_factory: Any, config: str = "", dns_server: str = "127.0.0.1:9") -> ServerProcess:
    cfg = f'hostname = "{HOST}"\n[dns]\nnameservers = ["{dns_server}"]\ntimeout = 3.0\n' + config
    srv: ServerProcess = serve_factory(cfg, start=False)
    srv.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    add_domain(srv, DOMAIN)
    return srv


def add_domain(srv: ServerProcess, domain: str) -> None:
    """`mailcove domain add` through its admin use case in this process (a CLI start-up costs
    seconds on a loaded machine; the check commands under test still run as real CLIs)."""
    from mailcove.admin import domains
    from mailcove.admin.context import open_admin
    from mailcove.config import load_settings

    async def go() -> None:
        async with open_admin(load_settings(srv.config_path, data_dir=str(srv.data_dir))) as ctx:
            await domains.add_domain(ctx, domain)

    run_async(go())


def test_all_good_then_dns_missing_open_relay_and_a_dead_server(serve_factory: Any, tmp_path: Path) -> None:
    srv = make_server(serve_factory)
    ok(cli(srv, "dkim", "generate", DOMAIN))
    srv.start()
    # the records for what the running server serves (its listeners, on the ports they are bound on)
    zone = ok(cli(srv, "dns", DOMAIN, "--address", "127.0.0.1"))
    dns = Dnsmasq(tmp_path)
    serve_zone(dns, zone)
    dns.mx("broken.test", HOST)  # a second domain with only its MX published
    dns.start()
    try:
        srv.config_path.write_text(srv.config_path.read_text().replace("127.0.0.1:9", dns.server))

        r = cli(srv, "check", "--timeout", "3")
        out = ok(r)
        assert out.strip().splitlines()[-1].startswith("no problems found"), out
        # the fixture starts the server with --listen overrides: the check says they differ from the file
        assert re.search(r"WARN smtp \(configured\): configured on \*:\d+, but running on 127\.0\.0\.1:\d+", out), out
        for listener in ("smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s", "http"):
            assert re.search(rf"^  ok   {listener} 127\.0\.0\.1:{srv.port(listener)}: ", out, re.M), (listener, out)
        assert f"ok   {DOMAIN} MX: MX {HOST}" in out
        assert "mailcove._domainkey.hamap.test TXT: public key matches" in out
        assert "_mta-sts.hamap.test TXT" in out and "autoconfig.hamap.test CNAME: -> mx1.hamap.test" in out
        assert re.search(r"ok   open relay via 127\.0\.0\.1:\d+ from 127\.0\.0\.2: refused at RCPT: 55\d", out), out
        report = json.loads(ok(cli(srv, "check", "--json", "--timeout", "3")))
        assert report["ok"] is True and report["counts"]["fail"] == 0
        assert {f["check"] for f in report["findings"]} == {"listeners", "tls", "dns", "relay", "index"}
        assert "ok   full-text index: 0 of 0 message bodies indexed (100.0%), 0 waiting" in out, out

        # records missing from the zone
        r = cli(srv, "check", "--domain", "broken.test", "--skip", "listeners", "--skip", "tls", "--skip", "relay")
        assert r.returncode == 1, r.stdout
        assert "ok   broken.test MX" in r.stdout
        assert "FAIL broken.test TXT: no v=spf1 record" in r.stdout or "FAIL broken.test TXT:" in r.stdout
        assert 'fix: add to the zone: broken.test. IN TXT "v=spf1 mx -all"' in r.stdout
        assert 'fix: add to the zone: _dmarc.broken.test. IN TXT "v=DMARC1; p=none' in r.stdout
        assert "WARN _imaps._tcp.broken.test SRV" in r.stdout
        assert r.stdout.strip().splitlines()[-1].startswith("2 problems found")

        # an open relay: every loopback address may relay
        ok(cli(srv, "relay", "allow", "127.0.0.0/8"))
        time.sleep(1.0)  # the server's directory reloads within [directory] reload_interval
        r = cli(srv, "check", "--skip", "dns", "--timeout", "3")
        assert r.returncode == 1, r.stdout
        assert "FAIL open relay via 127.0.0.1:" in r.stdout and "OPEN RELAY: accepted mail from" in r.stdout
        assert "Connect:127.0.0.0/8 RELAY" in r.stdout and "mailcove relay del 127.0.0.0/8" in r.stdout
        ok(cli(srv, "relay", "del", "127.0.0.0/8"))
        time.sleep(1.0)
        ok(cli(srv, "check", "--skip", "dns", "--skip", "tls", "--skip", "listeners", "--timeout", "3"))

        # the server dies (kill -9 leaves its serve.json behind): every listener is down
        srv.kill()
        r = cli(srv, "check", "--skip", "dns", "--timeout", "3")
        assert r.returncode == 1, r.stdout
        assert re.search(r"FAIL server: .*serve\.json names pid \d+, which is not running", r.stdout)
        assert re.search(rf"FAIL imap 127\.0\.0\.1:{srv.port('imap')}: connection to .* refused", r.stdout)
        assert "fix: start mailcove" in r.stdout
    finally:
        dns.stop()


def write_cert(path: Path, key_path: Path, name: str, not_before: dt.datetime, not_after: dt.datetime) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)


def test_expired_and_mismatched_certificates(serve_factory: Any, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    now = dt.datetime.now(dt.UTC)
    write_cert(cert, key, HOST, now - dt.timedelta(days=400), now - dt.timedelta(days=3))
    srv = make_server(serve_factory, f'[tls]\ncert = "{cert}"\nkey = "{key}"\n')
    srv.start()
    r = cli(srv, "check", "--skip", "dns", "--skip", "relay", "--timeout", "3")
    assert r.returncode == 1, r.stdout
    assert re.search(r"FAIL certificate: served on imaps 127\.0\.0\.1:\d+: EXPIRED on \d{4}-\d\d-\d\d \(3 days ago\)",
                     r.stdout), r.stdout
    assert f"kill -HUP {srv.pid}" in r.stdout
    assert "ok   certificate name: names mx1.hamap.test" in r.stdout

    # replaced by a valid certificate for another name, picked up by SIGHUP
    write_cert(cert, key, "wrong.example", now - dt.timedelta(days=1), now + dt.timedelta(days=10))
    srv.reload()
    deadline = time.monotonic() + 15
    while True:
        r = cli(srv, "check", "--skip", "dns", "--skip", "relay", "--skip", "listeners", "--timeout", "3")
        if "wrong.example" in r.stdout or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert r.returncode == 1, r.stdout
    assert "FAIL certificate name: the certificate names wrong.example, not mx1.hamap.test" in r.stdout
    assert "certbot certonly --standalone -d mx1.hamap.test" in r.stdout
    assert re.search(r"WARN certificate: .*expires \d{4}-\d\d-\d\d, in (9|10) days", r.stdout), r.stdout


@pytest.mark.parametrize("flag", ["--json"])
def test_no_server_running(serve_factory: Any, flag: str) -> None:
    srv = make_server(serve_factory)
    r = cli(srv, "check", "--skip", "dns", flag)
    assert r.returncode == 1
    report = json.loads(r.stdout)
    first = report["findings"][0]
    assert first["status"] == "fail" and "not running" in first["detail"] and "mailcove serve" in first["fix"]
