"""Issue 13 part 3: every limit of docs/security.md's table has a test. This file holds the ones
that had none elsewhere, grouped per protocol; each runs a real `mailcove serve` over 127.0.0.1
with the limit shrunk by configuration where that makes it quick, and would fail if the limit
were removed. (The other rows name their tests in docs/security.md.)"""

# ruff: noqa: F811 - the fixtures are imported from imap_lab and then requested by name
from __future__ import annotations

import asyncio
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "smtp"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "imap"))
from imap_lab import Client, imap, imap_factory, imap_module  # noqa: F401
from smtp_lab import start_lab

from inprocess import serve_in_process
from mailcove.proto.imap.client import Tagged, Untagged
from mailcove_testing import ServerProcess

# --- SMTP ----------------------------------------------------------------------------------------


def test_smtp_mail_rcpt_and_auth_lines_have_room_for_their_parameters(serve_factory) -> None:
    """[smtp] max_line_length (512 with CRLF) is for commands; MAIL and RCPT lines get 1000 more
    for DSN and SIZE parameters (RFC 3461 section 5) and AUTH lines 12288 (RFC 4954 section 4)."""
    lab = start_lab(serve_factory, auth="allow_plaintext = true")
    c = lab.raw()
    c.cmd(b"EHLO x")
    head = b"MAIL FROM:<x@example.org> ENVID="
    at_limit = head + b"a" * (1512 - 2 - len(head))
    assert not c.cmd(at_limit).startswith(b"500"), "a 1,512-byte MAIL line was refused as too long"
    c.cmd(b"RSET")
    assert c.cmd(at_limit + b"a") == b"500 5.5.2 Line too long\r\n"
    c.cmd(b"MAIL FROM:<x@example.org>")
    head = b"RCPT TO:<a@hamap.local> ORCPT=rfc822;"
    assert not c.cmd(head + b"a" * (1512 - 2 - len(head))).startswith(b"500")
    assert c.cmd(head + b"a" * (1513 - 2 - len(head))) == b"500 5.5.2 Line too long\r\n"
    c.cmd(b"RSET")
    head = b"AUTH PLAIN "
    assert c.cmd(head + b"A" * (12288 - 2 - len(head))).startswith(b"501 5.5.2 Cannot decode")
    assert c.cmd(head + b"A" * (12289 - 2 - len(head))) == b"500 5.5.2 Line too long\r\n"
    # and the SASL response line after a 334 challenge
    assert c.cmd(b"AUTH PLAIN").startswith(b"334")
    assert c.cmd(b"A" * 12287) == b"500 5.5.2 Line too long\r\n"
    assert c.cmd(b"NOOP").startswith(b"250")


def test_smtp_address_lengths(serve_factory) -> None:
    """RFC 5321 4.5.3.1: local part 64 octets, domain 255, path 256 (proto/smtp/params.py)."""
    lab = start_lab(serve_factory)
    c = lab.raw()
    c.cmd(b"EHLO x")
    assert c.cmd(b"MAIL FROM:<" + b"l" * 64 + b"@example.org>").startswith(b"250")
    c.cmd(b"RSET")
    assert c.cmd(b"MAIL FROM:<" + b"l" * 65 + b"@example.org>") == b"501 5.1.7 Bad sender address syntax\r\n"
    long_domain = b".".join([b"d" * 60] * 4) + b".org"  # 247 octets: a path of 1 + 1 + 247 + 2 would fit
    assert c.cmd(b"MAIL FROM:<" + b"l" * 10 + b"@" + long_domain + b">").startswith(b"501 5.1.7")  # path > 256
    assert c.cmd(b"MAIL FROM:<x@example.org>").startswith(b"250")
    assert c.cmd(b"RCPT TO:<" + b"l" * 65 + b"@hamap.local>") == b"501 5.1.3 Bad recipient address syntax\r\n"


def _tls_cut(addr: tuple[str, int], *, starttls: bytes | None = None) -> float:
    """Start a TLS handshake and stall in it (a ClientHello record header, one byte every
    0.2 s); return the seconds until the server closed the connection."""
    s = socket.create_connection(addr, timeout=20)
    if starttls is not None:
        f = s.makefile("rb")
        f.readline()
        s.sendall(starttls)
        while True:
            line = f.readline()
            if not line or line[3:4] == b" " or line.startswith((b"+OK", b". OK")):
                break
    start = time.monotonic()
    s.setblocking(False)
    for byte in b"\x16\x03\x01\x02\x00" + bytes(60):
        try:
            s.send(bytes([byte]))
            if s.recv(4096) == b"":
                break
        except BlockingIOError:
            pass
        except OSError:
            break
        time.sleep(0.2)
        if time.monotonic() - start > 15:
            raise AssertionError("still in the TLS handshake after 15 s")
    s.close()
    return time.monotonic() - start


