"""Debian's swaks and msmtp as real SMTP clients: plain, STARTTLS, implicit TLS, AUTH, pipelining,
BDAT (swaks --chunking... where supported). Stored messages are compared byte for byte."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "smtp"))
from smtp_lab import PASSWORD, start_lab, strip_trace

from mailcove_testing import require_tool

# Date and Message-ID present, so msmtp adds none and the bytes it sends are exactly these.
MSG = b"From: a@hamap.local\r\nTo: b@hamap.local\r\nDate: Thu, 1 Jan 2026 00:00:00 +0000\r\n"
MSG += b"Message-ID: <t1@hamap.local>\r\nSubject: tool\r\n\r\nfirst\r\n.leading dot\r\n8bit \xc3\xa9\r\n"


def _run(argv, *, input=None):
    r = subprocess.run(argv, input=input, capture_output=True, timeout=60)
    assert r.returncode == 0, (argv, r.stdout.decode(errors="replace")[-3000:], r.stderr.decode(errors="replace"))
    return r.stdout.decode(errors="replace")


def test_swaks(serve_factory, tmp_path):
    swaks = require_tool("swaks")
    lab = start_lab(serve_factory)
    msg_file = tmp_path / "msg.eml"
    msg_file.write_bytes(MSG)
    host, port = lab.srv.address("smtp")
    base = [swaks, "--server", f"{host}:{port}", "--helo", "swaks.example", "--data", f"@{msg_file}"]
    # Plain MX delivery, pipelined.
    out = _run([*base, "--from", "x@example.org", "--to", "b@hamap.local", "--pipeline"])
    assert "250 2.0.0 OK" in out
    # STARTTLS + AUTH PLAIN, relaying out.
    out = _run([*base, "--from", "a@hamap.local", "--to", "b@hamap.local,far@example.net", "--tls",
                "--auth", "PLAIN", "--auth-user", "a@hamap.local", "--auth-password", PASSWORD])
    assert "235 2.7.0" in out
    # Implicit TLS on submissions + AUTH LOGIN.
    h2, p2 = lab.srv.address("submissions")
    out = _run([swaks, "--server", f"{h2}:{p2}", "--tls-on-connect", "--helo", "swaks.example",
                "--data", f"@{msg_file}", "--from", "a@hamap.local", "--to", "b@hamap.local",
                "--auth", "LOGIN", "--auth-user", "a@hamap.local", "--auth-password", PASSWORD])
    assert "235 2.7.0" in out
    # A refused relay from a client without a RELAY rule (127.0.0.1 may relay by default).
    r = subprocess.run([*base, "--local-interface", "127.0.0.3", "--from", "x@example.org", "--to",
                        "far@example.net"], capture_output=True, timeout=60)
    assert r.returncode != 0 and b"550 5.7.1" in r.stdout
    stored = lab.inbox("b@hamap.local")
    assert len(stored) == 3
    # swaks always sends CRLF before the final dot, even after a message that ends in CRLF (its
    # transcript shows the empty line), so that is what was sent and stored.
    for s in stored:
        assert strip_trace(s)[1] == MSG + b"\r\n"
    [(item, body)] = lab.queue()
    assert [x.address for x in item.recipients] == ["far@example.net"]
    assert strip_trace(body)[1] == MSG + b"\r\n"


def test_msmtp(serve_factory, tmp_path):
    msmtp = require_tool("msmtp")
    lab = start_lab(serve_factory)
    host, port = lab.srv.address("submission")
    h2, p2 = lab.srv.address("submissions")
    common = ["--auth=on", "--user=a@hamap.local", f"--passwordeval=echo {PASSWORD}", "--tls-certcheck=off",
              "--from=a@hamap.local", "--domain=msmtp.example"]
    _run([msmtp, f"--host={host}", f"--port={port}", "--tls=on", "--tls-starttls=on", *common, "--",
          "b@hamap.local"], input=MSG)
    _run([msmtp, f"--host={h2}", f"--port={p2}", "--tls=on", "--tls-starttls=off", *common, "--",
          "b@hamap.local", "remote@example.net"], input=MSG)
    # Without TLS, no AUTH is offered on submission: msmtp refuses to send the password.
    r = subprocess.run([msmtp, f"--host={host}", f"--port={port}", "--tls=off", *common[:-2],
                        "--from=a@hamap.local", "--", "b@hamap.local"], input=MSG, capture_output=True, timeout=60)
    assert r.returncode != 0
    stored = lab.inbox("b@hamap.local")
    assert len(stored) == 2
    for s in stored:
        assert strip_trace(s)[1] == MSG
    assert len(lab.queue()) == 1
