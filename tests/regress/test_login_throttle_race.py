"""Login throttle races (issue 13, finding 9). The throttle was checked before the password
check and the failure recorded after it, so parallel logins from one fresh address all got past
the limit: of 100 parallel LOGINs 40 were verified, and a right password sent last succeeded.
An attempt is now reserved in the same step as the check. The throttle was also per address
only; an account that fails often, from anywhere, now has every login slowed, but never refused,
so an attacker cannot lock its owner out.

argon2 is heavy in the parallel test (64 MiB, t=3) so that the checks overlap as they do in
production; the account's waits are checked in process, on a FakeClock."""

from __future__ import annotations

import base64
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "smtp"))
from smtp_lab import PASSWORD, Lab

from inprocess import serve_in_process

PARALLEL = 30  # under the verifier's queue bound (2 workers x 16), so none is refused as busy


def _lab(serve_factory, auth: str = "") -> Lab:  # type: ignore[no-untyped-def]
    config = (
        "[auth]\nallow_plaintext = true\nargon2_time_cost = 3\nargon2_memory_kib = 65536\n"
        f"max_failures_per_ip = 10\n{auth}\n"
        '[directory]\npostmaster = "a@hamap.local"\n[queue]\nhold = true\n[mailauth]\nenabled = false\n'
    )
    srv = serve_factory(config, start=False)
    srv.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    lab = Lab(srv, Path(tempfile.gettempdir()) / "unused.sock")
    lab.cli("domain", "add", "hamap.local")
    for u in ("a", "b"):
        lab.cli("user", "add", f"{u}@hamap.local", "--password-stdin", input=f"{PASSWORD}\n")
    srv.start()
    return lab


def _greeted(address: tuple[str, int], source: str, greeting: bytes) -> list[tuple[socket.socket, Any]]:
    """PARALLEL connections from one source address, each past the server's greeting."""
    conns = []
    for _ in range(PARALLEL):
        s = socket.create_connection(address, timeout=60, source_address=(source, 0))
        f = s.makefile("rb")
        assert f.readline().startswith(greeting)
        conns.append((s, f))
    return conns


def test_parallel_logins_cannot_outrun_the_throttle(serve_factory):
    lab = _lab(serve_factory)
    conns = _greeted(lab.srv.address("pop3"), "127.0.15.1", b"+OK")
    for s, f in conns:
        s.sendall(b"USER a@hamap.local\r\n")
        assert f.readline().startswith(b"+OK")
    # Every wrong PASS at once. The server reads them in whatever order, so the right one
    # follows a moment later, while the first wrong ones are still being checked (one argon2
    # check here takes longer than this pause, and two run at a time).
    for i, (s, _) in enumerate(conns[:-1]):
        s.sendall(b"PASS wrong%d\r\n" % i)
    time.sleep(0.1)
    conns[-1][0].sendall(b"PASS %s\r\n" % PASSWORD.encode())
    replies = [f.readline() for _, f in conns]
    for s, _ in conns:
        s.close()
    assert all(r.startswith(b"-ERR") for r in replies[:-1]), replies
    # Ten wrong guesses were checked; the rest, the right one included, were refused unchecked.
    assert replies[-1].startswith(b"-ERR"), replies[-1]


async def test_an_attacked_account_is_slowed_not_locked(tmp_path: Path) -> None:
    """In process, on a FakeClock: guesses at one account from many addresses, none over its own
    limit, slow every login of the account by the wait the throttle asks for, exactly, and never
    refuse its owner; other accounts are not slowed."""
    config = "[auth]\nallow_plaintext = true\nmax_failures_per_ip = 10\n"  # 5 account failures are free
    async with serve_in_process(tmp_path, config) as lab:
        clock = lab.clock

        async def auth(ip: str, user: str, password: str, waits: tuple[float, ...]) -> bytes:
            """AUTH PLAIN from `ip`; the server must wait `waits` in turn (the account's wait
            before the check, the client's delay after a failure) before it answers."""
            c = await lab.smtp(ip)
            assert (await c.cmd(b"EHLO x")).startswith(b"250")
            made = clock.made
            c.send(b"AUTH PLAIN " + base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()) + b"\r\n")
            for wait in waits:
                await clock.waiting(wait, since=made)
                assert c.unread() == b"", f"answered before its {wait} s wait"
                made = clock.made
                await clock.advance(wait)
            reply = await c.reply()
            c.close()
            return reply

        # Guesses from many addresses: each failure is its address's first (0.5 s), and past the
        # account's 5 free failures every login of the account waits first (0.5 s, doubling).
        for i, waits in enumerate([(0.5,)] * 5 + [(0.5, 0.5), (1.0, 0.5)]):
            reply = await auth(f"127.0.16.{i + 1}", "a@hamap.local", f"guess{i}", waits)
            assert reply.startswith(b"535"), reply
        # The owner still gets in (no lock-out), after the account's wait (7 failures: 2 s).
        assert (await auth("127.0.16.100", "a@hamap.local", PASSWORD, (2.0,))).startswith(b"235")
        # Other accounts are not slowed.
        assert (await auth("127.0.16.101", "b@hamap.local", PASSWORD, ())).startswith(b"235")


def test_parallel_right_logins_from_one_address_all_succeed(serve_factory):
    """Thirty sessions behind one address (an office's NAT, imaptest's clients) log in at the same
    moment: their reservations fill the address's allowance of 10, and the logins beyond it wait
    for a check in flight to finish instead of being refused as throttled. IMAP, since POP3 would
    lock the maildrop after the first."""
    lab = _lab(serve_factory)
    conns = _greeted(lab.srv.address("imap"), "127.0.15.2", b"* OK")
    for s, _ in conns:
        s.sendall(b"l LOGIN a@hamap.local %s\r\n" % PASSWORD.encode())
    replies = []
    for _, f in conns:
        line = f.readline()
        while line.startswith(b"* "):
            line = f.readline()
        replies.append(line)
    for s, _ in conns:
        s.close()
    assert all(r.startswith(b"l OK") for r in replies), replies