def test_tls_handshake_deadline(serve_factory: Callable[..., ServerProcess]) -> None:
    """[tls] handshake_timeout: implicit TLS and STARTTLS alike, however slowly the bytes come."""
    from concurrent.futures import ThreadPoolExecutor

    srv = serve_factory("[tls]\nhandshake_timeout = 1\n")
    cases = {name: (name, None) for name in ("submissions", "imaps", "pop3s", "https")}
    cases.update({"smtp STARTTLS": ("smtp", b"EHLO x\r\nSTARTTLS\r\n"), "imap STARTTLS": ("imap", b". STARTTLS\r\n"),
                  "pop3 STLS": ("pop3", b"STLS\r\n")})
    with ThreadPoolExecutor(len(cases)) as pool:
        took = dict(zip(cases, pool.map(lambda c: _tls_cut(srv.address(c[0]), starttls=c[1]), cases.values()),
                        strict=True))
    assert all(t < 5 for t in took.values()), took


def test_default_quotas_for_new_users(serve_factory) -> None:
    """[store] default_quota_messages / default_quota_bytes: what `mailcove user add` gives an
    account without --messages / --bytes. Past them: 452 4.2.2 (RCPT, or after the data)."""
    lab = start_lab(serve_factory, extra="[store]\ndefault_quota_messages = 1\ndefault_quota_bytes = 5000\n")
    c = lab.raw()
    c.cmd(b"EHLO x")
    c.send(b"MAIL FROM:<x@example.org>\r\nRCPT TO:<a@hamap.local>\r\nDATA\r\nSubject: 1\r\n\r\nx\r\n.\r\n")
    assert [r[:3] for r in c.replies(4)] == [b"250", b"250", b"354", b"250"]
    assert c.cmd(b"MAIL FROM:<x@example.org>").startswith(b"250")
    assert c.cmd(b"RCPT TO:<a@hamap.local>") == b"452 4.2.2 <a@hamap.local>: Mailbox full\r\n"
    c.cmd(b"RSET")
    # b's messages are not counted yet, but 6,000 bytes pass its 5,000
    c.send(b"MAIL FROM:<x@example.org>\r\nRCPT TO:<b@hamap.local>\r\nDATA\r\nSubject: 2\r\n\r\n"
           + b"y" * 6000 + b"\r\n.\r\n")
    assert [r[:9] for r in c.replies(4)] == [b"250 2.1.0", b"250 2.1.5", b"354 End d", b"452 4.2.2"]
    assert len(lab.inbox("a@hamap.local")) == 1 and lab.inbox("b@hamap.local") == []


# --- IMAP ----------------------------------------------------------------------------------------


def test_imap_appendlimit_setting(imap_factory) -> None:
    box = imap_factory("[auth]\nallow_plaintext = true\n[imap]\nappendlimit = 1000\n", name="appendlimit")
    c = box.client()
    caps = c.ok("CAPABILITY")[0].data
    assert "APPENDLIMIT=1000" in caps
    c.send(b"a1 APPEND INBOX {1001}\r\n")
    r = c.read_one()
    assert isinstance(r, Tagged) and (r.status, r.code) == ("NO", "TOOBIG"), r
    assert r.text == "Message larger than the limit of 1000 bytes"
    msg = b"Subject: x\r\n\r\n" + b"z" * (1000 - 14)
    c.send(b"a2 APPEND INBOX {1000}\r\n")
    c.continuation()
    c.send(msg + b"\r\n")
    _, done = c.until("a2")
    assert done.status == "OK", done


def test_imap_max_line_setting(imap_factory) -> None:
    """[imap] max_line: a longer command line ends the session (its framing is lost)."""
    box = imap_factory("[auth]\nallow_plaintext = true\n[imap]\nmax_line = 1000\n", name="maxline")
    c = box.client(select="INBOX")
    c.ok(b'SEARCH TEXT "' + b"q" * 900 + b'"')  # under the limit: fine
    c.send(b"t9 NOOP" + b" " * 1000 + b"\r\n")
    seen = c.poll(3)
    assert any(isinstance(r, Untagged) and r.kind == "BYE" and r.text == "Line longer than 1000 bytes"
               for r in seen), seen


