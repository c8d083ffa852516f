"""Differential: after `mailcove import mail`, mailcove's POP3 UIDL list is the one Debian's Dovecot
served from the same files, so "leave messages on server" clients download nothing again.

Each case starts a private Dovecot (tests/interop/dovecot.py) with one of its POP3 UIDL settings,
records what its POP3 server answers to UIDL, stops it, imports the files it leaves (the seed's
mbox spool with Dovecot's X-IMAPbase/X-UID headers, or a Maildir with its dovecot-uidlist) into a
fresh mailcove with the matching options, and compares mailcove's UIDL answer line for line.
Messages with an X-UIDL header are in every mailbox; messages Dovecot had not numbered yet too."""

from __future__ import annotations

import os
import poplib
import pwd
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from importers.test_import_mail import ONLY_MAIL, cli, fetch_all, imap_login
from interop.dovecot import PrivateDovecot, dovecot_binary
from mailcove_testing import ServerProcess, unavailable
from pop3.helpers import LAB, PASSWORD, POP3_ONLY, add_users, reuse_certificate

pytestmark = pytest.mark.interop

A = "a@hamap.local"
OLD_PASSWORD = "It1"

# The seed's spool as Dovecot leaves it: X-IMAPbase on the first message, X-UID and Status on the
# ones it numbered; the last two arrived (Sendmail appended them) after Dovecot last wrote the file.
SPOOL = (
    b"From alice@example.org Mon Nov  2 10:00:00 2026\n"
    b"Received: from mx.example.org (mx.example.org [192.0.2.1])\n\tby mx1.hamap.local; Mon, 2 Nov 2026\n"
    b"Received: from laptop by mx.example.org; Mon, 2 Nov 2026\n"
    b"From: Alice <alice@example.org>\nTo: a@hamap.local\nSubject: first\n"
    b"Date: Mon, 2 Nov 2026 10:00:00 +0000\nMessage-ID: <m1@example.org>\n"
    b"X-IMAPbase: 1729750000 0000000005\nX-UID: 3\nStatus: RO\n"
    b"\nHello.\n\n"
    b"From bob@example.org Tue Nov  3 11:30:00 2026\n"
    b"From: Bob <bob@example.org>\nSubject: carries an X-UIDL\nDate: Tue, 3 Nov 2026 11:30:00 +0000\n"
    b"Message-ID: <m2@example.org>\nX-UIDL: qpopper-0815\nX-UID: 4\nStatus: O\n"
    b"\nFrom a qpopper spool.\n\n"
    b"From carol@example.org Wed Nov  4 12:45:30 2026\n"
    b"Delivered-To: a@hamap.local\nFrom: carol@example.org\nSubject: third\nX-UID: 5\nStatus: O\n"
    b"\nthree\n\n"
    b"From dave@example.org Thu Nov  5 08:00:00 2026\n"
    b"Received: from dave by mx1.hamap.local; Thu, 5 Nov 2026\nFrom: dave@example.org\nSubject: new\n"
    b"Message-ID: <m4@example.org>\n"
    b"\nnot numbered by Dovecot yet\n\n"
    b"From erin@example.org Thu Nov  5 09:00:00 2026\n"
    b"From: erin@example.org\nSubject: new with X-UIDL\nX-Delivery-ID: 77\nX-UIDL: UW-42\n"
    b"\nlast\n"
)

MAILDIR_MESSAGES = [
    b"From: alice@example.org\r\nSubject: one\r\nMessage-ID: <d1@example.org>\r\n\r\none\r\n",
    b"From: bob@example.org\r\nSubject: two\r\nX-UIDL: qpopper-0816\r\n\r\ntwo\r\n",
    b"From: carol@example.org\r\nSubject: three\r\n\r\nthree\r\n",
]


def pop3_uidls(host: str, port: int, user: str, password: str) -> list[bytes]:
    p = poplib.POP3(host, port, timeout=30)
    try:
        p.user(user)
        p.pass_(password)
        return list(p.uidl()[1])
    finally:
        p.quit()


