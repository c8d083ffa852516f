"""SRS forgery (issue 13, finding 4). A bounce to one of our SRS addresses is sent on to the
original sender without relay permission, so a forged SRS address was an open relay to any
chosen address: the hash was 4 base64 characters compared without case (about 2.1 million
values, found in minutes by pipelined RCPTs with no throttle), any sender and any number of
recipients were accepted, and the per-IP sending rate did not apply.

Now the hash is 8 base32 characters (40 bits, one case), only a bounce (MAIL FROM:<>) with the
SRS address as its one recipient is sent on, a wrong hash counts as a failed login in the shared
throttle, and a bounce counts in the per-IP sending rate. A real bounce still reaches the
original sender, here through a second mailcove on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import hmac
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "smtp"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "queue"))
from outbound_testing import cli, wait_for
from smtp_lab import Lab, RawClient, start_lab

from mailcove.queue import srs

SRS_DOMAIN = "mx1.hamap.local"  # the lab's hostname; [queue] srs_domain is unset
BOUNCER = "127.0.0.9"  # a remote MTA: may not relay through the lab
BOUNCE = b"From: MAILER-DAEMON@mx.c.test\r\nSubject: Undelivered Mail\r\n\r\nbounced\r\n.\r\n"


def _lab(serve_factory, **kwargs) -> tuple[Lab, bytes]:  # type: ignore[no-untyped-def]
    keep: dict[str, bytes] = {}

    def setup(lab: Lab) -> None:
        keep["secret"] = srs.load_secret(lab.srv.data_dir / "srs.key")  # as the queue makes it

    lab = start_lab(serve_factory, setup=setup, smtp=kwargs.pop("smtp", "max_errors = 100"), **kwargs)
    return lab, keep["secret"]


def _old_style(secret: bytes, original: str) -> str:
    """An address with the hash as it was before the fix: what a guesser could find in 2^21 tries."""
    local, _, domain = original.rpartition("@")
    d = int(time.time() // 86400) % 1024
    b32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    stamp = b32[d >> 5] + b32[d & 31]
    mac = hmac.new(secret, (stamp + domain + local).lower().encode(), hashlib.sha1)
    return f"SRS0={base64.b64encode(mac.digest()).decode()[:4]}={stamp}={domain}={local}@{SRS_DOMAIN}"


def _bounce_client(lab: Lab, source: str = BOUNCER) -> RawClient:
    c = lab.raw(source=source)
    assert c.cmd(b"EHLO mx.c.test").startswith(b"250")
    return c


def test_a_guessed_or_forged_hash_is_refused(serve_factory):
    lab, secret = _lab(serve_factory)
    target = "victim@example.net"
    good = srs.forward(target, SRS_DOMAIN, secret)
    h = good.split("=")[1]
    forged = [
        _old_style(secret, target),  # the right answer in the old 4-character space
        _old_style(secret, target).lower(),
        good.replace(h, "AAAAAAAA", 1),  # a wrong guess in the new space
        good.replace(h, h[:4], 1),
        good.replace(h, h + "A", 1),
        good.replace("=example.net=victim@", "=example.net=other@", 1),  # a valid hash for another target
    ]
    c = _bounce_client(lab)
    for addr in forged:
        assert c.cmd(b"MAIL FROM:<>").startswith(b"250")
        reply = c.cmd(b"RCPT TO:<%s>" % addr.encode())
        assert reply.startswith(b"550 5.1.1"), (addr, reply)
        c.cmd(b"RSET")
    c.close()
    assert lab.queue() == []


def test_only_a_bounce_is_sent_on(serve_factory):
    """An SRS address with a sender that is not null: refused, not relayed (nor reversed)."""
    lab, secret = _lab(serve_factory)
    good = srs.forward("victim@example.net", SRS_DOMAIN, secret)
    c = _bounce_client(lab)
    for sender in (b"<spammer@example.org>", b"<postmaster@example.org>", b"<a@hamap.local>"):
        assert c.cmd(b"MAIL FROM:" + sender).startswith(b"250")
        assert c.cmd(b"RCPT TO:<%s>" % good.encode()).startswith(b"550 5.7.1")
        c.cmd(b"RSET")
    c.close()
    assert lab.queue() == []


def test_a_bounce_has_one_recipient(serve_factory):
    lab, secret = _lab(serve_factory)
    one = srs.forward("victim@example.net", SRS_DOMAIN, secret)
    two = srs.forward("other@example.com", SRS_DOMAIN, secret)
    c = _bounce_client(lab)
    assert c.cmd(b"MAIL FROM:<>").startswith(b"250")
    assert c.cmd(b"RCPT TO:<%s>" % one.encode()).startswith(b"250")
    assert c.cmd(b"RCPT TO:<%s>" % two.encode()).startswith(b"452 4.5.3")
    assert c.cmd(b"RCPT TO:<a@hamap.local>").startswith(b"452 4.5.3")
    assert c.cmd(b"DATA").startswith(b"354")
    c.send(BOUNCE)
    assert c.reply().startswith(b"250")
    # A local recipient first, then the SRS address: refused as well.
    assert c.cmd(b"MAIL FROM:<>").startswith(b"250")
    assert c.cmd(b"RCPT TO:<a@hamap.local>").startswith(b"250")
    assert c.cmd(b"RCPT TO:<%s>" % two.encode()).startswith(b"452 4.5.3")
    c.cmd(b"QUIT")
    c.close()
    [(item, _)] = lab.queue()
    assert item.envelope.sender == "" and [r.address for r in item.recipients] == ["victim@example.net"]


def test_bounces_count_in_the_per_ip_rate(serve_factory):
    lab, secret = _lab(serve_factory, smtp="max_errors = 100\nsend_messages_per_hour = 2")
    c = _bounce_client(lab)
    for i in range(3):
        addr = srs.forward(f"v{i}@example.net", SRS_DOMAIN, secret)
        assert c.cmd(b"MAIL FROM:<>").startswith(b"250")
        reply = c.cmd(b"RCPT TO:<%s>" % addr.encode())
        if i < 2:
            assert reply.startswith(b"250"), reply
            assert c.cmd(b"DATA").startswith(b"354")
            c.send(BOUNCE)
            assert c.reply().startswith(b"250")
        else:
            assert reply.startswith(b"451 4.7.1"), reply
    c.close()
    assert len(lab.queue()) == 2


def test_repeated_failures_are_throttled(serve_factory):
    """Three wrong hashes from one address, and that address gets 450 for SRS addresses, even a
    right one, and 454 for AUTH (the throttle is the one logins use); another address is not
    affected."""
    lab, secret = _lab(serve_factory, auth="allow_plaintext = true\nmax_failures_per_ip = 3")
    good = srs.forward("victim@example.net", SRS_DOMAIN, secret)
    h = good.split("=")[1]
    c = _bounce_client(lab)
    started = time.monotonic()
    for guess in ("AAAAAAAA", "BBBBBBBB", "CCCCCCCC"):
        assert c.cmd(b"MAIL FROM:<>").startswith(b"250")
        assert c.cmd(b"RCPT TO:<%s>" % good.replace(h, guess, 1).encode()).startswith(b"550 5.1.1")
        c.cmd(b"RSET")
    assert time.monotonic() - started > 1.0  # each failure answered later than the one before
    assert c.cmd(b"MAIL FROM:<>").startswith(b"250")
    assert c.cmd(b"RCPT TO:<%s>" % good.encode()).startswith(b"450 4.7.1")
    c.cmd(b"RSET")
    assert c.cmd(b"AUTH PLAIN " + base64.b64encode(b"\0a@hamap.local\0It1")).startswith(b"454 4.7.0")
    c.close()
    other = _bounce_client(lab, "127.0.0.10")
    assert other.cmd(b"MAIL FROM:<>").startswith(b"250")
    assert other.cmd(b"RCPT TO:<%s>" % good.encode()).startswith(b"250")
    other.close()


def test_a_real_bounce_reaches_the_original_sender(serve_factory):
    """End to end: mx1.hamap.local forwarded mail of x@b.test (SRS sender); the bounce comes back
    from a host that may not relay and is sent on to x@b.test's own server, a second mailcove
    reached through [transport]. An MTA that lower-cased the address on the way changes nothing."""
    b = serve_factory('hostname = "mx.b.test"\n[auth]\nargon2_time_cost = 1\nargon2_memory_kib = 1024\n'
                      '[directory]\npostmaster = "x@b.test"\n[mailauth]\nenabled = false\n', start=False)
    b.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    cli(b, "domain", "add", "b.test")
    cli(b, "user", "add", "x@b.test", "--password-stdin", input="It1\n")
    b.start()
    lab, secret = _lab(serve_factory, extra=(
        "[queue]\nretry_minutes = 0.01\npoll_interval = 0.1\nconnect_timeout = 5.0\n"
        f'[transport]\n"b.test" = "127.0.0.1:{b.port("smtp")}"\n'))
    address = srs.forward("x@b.test", SRS_DOMAIN, secret)
    c = _bounce_client(lab)
    for rcpt in (address, address.lower()):
        assert c.cmd(b"MAIL FROM:<>").startswith(b"250")
        assert c.cmd(b"RCPT TO:<%s>" % rcpt.encode()).startswith(b"250")
        assert c.cmd(b"DATA").startswith(b"354")
        c.send(BOUNCE)
        assert c.reply().startswith(b"250")
    c.close()
    got = wait_for(lambda: len(b.read_mailbox("x@b.test")) == 2 and b.read_mailbox("x@b.test"),
                   what="both bounces at the original sender")
    for m in got:
        assert m.startswith(b"Return-Path: <>\r\n") and m.endswith(b"bounced\r\n")