def test_imap_command_after_login_is_at_most_1_mib(imap) -> None:
    """MAX_COMMAND (imap/session.py): a command's lines and literals together, APPEND excepted."""
    c = imap.client(select="INBOX")
    c.send(b"t1 SEARCH TEXT {1048576}\r\n")
    r = c.read_one()
    assert isinstance(r, Tagged) and (r.status, r.code, r.text) == ("BAD", "TOOBIG", "Literal too big"), r
    c.send(b"t2 SEARCH TEXT {1000000}\r\n")
    c.continuation()
    c.send(b"q" * 1_000_000 + b"\r\n")
    _, done = c.until("t2")
    assert done.status == "OK", done


def test_imap_search_keys_are_at_most_1000(imap) -> None:
    c = imap.client(select="INBOX")
    c.ok(b"SEARCH " + b" ".join([b"SEEN"] * 1000))
    _, done = c.cmd(b"SEARCH " + b" ".join([b"SEEN"] * 1001))
    assert (done.status, done.code, done.text) == ("BAD", "LIMIT", "More than 1000 search keys"), done
    _, done = c.cmd(b"UID SORT (DATE) UTF-8 " + b" ".join([b"SEEN"] * 1001))  # SORT's criteria too
    assert (done.status, done.code) == ("BAD", "LIMIT"), done
    c.ok("NOOP")


def test_imap_id_and_list_patterns(imap) -> None:
    """ID (RFC 2971 3.3): 30 pairs, fields of 30 and values of 1024 octets; LIST: 32 patterns."""
    c = imap.raw()  # ID before login
    pairs = b" ".join(b'"k%d" "v"' % i for i in range(30))
    c.ok(b"ID (" + pairs + b")")
    _, done = c.cmd(b"ID (" + pairs + b' "k30" "v")')
    assert (done.status, done.text) == ("BAD", "Too many ID fields"), done
    _, done = c.cmd(b'ID ("' + b"k" * 31 + b'" "v")')
    assert (done.status, done.text) == ("BAD", "ID field or value too long"), done
    _, done = c.cmd(b'ID ("name" "' + b"v" * 1025 + b'")')
    assert (done.status, done.text) == ("BAD", "ID field or value too long"), done
    c = imap.client()
    c.ok(b'LIST "" (' + b" ".join([b'"x"'] * 32) + b")")
    _, done = c.cmd(b'LIST "" (' + b" ".join([b'"x"'] * 33) + b")")
    assert (done.status, done.text) == ("BAD", "Too many LIST patterns"), done


def test_imap_list_patterns_stay_small(imap) -> None:
    """A LIST pattern's wildcard runs collapse to one ("****" is "*"), and a pattern with more
    literal characters than any name may have (store/names.py MAX_NAME_LENGTH, 1000) matches
    nothing: the matcher (imap/ops/list.py Glob) stays bounded whatever the client sends, up to
    the command line limit."""
    from mailcove.imap.ops.list import Glob

    assert Glob("x" * 1000 + "*").fullmatch("x" * 1000)
    assert not Glob("x" * 1001 + "*").fullmatch("x" * 1001)
    c = imap.client()
    c.ok("CREATE " + "x" * 200)
    start = time.monotonic()
    untagged = c.ok('LIST "" "' + "x*" * 30_000 + '"')
    assert not [r for r in untagged if r.kind == "LIST"]
    untagged = c.ok('LIST "" "' + "*" * 60_000 + 'x"')
    assert [r.data["name"] for r in untagged if r.kind == "LIST"] == [b"x" * 200]
    assert time.monotonic() - start < 5


async def test_imap_idle_ends_at_idle_timeout(tmp_path: Path) -> None:
    """[imap] idle_timeout counts during IDLE too: a client must renew IDLE (RFC 2177: every 29
    minutes) or it is logged out. In process, on a FakeClock: exactly at idle_timeout."""
    async with serve_in_process(tmp_path, "[auth]\nallow_plaintext = true\n[imap]\nidle_timeout = 1800\n") as lab:
        c = await lab.imap(login="a@hamap.local")
        await c.ok("SELECT INBOX")
        c.send(b"i IDLE\r\n")
        await c.continuation()
        await lab.clock.advance(1799.9)
        assert c.unread() == b""
        await lab.clock.advance(0.1)
        r = await c.read_one()
        assert isinstance(r, Untagged) and (r.kind, r.text) == ("BYE", "Autologout; idle for too long"), r


