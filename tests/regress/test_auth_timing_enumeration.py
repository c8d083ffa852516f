"""User enumeration by timing (issue 13, finding 8). A password longer than the 4,096 bytes any
account may have was refused at once for a known user, while an unknown user still cost the
dummy argon2 check, so the answer time told which names exist (over SMTP AUTH and POP3, and IMAP
shares the code). An empty or over-long password is now refused before the user is looked up.

The server here hashes with argon2 parameters heavy enough (64 MiB) that one check is plainly
measurable; each attempt comes from its own 127.0.0.x address so the login throttle's delay is
the same for all of them."""

from __future__ import annotations

import base64
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "smtp"))
from smtp_lab import PASSWORD, Lab, RawClient

LONG = "x" * 4097
ROUNDS = 3
CONFIG = """[auth]
allow_plaintext = true
argon2_time_cost = 3
argon2_memory_kib = 65536
[directory]
postmaster = "a@hamap.local"
[queue]
hold = true
[mailauth]
enabled = false
"""


def _lab(serve_factory) -> Lab:  # type: ignore[no-untyped-def]
    srv = serve_factory(CONFIG, start=False)
    srv.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    lab = Lab(srv, Path(tempfile.gettempdir()) / "unused.sock")
    lab.cli("domain", "add", "hamap.local")
    lab.cli("user", "add", "a@hamap.local", "--password-stdin", input=f"{PASSWORD}\n")
    srv.start()
    return lab


class _Ips:
    def __init__(self) -> None:
        self.n = 0

    def next(self) -> str:
        self.n += 1
        return f"127.0.13.{self.n}"


def _smtp(lab: Lab, ip: str, user: str, password: str) -> tuple[float, bytes]:
    host, port = lab.srv.address("smtp")
    c = RawClient(host, port, ip)
    assert c.cmd(b"EHLO x").startswith(b"250")
    assert c.cmd(b"AUTH PLAIN").startswith(b"334")
    token = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode())
    t0 = time.perf_counter()
    reply = c.cmd(token)
    elapsed = time.perf_counter() - t0
    c.close()
    return elapsed, reply


def _pop3(lab: Lab, ip: str, user: str, password: str) -> tuple[float, bytes]:
    host, port = lab.srv.address("pop3")
    s = socket.create_connection((host, port), timeout=20, source_address=(ip, 0))
    f = s.makefile("rb")
    assert f.readline().startswith(b"+OK")
    s.sendall(f"USER {user}\r\n".encode())
    assert f.readline().startswith(b"+OK")
    t0 = time.perf_counter()
    s.sendall(f"PASS {password}\r\n".encode())
    reply = f.readline()
    elapsed = time.perf_counter() - t0
    s.close()
    return elapsed, reply


def test_known_and_unknown_users_answer_alike(serve_factory):
    lab = _lab(serve_factory)
    ips = _Ips()
    # What one argon2 check costs here: the first (uncached) correct login.
    cost, reply = _smtp(lab, ips.next(), "a@hamap.local", PASSWORD)
    assert reply.startswith(b"235"), reply
    assert cost > 0.03, f"argon2 too cheap on this machine ({cost:.3f}s) for the comparison to mean anything"
    for probe in (_smtp, _pop3):
        known, unknown = [], []
        for _ in range(ROUNDS):
            for user, out in (("a@hamap.local", known), ("nobody@hamap.local", unknown)):
                elapsed, reply = probe(lab, ips.next(), user, LONG)
                assert reply[:1] in (b"5", b"-"), reply
                out.append(elapsed)
        gap = statistics.median(unknown) - statistics.median(known)
        assert abs(gap) < cost / 2, (probe.__name__, f"argon2 {cost:.3f}s", known, unknown)
