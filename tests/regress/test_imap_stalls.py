"""Issue 13's IMAP stalls (findings 1, 3 and 6): one client's LIST pattern, SEARCH or pipelined
deflate must not hold the event loop. Each attack runs while a probe on another connection
measures how long a NOOP takes; the probe must stay under 1 s (the fairness harness with the
250 ms p99 rule is issue 13's part 2, not this file)."""

# ruff: noqa: F811 - the fixtures are imported from imap_lab and then requested by name
from __future__ import annotations

import sys
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "imap"))
from imap_lab import imap, imap_factory, imap_module, message  # noqa: F401

from mailcove.proto.imap.client import Tagged

PROBE_MAX = 1.0


def _while_probing(imap, attack: Callable[[], None]) -> float:
    """Run `attack` while another session sends NOOPs; return the slowest NOOP's seconds."""
    probe = imap.client(imap.b)
    worst = 0.0
    done = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            attack()
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)
        finally:
            done.set()

    t = threading.Thread(target=run)
    t.start()
    deadline = time.monotonic() + 60
    while not done.is_set() and time.monotonic() < deadline:
        start = time.monotonic()
        probe.ok("NOOP")
        worst = max(worst, time.monotonic() - start)
        time.sleep(0.02)
    t.join(60)
    assert not t.is_alive(), "the attack did not finish within 60 s"
    if errors:
        raise errors[0]
    return worst


def test_list_pattern_of_many_wildcards_is_linear(imap):
    c = imap.client()
    for i in range(20):
        c.ok(f"CREATE {'z' * 40}{i}")
    patterns = ['"' + "*" * 40 + 'z"', '"' + "*" * 5000 + 'z"', '"' + "*a" * 2000 + 'b"', '"' + "%*" * 3000 + '"']

    def attack() -> None:
        for p in patterns:
            start = time.monotonic()
            c.ok(f'LIST "" {p}')
            assert time.monotonic() - start < PROBE_MAX, p[:20]

    assert _while_probing(imap, attack) < PROBE_MAX


def test_search_of_many_text_keys_on_a_1mb_header(imap):
    pad = "X-Pad: " + "y" * 998 + "\r\n"
    big = message("big", extra=pad * 1000)  # about 1 MB of header
    imap.deliver(big)
    c = imap.client(select="INBOX")
    command = "SEARCH " + " ".join(["TEXT x-pad"] * 300)

    def attack() -> None:
        start = time.monotonic()
        untagged = c.ok(command)
        assert next(r.data for r in untagged if r.kind == "SEARCH")["numbers"] == [1]
        assert time.monotonic() - start < 10

    assert _while_probing(imap, attack) < PROBE_MAX


def test_pipelined_deflate_after_compress_is_inflated_in_bounded_steps(imap):
    c = imap.client()
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    noops = b"n NOOP\r\n" * 200_000 + b"last NOOP\r\n"  # 1.6 MB inflated, a few KB deflated
    packed = deflate.compress(noops) + deflate.flush(zlib.Z_SYNC_FLUSH)
    assert len(packed) < 64 * 1024

    def attack() -> None:
        c.send(b"z COMPRESS DEFLATE\r\n" + packed)
        c.sock.settimeout(60)
        r = c.read_one(60)
        assert isinstance(r, Tagged) and r.status == "OK", r
        # The answers now come compressed; read until the last NOOP's tag has gone by.
        inflate = zlib.decompressobj(-15)
        seen = b""
        deadline = time.monotonic() + 60
        while b"last OK" not in seen and time.monotonic() < deadline:
            data = c.sock.recv(1 << 20)
            if not data:
                break
            seen = (seen + inflate.decompress(data))[-4096:]
        assert b"last OK" in seen

    assert _while_probing(imap, attack) < PROBE_MAX


def test_mailboxes_per_user_are_limited(imap_factory):
    """Every LIST walks all of a user's mailboxes: CREATE stops at [imap] max_mailboxes."""
    box = imap_factory("[auth]\nallow_plaintext = true\n[imap]\nmax_mailboxes = 8\n", name="limit")
    c = box.client()
    c.ok("CREATE one")
    c.ok("CREATE two")  # with INBOX, Sent, Drafts, Trash, Junk and Archive: 8
    _, done = c.cmd("CREATE three")
    assert (done.status, done.code) == ("NO", "LIMIT")
    c.ok("DELETE two")
    c.ok("CREATE three")