def test_imap_login_password_length(serve_factory: Callable[..., ServerProcess]) -> None:
    """LOGIN refuses a user name over 320 or a password over 1,024 characters before the
    directory sees it: no password check is spent on it, and it is not a throttled failure (no
    account can have such a password: the directory's own cap is 4,096 bytes)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pop3"))
    from helpers import add_users

    srv = serve_factory("[auth]\nallow_plaintext = true\nmax_failures_per_ip = 2\n", start=False)
    add_users(srv, {"a@hamap.local": "It1"})
    srv.start()
    c = Client(socket.create_connection(srv.address("imap")))
    for line in (b'LOGIN a@hamap.local "' + b"p" * 1025 + b'"', b'LOGIN "' + b"u" * 321 + b'" It1'):
        for _ in range(3):
            _, done = c.cmd(line)
            assert (done.status, done.code) == ("NO", "AUTHENTICATIONFAILED"), done
    c.ok("LOGIN a@hamap.local It1")  # not throttled: none of the above reached the password check


# --- the directory -------------------------------------------------------------------------------


def test_password_over_4096_bytes_is_never_hashed(tmp_path: Path) -> None:
    """directory/passwords.py MAX_PASSWORD_BYTES: a longer password is refused before the user
    is looked up, known user or not, without running argon2 (no CPU spent on junk, and the same
    answer time for every name: issue 13 finding 8)."""
    from mailcove.config.settings import AuthSettings
    from mailcove.directory import SqliteDirectory

    async def go() -> tuple[int, int]:
        d = SqliteDirectory(tmp_path / "directory.db", auth=AuthSettings(argon2_time_cost=1, argon2_memory_kib=1024))
        await d.start()
        try:
            await d.add_domain("hamap.local")
            await d.add_user("a@hamap.local", "It1")
            calls = 0
            submit = d.verifier._submit

            async def counting(*a):  # type: ignore[no-untyped-def]
                nonlocal calls
                calls += 1
                return await submit(*a)

            d.verifier._submit = counting  # type: ignore[method-assign]
            for user in ("a@hamap.local", "nobody@hamap.local"):
                assert await d.authenticate(user, "x" * 4097, client_ip=None) is None
            over = calls
            assert await d.authenticate("nobody@hamap.local", "x" * 4096, client_ip=None) is None
            return over, calls - over
        finally:
            await d.close()

    over, at_limit = asyncio.run(go())
    assert over == 0, "an over-long password was hashed"
    assert at_limit >= 1  # a password at the limit is checked (here: the dummy check of an unknown name)


def test_password_checks_waiting_are_bounded(serve_factory) -> None:
    """[auth] verify_workers threads check passwords, and at most 16 checks per thread may wait
    (directory/passwords.py): a burst of logins past that is answered at once with a temporary
    failure instead of queueing without bound. (IMAP waits up to 10 s for a slot first.)"""
    import base64
    import threading

    srv = serve_factory("[auth]\nallow_plaintext = true\nverify_workers = 1\nargon2_time_cost = 2\n"
                        "argon2_memory_kib = 32768\n[mailauth]\nenabled = false\n")
    host, port = srv.address("smtp")
    pop3 = srv.address("pop3")
    replies: list[bytes] = []
    together = threading.Barrier(40, timeout=60)  # every login is sent at the same moment

    def smtp(n: int) -> None:
        s = socket.create_connection((host, port), timeout=60, source_address=(f"127.0.20.{1 + n}", 0))
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"EHLO x\r\n")
        while f.readline()[3:4] == b"-":
            pass
        token = base64.b64encode(b"\0nobody%d@hamap.local\0wrong" % n)
        together.wait()
        s.sendall(b"AUTH PLAIN " + token + b"\r\n")
        replies.append(f.readline())
        s.close()

    def pop(n: int) -> None:
        s = socket.create_connection(pop3, timeout=60, source_address=(f"127.0.30.{1 + n}", 0))
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"USER nobody%d@hamap.local\r\n" % n)
        f.readline()
        together.wait()
        s.sendall(b"PASS wrong\r\n")
        replies.append(f.readline())
        s.close()

    threads = [threading.Thread(target=smtp, args=(n,)) for n in range(20)]
    threads += [threading.Thread(target=pop, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(replies) == 40
    busy = [r for r in replies if r.startswith((b"454", b"-ERR [SYS/TEMP]"))]
    assert b"454 4.7.0 Temporary authentication failure, try again later\r\n" in busy, replies
    assert b"-ERR [SYS/TEMP] Authentication service unavailable; try again later.\r\n" in busy, replies
    assert len(replies) - len(busy) <= 20, "more checks waited than the queue holds"


# --- the work one message or one command can cause -----------------------------------------------


def test_imap_fetch_header_fields_are_at_most_200(imap) -> None:
    imap.deliver(b"Subject: one\r\n\r\nx\r\n")
    c = imap.client(select="INBOX")
    names = " ".join(f"X-F{i}" for i in range(201))
    _, done = c.cmd(f"FETCH 1:* (BODY.PEEK[HEADER.FIELDS ({names})])")
    assert (done.status, done.text) == ("BAD", "Too many header fields"), done
    c.ok("FETCH 1:* (BODY.PEEK[HEADER.FIELDS (" + " ".join(f"X-F{i}" for i in range(200)) + ")])")


def test_imap_body_search_reads_at_most_16_mib(serve_factory: Callable[..., ServerProcess], tmp_path: Path) -> None:
    """imap/search.py MAX_BODY_SEARCH_BYTES: BODY and TEXT look at the first 16 MiB of a message.
    Shrunk to 1,000 bytes in the server process (a preload) so the test needs no 16 MiB message."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pop3"))
    from helpers import add_users

    shrink = tmp_path / "shrink.py"
    shrink.write_text("import mailcove.imap.search as s\ns.MAX_BODY_SEARCH_BYTES = 1000\n")
    srv = serve_factory("[auth]\nallow_plaintext = true\n", preload=[shrink], start=False)
    add_users(srv, {"a@hamap.local": "It1"})
    srv.start()
    body = b"early-word\r\n" + b"filler line of text\r\n" * 100 + b"late-word\r\n"
    assert srv.deliver(b"Subject: big\r\n\r\n" + body, ["a@hamap.local"]).startswith("OK")
    c = Client(socket.create_connection(srv.address("imap")))
    c.ok("LOGIN a@hamap.local It1")
    c.ok("SELECT INBOX")
    for key, found in (("BODY early-word", [1]), ("BODY late-word", []), ("TEXT late-word", [])):
        untagged = c.ok(f"SEARCH {key}")
        assert next(r.data for r in untagged if r.kind == "SEARCH")["numbers"] == found, key