def pop3_delete(host: str, port: int, user: str, password: str, msg: int) -> None:
    p = poplib.POP3(host, port, timeout=30)
    try:
        p.user(user)
        p.pass_(password)
        p.dele(msg)
    finally:
        p.quit()


def chown_nobody(root: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [".", *dirnames, *filenames]:
            os.chown(os.path.join(dirpath, name), nobody.pw_uid, nobody.pw_gid)


@pytest.fixture
def dovecot_factory() -> Iterator[Callable[..., PrivateDovecot]]:
    if dovecot_binary() is None:
        unavailable("dovecot (Debian packages dovecot-core, dovecot-pop3d)")
    made: list[PrivateDovecot] = []

    def make(extra: str = "") -> PrivateDovecot:
        dc = PrivateDovecot(users={"a": OLD_PASSWORD}, protocol="pop3", extra_config=extra)
        made.append(dc)
        return dc

    yield make
    for dc in made:
        dc.cleanup()


@pytest.fixture
def mailcove(serve_factory: Callable[..., ServerProcess]) -> ServerProcess:
    srv = serve_factory(LAB, listeners=POP3_ONLY, start=False)
    add_users(srv, {A: PASSWORD})
    reuse_certificate(srv.data_dir)
    return srv


def mailcove_uidls(srv: ServerProcess) -> list[bytes]:
    host, port = srv.address("pop3")
    return pop3_uidls(host, port, A, PASSWORD)


MBOX_CASES = [
    ("", []),  # a stock Dovecot: %08Xu%08Xv, X-UIDL ignored
    ("pop3_reuse_xuidl = yes", ["--pop3-reuse-xuidl"]),
    ("pop3_uidl_format = %m", ["--pop3-uidl-format", "%m"]),
    ("pop3_uidl_format = %g\nmbox_md5 = all", ["--pop3-uidl-format", "%g", "--mbox-md5", "all"]),
    ("pop3_uidl_format = %v-%u.%-4.2Xv%LXu", ["--pop3-uidl-format", "%v-%u.%-4.2Xv%LXu"]),
    ("pop3_uidl_format = %v.%u", ["--pop3-uidl-format", "%v.%u"]),  # mailcove's own form
]


@pytest.mark.parametrize(("dovecot_conf", "options"), MBOX_CASES, ids=lambda v: str(v)[:24] or "stock")
def test_mbox_uidls_are_dovecots(
    dovecot_factory: Callable[..., PrivateDovecot], mailcove: ServerProcess, dovecot_conf: str, options: list[str]
) -> None:
    dc = dovecot_factory()
    dc.extra_config = (
        f"mail_location = mbox:~/mail:INBOX={dc.dir}/spool/%u\nmbox_write_locks = fcntl\n{dovecot_conf}\n"
    )
    home = dc.dir / "home" / "a"
    (home / "mail").mkdir(parents=True)
    (dc.dir / "spool").mkdir()
    (dc.dir / "spool" / "a").write_bytes(SPOOL)
    chown_nobody(dc.dir / "spool")
    chown_nobody(dc.dir / "home")
    dc.start()
    theirs = pop3_uidls(dc.host, dc.port, "a", OLD_PASSWORD)
    dc.stop()
    assert len(theirs) == 5, dc.logs()

    location = f"mbox:~/mail:INBOX={dc.dir}/spool/%u"
    out = cli(mailcove, "import", "mail", A, "--location", location, "--home", str(home), "--login", "a",
              "--any-owner", *options)
    assert "INBOX: 5 added" in out.stdout and "5 keep their POP3 UIDL" in out.stdout, out.stdout + out.stderr
    mailcove.start()
    assert mailcove_uidls(mailcove) == theirs


def test_maildir_uidls_are_dovecots_saved_and_formatted(
    dovecot_factory: Callable[..., PrivateDovecot], mailcove: ServerProcess
) -> None:
    # First the old server used %f and saved what it served (pop3_save_uidl: dovecot-uidlist's P
    # fields); later its format changed, and a message that came after is served in the new one.
    dc = dovecot_factory("pop3_save_uidl = yes\npop3_uidl_format = %f\n")
    dc.fill(MAILDIR_MESSAGES[:2])
    dc.start()
    first = pop3_uidls(dc.host, dc.port, "a", OLD_PASSWORD)
    dc.stop()
    maildir = dc.maildir("a")
    new = maildir / "new" / f"{int(time.time())}.M9P1.late,S={len(MAILDIR_MESSAGES[2])}"
    new.write_bytes(MAILDIR_MESSAGES[2])
    chown_nobody(maildir)
    dc.extra_config = "pop3_uidl_format = %08Xv-%u\n"
    dc.start()
    theirs = pop3_uidls(dc.host, dc.port, "a", OLD_PASSWORD)
    dc.stop()
    assert theirs[:2] == first and len(theirs) == 3, dc.logs()
    assert b" P :" in (maildir / "dovecot-uidlist").read_bytes()  # saved, as "the base name"

    out = cli(mailcove, "import", "mail", A, "--location", f"maildir:{maildir}", "--any-owner",
              "--pop3-uidl-format", "%08Xv-%u")
    assert "INBOX: 3 added" in out.stdout and "3 keep their POP3 UIDL" in out.stdout, out.stdout + out.stderr
    mailcove.start()
    assert mailcove_uidls(mailcove) == theirs


@pytest.mark.parametrize("fmt", ["%08Xu%08Xv", "%g", "%Mf", "%u-%f"])
def test_maildir_formats_are_dovecots(
    dovecot_factory: Callable[..., PrivateDovecot], mailcove: ServerProcess, fmt: str
) -> None:
    dc = dovecot_factory(f"pop3_uidl_format = {fmt}\n")
    dc.fill(MAILDIR_MESSAGES)
    dc.start()
    theirs = pop3_uidls(dc.host, dc.port, "a", OLD_PASSWORD)
    dc.stop()
    assert len(theirs) == 3, dc.logs()
    out = cli(mailcove, "import", "mail", A, "--location", f"maildir:{dc.maildir('a')}", "--any-owner",
              "--pop3-uidl-format", fmt)
    assert "3 keep their POP3 UIDL" in out.stdout, out.stdout + out.stderr
    mailcove.start()
    assert mailcove_uidls(mailcove) == theirs


def test_messages_deleted_by_pop3_stay_deleted(
    dovecot_factory: Callable[..., PrivateDovecot], serve_factory: Callable[..., ServerProcess]
) -> None:
    # pop3_deleted_flag: Dovecot's DELE only sets the keyword; IMAP still shows the message, POP3
    # never again. After the move POP3 must not bring it back, and mailcove's DELE does the same.
    dc = dovecot_factory("pop3_deleted_flag = \"$POP3Deleted\"\n")
    dc.fill(MAILDIR_MESSAGES)
    dc.start()
    pop3_delete(dc.host, dc.port, "a", OLD_PASSWORD, 2)
    theirs = pop3_uidls(dc.host, dc.port, "a", OLD_PASSWORD)
    dc.stop()
    assert len(theirs) == 2, dc.logs()

    srv = serve_factory(LAB + '[pop3]\ndeleted_flag = "$POP3Deleted"\n', listeners=ONLY_MAIL, start=False)
    add_users(srv, {A: PASSWORD})
    reuse_certificate(srv.data_dir)
    out = cli(srv, "import", "mail", A, "--location", f"maildir:{dc.maildir('a')}", "--any-owner",
              "--pop3-deleted-flag", "$POP3Deleted")
    assert "INBOX: 3 added" in out.stdout and "1 stay deleted for POP3" in out.stdout, out.stdout + out.stderr
    assert "deleted_flag" not in out.stderr  # set already: no warning
    srv.start()
    assert mailcove_uidls(srv) == theirs
    host, port = srv.address("pop3")
    pop3_delete(host, port, A, PASSWORD, 1)
    assert mailcove_uidls(srv) == [b"1 " + theirs[1].split()[1]]  # numbered afresh in the new session
    m = imap_login(srv, A)
    try:
        _uidvalidity, _uidnext, msgs = fetch_all(m, "INBOX")
    finally:
        m.logout()
    assert [("$POP3Deleted" in flags) for _uid, flags, _date, _body in msgs] == [True, True, False]