def test_spf_void_lookups_and_mx_names(tmp_path: Path) -> None:
    """RFC 7208 4.6.4: past 2 void lookups or 10 MX names, SPF is permerror (the 10-lookup rule:
    tests/mailauth/test_spf.py::test_mechanisms)."""
    from mailcove.dns.fake import FakeResolver
    from mailcove.mailauth.spf import check_host

    async def go() -> list[str]:
        r = FakeResolver({
            ("two.example", "TXT"): ["v=spf1 a:v1.example a:v2.example -all"],
            ("three.example", "TXT"): ["v=spf1 a:v1.example a:v2.example a:v3.example -all"],
            ("mx10.example", "TXT"): ["v=spf1 mx -all"],
            ("mx10.example", "MX"): [(10, f"m{i}.example") for i in range(10)],
            ("mx11.example", "TXT"): ["v=spf1 mx -all"],
            ("mx11.example", "MX"): [(10, f"m{i}.example") for i in range(11)],
            **{(f"m{i}.example", "A"): ["198.51.100.9"] for i in range(11)},
        })
        return [(await check_host(r, "192.0.2.1", f"a@{d}", "x")).result
                for d in ("two.example", "three.example", "mx10.example", "mx11.example")]

    assert asyncio.run(go()) == ["fail", "permerror", "fail", "permerror"]


def test_dkim_checks_at_most_5_signatures() -> None:
    from mailcove.dns.fake import FakeResolver
    from mailcove.mailauth.dkim import verify

    head = b"".join(b"DKIM-Signature: v=1; a=rsa-sha256; d=d%d.test; s=s; h=from; bh=x; b=y\r\n" % i for i in range(7))
    r = FakeResolver()
    results = asyncio.run(verify(r, head + b"From: a@d0.test\r\n\r\nbody\r\n"))
    assert len(results) == 5
    assert {name for name, _ in r.queries} == {f"s._domainkey.d{i}.test" for i in range(5)}


def test_dkim_is_not_checked_past_max_dkim_bytes(tmp_path: Path) -> None:
    """[mailauth] max_dkim_bytes: a larger message gets dkim=none instead of a hash of its body."""
    from mailcove.config.settings import Settings
    from mailcove.dns.fake import FakeResolver
    from mailcove.mailauth import InboundChecker, check_inbound
    from mailcove.queue.dkim import generate, load_keys, public_records, sign
    from mailcove.store.spool import Spool

    s = Settings(hostname="mx.b.test", data_dir=tmp_path)
    generate(s, "a.test")
    r = FakeResolver()
    for sel, value in public_records(s, "a.test"):
        r.add(f"{sel}._domainkey.a.test", "TXT", value)
    msg = b"From: Alice <alice@a.test>\r\nSubject: big\r\n\r\n" + b"y" * 5000 + b"\r\n"
    signed = sign(msg, "a.test", load_keys(s, "a.test")) + msg

    async def check(limit: int) -> bytes:
        s.mailauth.max_dkim_bytes = limit
        spool = Spool(tmp_path / f"in{limit}", 64)  # on disk, as a large message is
        spool.write(signed)
        out = await check_inbound(InboundChecker(s, r), spool, ip="192.0.2.1", helo="mx.a.test",
                                  mail_from="alice@a.test")
        return out.results

    assert b"dkim=pass" in asyncio.run(check(len(signed)))
    over = asyncio.run(check(len(signed) - 1))
    assert b"dkim=none" in over and b"dkim=pass" not in over


def test_forward_files_and_returned_originals(tmp_path: Path) -> None:
    """Fixed bounds: a .forward of at most 64 KiB (directory/forward_file.py; its 100 entries:
    tests/directory/test_system_users_pure.py::test_parse_forward), and a bounce returns the
    original whole only up to 1 MiB, else its header (queue/dsn.py)."""
    import os

    from mailcove.directory.forward_file import read_forward
    from mailcove.queue import dsn
    from mailcove.store.api import OutboundEnvelope

    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    fwd = home / ".forward"
    fwd.write_text("b@x.test\n" + "#" * (64 * 1024) + "\n")
    os.chmod(fwd, 0o644)
    assert read_forward(str(home), os.getuid()) is None  # over 64 KiB: ignored, mail stays in the mailbox
    fwd.write_text("b@x.test\n")
    assert read_forward(str(home), os.getuid()) is not None

    def returned(size: int) -> bytes:
        original = b"Subject: orig\r\n\r\n" + b"z" * (size - 17)
        return dsn.build(reporting_mta="mx.a.test", postmaster="postmaster@mx.a.test",
                         envelope=OutboundEnvelope("a@a.test", (), ret="FULL"), arrival=0.0,
                         recipients=[dsn.RecipientStatus("x@b.test", None, "failed", "5.1.1", "550 no", "mx.b.test")],
                         original=original, now=0.0)

    assert b"message/rfc822" in returned(1024 * 1024) and b"z" * 1000 in returned(1024 * 1024)
    big = returned(1024 * 1024 + 1)
    assert b"text/rfc822-headers" in big and b"z" * 1000 not in big


def test_the_relay_rate_counts_an_ipv6_client_per_64() -> None:
    """The hourly sending rate of an unauthenticated relaying client (and of SRS bounces) was
    keyed by the exact address, so an IPv6 host got it once per address of its /64. It is keyed
    as the connection caps and the login throttle count a client. (A unit test: loopback has no
    second IPv6 address to send from.)"""
    from types import SimpleNamespace

    from mailcove.smtp.session import SmtpSession

    def key(ip: str) -> str | None:
        return SmtpSession._rate_key(SimpleNamespace(principal=None, ip=ip), 1)  # type: ignore[arg-type]

    assert key("2001:db8::1") == key("2001:db8::ffff:2") != key("2001:db8:0:1::1")
    assert key("::ffff:192.0.2.7") == key("192.0.2.7")
    assert SmtpSession._rate_key(SimpleNamespace(principal=None, ip="192.0.2.7"), 0) is None  # type: ignore[arg-type]
