"""Mail import end to end (issue 7 item 2): the seed's Dovecot layouts written here, imported
with `mailcove import mail`, then read over real IMAP (imaplib) and POP3 (poplib) from a running
`mailcove serve`: UIDVALIDITY, UIDs, flags, keywords, INTERNALDATE, message bytes and the old
POP3 UIDLs. Then: importing again adds nothing, and `mailcove export` gives back the files byte
for byte (an LF mbox spool, CRLF Maildir files)."""

from __future__ import annotations

import imaplib
import os
import poplib
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mailcove_testing import ServerProcess
from pop3.helpers import LAB, PASSWORD, add_users, reuse_certificate

A, B = "a@hamap.local", "b@hamap.local"
ONLY_MAIL = {"smtp": None, "submission": None, "submissions": None, "imaps": None, "pop3s": None, "http": None}


def date(text: str) -> float:
    return time.mktime(time.strptime(text, "%a %b %d %H:%M:%S %Y"))


# --- the sources ----------------------------------------------------------------------------------

# INBOX spool in the layout mailcove's export writes (X-IMAPbase on the first message, then X-UID,
# Status, X-Status, X-Keywords at the end of each header; Content-Length only where a body line
# would read as a From line), so the export must reproduce it byte for byte. LF line ends.
SPOOL = (
    b"From alice@example.org Mon Nov  2 10:00:00 2026\n"
    b"Return-Path: <alice@example.org>\n"
    b"From: Alice <alice@example.org>\nTo: a@hamap.local\nSubject: first\nMessage-ID: <m1@example.org>\n"
    b"X-UIDL: 0000a1b2c3\n"
    b"X-IMAPbase: 1700000000 0000000012 $Label1\nX-UID: 5\nStatus: RO\nX-Status: A\nX-Keywords: $Label1\n"
    b"\nHello,\n>From the quoting of an old MTA, kept as Dovecot served it.\n\n"
    b"From MAILER-DAEMON Tue Nov  3 11:30:00 2026\n"
    b"From: Bob <bob@example.org>\nSubject: no final newline\n"
    b"X-UID: 9\nStatus: O\nX-Status: F\n"
    b"\nthis line has no newline at the end\n"
    b"From carol@example.org Wed Nov  4 12:45:30 2026\n"
    b"Return-Path: <carol@example.org>\n"
    b"From: carol@example.org\nSubject: a From line in the body\nX-UIDL: UID12-1700000000\n"
    b"X-UID: 12\nStatus: RO\nX-Status: T\nContent-Length: 44\n"
    b"\nFrom me Mon Jan  1 00:00:00 2024\nwas quoted\n\n"
)
SPOOL_BODIES = [
    b"Return-Path: <alice@example.org>\r\nFrom: Alice <alice@example.org>\r\nTo: a@hamap.local\r\n"
    b"Subject: first\r\nMessage-ID: <m1@example.org>\r\nX-UIDL: 0000a1b2c3\r\n"
    b"\r\nHello,\r\n>From the quoting of an old MTA, kept as Dovecot served it.\r\n",
    b"From: Bob <bob@example.org>\r\nSubject: no final newline\r\n\r\nthis line has no newline at the end",
    b"Return-Path: <carol@example.org>\r\nFrom: carol@example.org\r\nSubject: a From line in the body\r\n"
    b"X-UIDL: UID12-1700000000\r\n\r\nFrom me Mon Jan  1 00:00:00 2024\r\nwas quoted\r\n",
]
# ~/mail/Sent as Dovecot leaves it after new mail it has not numbered yet: the second message has
# no X-UID, so it gets the next UID after X-IMAPbase's last one (3), like Dovecot would give it.
SENT = (
    b"From a@hamap.local  Thu Nov  5 08:00:00 2026\n"
    b"From: a@hamap.local\nSubject: sent 1\nX-IMAPbase: 1700000001 0000000003\nX-UID: 2\nStatus: RO\n"
    b"X-Keywords:                                        \nContent-Length: 5\n\nsent\n\n"
    b"From a@hamap.local  Thu Nov  5 09:00:00 2026\n"
    b"From: a@hamap.local\nSubject: sent 2\n\nsent too\n\n"
)
FOOBAR = (
    b"From MAILER-DAEMON Fri Nov  6 07:00:00 2026\n"
    b"Subject: nested\nX-IMAPbase: 1700000002 0000000001\nX-UID: 1\nStatus: O\nX-Status: D\n\nin Foo/Bar\n\n"
)


def write_seed_mbox(root: Path) -> tuple[Path, Path]:
    """/var/mail/a and /home/a/mail as the seed's mail_location = mbox:~/mail:INBOX=/var/mail/%u."""
    spool_dir, home = root / "var" / "mail", root / "home" / "a"
    spool_dir.mkdir(parents=True)
    (spool_dir / "a").write_bytes(SPOOL)
    mail = home / "mail"
    (mail / "Foo").mkdir(parents=True)
    (mail / "Sent").write_bytes(SENT)
    (mail / "Foo" / "Bar").write_bytes(FOOBAR)
    (mail / ".imap" / "INBOX").mkdir(parents=True)
    (mail / ".imap" / "INBOX" / "dovecot.index.log").write_bytes(b"\x01\x02not mail")
    (mail / ".subscriptions").write_text("Sent\n")
    return spool_dir, home


# Maildir++ for b with CRLF files, as a Dovecot with mail_save_crlf = yes (or an Outlook import) has.
MAILDIR_FILES = {
    # uid: (subdir, name, flags, keyword letters, mtime, body)
    3: ("cur", "1700000100.M1P1.old,S={s},W={s}", "S", 1_700_000_100,
        b"From: x@example.org\r\nSubject: seen\r\nMessage-ID: <d1@example.org>\r\n\r\nbody one\r\n"),
    4: ("cur", "1700000200.M2P1.old,S={s},W={s}", "FRa", 1_700_000_200,
        b"From: y@example.org\r\nSubject: answered, flagged, Work\r\n\r\nbody two\r\n>From stays\r\n"),
    7: ("new", "1700000300.M3P1.old,S={s},W={s}", "", 1_700_000_300,
        b"From: z@example.org\r\nSubject: new, not in dovecot-uidlist yet\r\n\r\nbody three"),
}


def write_maildir(home: Path) -> Path:
    root = home / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)
    lines = []
    for uid, (sub, name, flags, mtime, body) in MAILDIR_FILES.items():
        base = name.format(s=len(body))
        fname = base + (f":2,{flags}" if sub == "cur" else "")
        p = root / sub / fname
        p.write_bytes(body)
        os.utime(p, (mtime, mtime))
        if sub == "cur":
            lines.append(f"{uid} :{base}\n")
    (root / "dovecot-uidlist").write_text("3 V1600000000 N7 G0123456789abcdef0123456789abcdef\n" + "".join(lines))
    (root / "dovecot-keywords").write_text("0 Work\n")
    sub = root / ".Foo.Bar"
    for d in ("cur", "new", "tmp"):
        (sub / d).mkdir(parents=True)
    (sub / "maildirfolder").touch()
    p = sub / "cur" / "1700000400.M4P1.old:2,ST"
    p.write_bytes(b"Subject: deleted and seen\r\n\r\nx\r\n")
    os.utime(p, (1_700_000_400, 1_700_000_400))
    (sub / "dovecot-uidlist").write_text("3 V1600000001 N2 G00\n1 :1700000400.M4P1.old\n")
    (root / "subscriptions").write_text("V\t2\n\nFoo\tBar\n")
    return root


# --- helpers --------------------------------------------------------------------------------------


def cli(srv: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "mailcove", "--config", str(srv.config_path), "--data", str(srv.data_dir), *args],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc


def imap_login(srv: ServerProcess, user: str) -> imaplib.IMAP4:
    host, port = srv.address("imap")
    m = imaplib.IMAP4(host, port)
    m.login(user, PASSWORD)
    return m


def fetch_all(m: imaplib.IMAP4, mailbox: str) -> tuple[int, int, list[tuple[int, set[str], float, bytes]]]:
    typ, _ = m.select(mailbox, readonly=True)
    assert typ == "OK"
    uidvalidity = int(m.untagged_responses["UIDVALIDITY"][0])
    uidnext = int(m.untagged_responses["UIDNEXT"][0])
    typ, data = m.uid("FETCH", "1:*", "(UID FLAGS INTERNALDATE BODY.PEEK[])")
    assert typ == "OK"
    out = []
    for item in data:
        if not isinstance(item, tuple):
            continue
        head = item[0].decode()
        uid = int(re.search(r"UID (\d+)", head).group(1))  # type: ignore[union-attr]
        flags = set(re.search(r"FLAGS \(([^)]*)\)", head).group(1).split())  # type: ignore[union-attr]
        when = time.mktime(imaplib.Internaldate2tuple(item[0]))  # type: ignore[arg-type]
        out.append((uid, flags - {"\\Recent"}, when, item[1]))
    return uidvalidity, uidnext, sorted(out)


@pytest.fixture
def server(serve_factory: Callable[..., ServerProcess]) -> ServerProcess:
    srv = serve_factory(LAB, listeners=ONLY_MAIL, start=False)
    add_users(srv, {A: PASSWORD, B: PASSWORD})
    reuse_certificate(srv.data_dir)
    return srv


# --- the tests ------------------------------------------------------------------------------------


def test_seed_mbox_import_keeps_uids_flags_dates_and_uidls(server: ServerProcess, tmp_path: Path) -> None:
    spool_dir, home = write_seed_mbox(tmp_path / "src")
    location = f"mbox:~/mail:INBOX={spool_dir}/%u"
    # The old server served the X-UIDL headers (pop3_reuse_xuidl = yes), else Dovecot's %08Xu%08Xv.
    out = cli(server, "import", "mail", A, "--location", location, "--home", str(home), "--login", "a",
              "--pop3-reuse-xuidl").stdout
    assert "INBOX: 3 added" in out and "Sent: 2 added" in out and "Foo/Bar: 1 added" in out
    server.start()

    m = imap_login(server, A)
    try:
        validity, uidnext, msgs = fetch_all(m, "INBOX")
        assert (validity, uidnext) == (1700000000, 13)
        assert [u for u, *_ in msgs] == [5, 9, 12]
        assert [f for _u, f, _d, _b in msgs] == [{"\\Seen", "\\Answered", "$Label1"}, {"\\Flagged"},
                                               {"\\Seen", "\\Draft"}]
        assert [d for _u, _f, d, _b in msgs] == [date("Mon Nov  2 10:00:00 2026"), date("Tue Nov  3 11:30:00 2026"),
                                               date("Wed Nov  4 12:45:30 2026")]
        assert [b for *_x, b in msgs] == SPOOL_BODIES  # metadata headers hidden, CRLF, nothing else changed
        validity, uidnext, msgs = fetch_all(m, "Sent")
        assert (validity, uidnext, [u for u, *_ in msgs]) == (1700000001, 5, [2, 4])
        validity, _n, msgs = fetch_all(m, "Foo/Bar")
        assert (validity, msgs[0][0], msgs[0][1]) == (1700000002, 1, {"\\Deleted"})
        _typ, lsub = m.lsub()
        subscribed = {line.decode().rsplit(" ", 1)[-1].strip('"') for line in lsub if line}
        assert "Sent" in subscribed and "Foo/Bar" not in subscribed
        _typ, listed = m.list()
        assert not any(b".imap" in line or b"dovecot" in line for line in listed if line)
    finally:
        m.logout()

    host, port = server.address("pop3")
    p = poplib.POP3(host, port, timeout=30)
    try:
        p.user(A)
        p.pass_(PASSWORD)
        uidls = [line.split(b" ", 1)[1] for line in p.uidl()[1]]
        assert uidls == [b"0000a1b2c3", b"000000096553f100", b"UID12-1700000000"]  # the old server's UIDLs
    finally:
        p.quit()

    # Again, while the server runs: nothing is added twice.
    out = cli(server, "import", "mail", A, "--location", location, "--home", str(home), "--login", "a").stdout
    assert "INBOX: 0 added, 3 already there" in out and "Sent: 0 added, 2 already there" in out
    m = imap_login(server, A)
    try:
        assert m.status("INBOX", "(MESSAGES UIDNEXT)")[1][0].endswith(b"(MESSAGES 3 UIDNEXT 13)")
    finally:
        m.logout()

    # Export gives the spool and the folder back byte for byte.
    dest = tmp_path / "export"
    cli(server, "export", A, str(dest), "--format", "mbox")
    assert (dest / "inbox").read_bytes() == SPOOL
    assert (dest / "Foo" / "Bar").read_bytes() == FOOBAR
    # Sent was not in mailcove's layout (padding, a message without X-UID): its messages still
    # come back identical, now with their UIDs written down.
    sent = (dest / "Sent").read_bytes()
    assert b"X-IMAPbase: 1700000001 0000000004\n" in sent and b"X-UID: 4\nStatus: O\n\nsent too\n\n" in sent
    subscriptions = (dest / ".subscriptions").read_text().splitlines()
    assert "Sent" in subscriptions and "Foo/Bar" not in subscriptions
    # never over an older export (it would keep messages expunged since)
    proc = subprocess.run([sys.executable, "-m", "mailcove", "--config", str(server.config_path), "--data",
                           str(server.data_dir), "export", A, str(dest), "--format", "mbox"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "not an empty directory" in proc.stderr


def test_maildir_import_and_crlf_export_are_byte_identical(server: ServerProcess, tmp_path: Path) -> None:
    home = tmp_path / "home" / "b"
    src = write_maildir(home)
    server.start()
    out = cli(server, "import", "mail", B, "--location", "maildir:~/Maildir", "--home", str(home)).stdout
    assert "INBOX: 3 added" in out and "Foo/Bar: 1 added" in out and "0 LF, 4 CRLF" in out

    m = imap_login(server, B)
    try:
        validity, uidnext, msgs = fetch_all(m, "INBOX")
        assert (validity, uidnext) == (1600000000, 8)
        assert [(u, f, d) for u, f, d, _b in msgs] == [
            (3, {"\\Seen"}, 1_700_000_100),
            (4, {"\\Flagged", "\\Answered", "Work"}, 1_700_000_200),
            (7, set(), 1_700_000_300),
        ]
        assert [b for *_x, b in msgs] == [f[4] for f in MAILDIR_FILES.values()]
        validity, _n, msgs = fetch_all(m, "Foo/Bar")
        assert (validity, msgs[0][0], msgs[0][1]) == (1600000001, 1, {"\\Seen", "\\Deleted"})
    finally:
        m.logout()

    out = cli(server, "import", "maildir", B, str(src)).stdout
    assert "INBOX: 0 added, 3 already there" in out
    # one folder on its own, into a mailbox of its own (keeps that folder's UIDVALIDITY)
    out = cli(server, "import", "maildir", B, str(src / ".Foo.Bar"), "--mailbox", "Old/Foo").stdout
    assert "Old/Foo: 1 added, 0 already there (UIDVALIDITY and UIDs kept)" in out

    dest = tmp_path / "export"
    cli(server, "export", B, str(dest), "--format", "maildir", "--newline", "crlf")
    uidlist = (dest / "dovecot-uidlist").read_text().splitlines()
    assert uidlist[0].startswith("3 V1600000000 N8 ")
    by_uid = {int(line.split(" ", 1)[0]): line.split(":", 1)[1] for line in uidlist[1:]}
    assert sorted(by_uid) == [3, 4, 7]
    keywords = (dest / "dovecot-keywords").read_text()
    assert keywords == "0 Work\n"
    for uid, (_sub, _name, flags, mtime, body) in MAILDIR_FILES.items():
        (path,) = (dest / "cur").glob(by_uid[uid] + ":2,*")
        assert path.read_bytes() == body  # byte for byte, CRLF kept
        assert path.name.endswith(":2," + "".join(sorted(flags)))
        assert path.stat().st_mtime == mtime
    (nested,) = (dest / ".Foo.Bar" / "cur").glob("*")
    assert nested.read_bytes() == b"Subject: deleted and seen\r\n\r\nx\r\n" and nested.name.endswith(":2,ST")
    # and the export reads back in as the same mailboxes
    out = cli(server, "import", "maildir", B, str(dest)).stdout
    assert "INBOX: 0 added, 3 already there" in out


def test_without_uids_reimport_uses_fingerprints(server: ServerProcess, tmp_path: Path) -> None:
    # A mail.local spool Dovecot never saw (no X-IMAPbase/X-UID), into a mailbox that already
    # has mail: new UIDs, and a second run adds nothing (Message-ID + date + size).
    plain = tmp_path / "plain.mbox"
    plain.write_bytes(
        b"From x@example.org Mon Nov  2 10:00:00 2026\nMessage-ID: <p1@x>\nSubject: p1\n\none\n\n"
        b"From x@example.org Mon Nov  2 10:00:00 2026\nMessage-ID: <p1@x>\nSubject: p1\n\none\n\n"  # a real twin
        b"From x@example.org Mon Nov  2 10:05:00 2026\nSubject: no id\n\ntwo\n"
    )
    server.start()
    server.deliver(b"Subject: already here\r\n\r\nx\r\n", [A])
    for expected in ("INBOX: 3 added, 0 already there (new UIDs)", "INBOX: 0 added, 3 already there (new UIDs)"):
        assert expected in cli(server, "import", "mbox", A, str(plain)).stdout
    # A source with a UIDVALIDITY cannot keep it in a mailbox holding other mail: said so, no loss.
    spool_dir, _home = write_seed_mbox(tmp_path / "src")
    out = cli(server, "import", "mbox", A, str(spool_dir / "a"), "--mailbox", "INBOX").stdout
    assert "INBOX: 3 added" in out and "new UIDs" in out and "download this mailbox again" in out
    m = imap_login(server, A)
    try:
        assert m.status("INBOX", "(MESSAGES)")[1][0].endswith(b"(MESSAGES 7)")
    finally:
        m.logout()


def test_bad_input_gets_a_clear_error(server: ServerProcess, tmp_path: Path) -> None:
    base = [sys.executable, "-m", "mailcove", "--config", str(server.config_path), "--data", str(server.data_dir)]
    empty = tmp_path / "empty"
    empty.mkdir()
    for args, text in (
        (["import", "mail", A, "--location", "dbox:~/mdbox", "--home", str(tmp_path)], "unsupported mail_location"),
        (["import", "mail", A, "--location", f"maildir:{tmp_path}/none"], "is not a directory"),
        (["import", "mail", "nobody@hamap.local", "--location", f"mbox:{empty}"], "no mailboxes found"),
    ):
        proc = subprocess.run([*base, *args], capture_output=True, text=True, timeout=60)
        assert proc.returncode != 0 and text in proc.stderr, proc.stderr
    (tmp_path / "x.mbox").write_bytes(b"From a@b Mon Nov  2 10:00:00 2026\n\nx\n")
    proc = subprocess.run([*base, "import", "mbox", "nobody@hamap.local", str(tmp_path / "x.mbox")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "not a local account" in proc.stderr


def test_root_reads_only_the_users_files_and_big_messages_stop_cleanly(server: ServerProcess, tmp_path: Path) -> None:
    # Run as root, the import must not follow a user's symlink or read files another user owns
    # (a way into someone else's spool). "nobody" stands in for the Unix user being imported.
    root = tmp_path / "mail"
    root.mkdir()
    (root / "Mine").write_bytes(FOOBAR)
    other = tmp_path / "other-spool"
    other.write_bytes(SPOOL)
    os.chown(other, 54321, 54321)
    (root / "Stolen").symlink_to(other)
    (root / "Foreign").write_bytes(SPOOL)
    os.chown(root / "Foreign", 54321, 54321)
    out = cli(server, "import", "mail", A, "--location", f"mbox:{root}", "--login", "nobody")
    assert "Mine: 1 added" in out.stdout and "Stolen" not in out.stdout and "Foreign" not in out.stdout
    assert "Stolen: a symbolic link, skipped" in out.stderr and "owned by UID 54321" in out.stderr

    # A message over the size limit stops the import after what came before it; a second run
    # with a higher limit adds the rest with the right UIDs.
    big = (
        b"From MAILER-DAEMON Mon Nov  2 10:00:00 2026\nSubject: 1\nX-IMAPbase: 1800000000 0000000003\n"
        b"X-UID: 1\n\nsmall\n\n"
        b"From MAILER-DAEMON Mon Nov  2 10:00:01 2026\nSubject: 2\nX-UID: 2\n\n" + b"x" * 5000 + b"\n\n"
        b"From MAILER-DAEMON Mon Nov  2 10:00:02 2026\nSubject: 3\nX-UID: 3\n\nsmall\n"
    )
    (tmp_path / "big.mbox").write_bytes(big)
    base = [sys.executable, "-m", "mailcove", "--config", str(server.config_path), "--data", str(server.data_dir)]
    proc = subprocess.run([*base, "import", "mbox", A, str(tmp_path / "big.mbox"), "--mailbox", "Big",
                           "--max-message-size", "4K"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "over the import limit of 4096 bytes" in proc.stderr, proc.stderr
    out = cli(server, "import", "mbox", A, str(tmp_path / "big.mbox"), "--mailbox", "Big").stdout
    assert "Big: 2 added, 1 already there (UIDVALIDITY and UIDs kept)" in out


def test_import_as_root_leaves_the_data_dir_to_its_owner(server: ServerProcess, tmp_path: Path) -> None:
    # `import` stays root (to read /var/mail and the homes); a data dir that belongs to the
    # service user must not be left with root-owned files (blob directories, -wal/-shm).
    for dirpath, dirnames, filenames in os.walk(server.data_dir):
        for name in [".", *dirnames, *filenames]:
            os.chown(os.path.join(dirpath, name), 65534, 65534)
    spool = tmp_path / "spool"
    spool.write_bytes(SPOOL)
    cli(server, "import", "mbox", A, str(spool), "--max-message-size", "1M")
    root_owned = [os.path.join(d, n) for d, ds, fs in os.walk(server.data_dir) for n in [".", *ds, *fs]
                  if os.lstat(os.path.join(d, n)).st_uid == 0]
    assert root_owned == []


def _stderr_on_a_terminal(argv: list[str]) -> bytes:
    """Run `argv` with stderr on a pseudo-terminal (stdout a pipe); what the terminal showed."""
    import pty
    import select

    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=slave, env={**os.environ, "COLUMNS": "100"})
    os.close(slave)
    shown = b""
    while True:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
        elif proc.poll() is not None:
            break
    proc.wait(timeout=60)
    os.close(master)
    assert proc.returncode == 0
    return shown


def test_progress_bar_only_on_a_terminal_and_not_with_quiet(server: ServerProcess, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.write_bytes(SPOOL * 50)  # 150 messages (duplicate UIDs get new ones)
    base = [sys.executable, "-m", "mailcove", "--config", str(server.config_path), "--data", str(server.data_dir)]
    assert b"importing a@hamap.local" in _stderr_on_a_terminal([*base, "import", "mbox", A, str(spool)])
    assert b"importing" not in _stderr_on_a_terminal([*base, "import", "mbox", A, str(spool), "--quiet"])
    # and never when stderr is not a terminal (a pipe: cron, scripts, the other tests)
    assert "importing" not in cli(server, "import", "mbox", A, str(spool)).stderr


def test_all_users_in_one_command(server: ServerProcess, tmp_path: Path) -> None:
    spool_dir, _home = write_seed_mbox(tmp_path / "src")  # a has mail, b has none
    location = f"mbox:{tmp_path}/src/home/%n/mail:INBOX={spool_dir}/%n"
    out = cli(server, "import", "mail", "--all-users", "--location", location).stdout
    assert "a@hamap.local: 6 messages added" in out
    assert "b@hamap.local: skipped: no mailboxes found" in out
    again = cli(server, "import", "mail", "--all-users", "--location", location).stdout
    assert "a@hamap.local: 0 messages added, 6 already there" in again
    # the same with a home pattern and ~, for users without Unix accounts
    out = cli(server, "import", "mail", "--all-users", "--home", f"{tmp_path}/src/home/%n",
              "--location", f"mbox:~/mail:INBOX={spool_dir}/%n").stdout
    assert "a@hamap.local: 0 messages added, 6 already there" in out


async def test_reimport_after_both_servers_got_new_mail(tmp_path: Path) -> None:
    # An import while the old server still ran, then new mail on both sides: the old server
    # numbered its new message 4, mailcove gave 4 to mail it received. The second import must
    # neither skip the old server's 4 (it is not the message mailcove holds) nor duplicate
    # anything on a third run.
    from mailcove.importers import mailio
    from mailcove.store.api import DeliveryTarget
    from mailcove.store.sqlite import SqliteStore

    def mbox(last: int, n: int) -> bytes:
        out = b""
        for i in range(1, n + 1):
            base = b"X-IMAPbase: 1900000000 %010d\n" % last if i == 1 else b""
            out += (b"From MAILER-DAEMON Mon Nov  2 10:00:0%d 2026\nSubject: %d\n" % (i, i) + base
                    + b"X-UID: %d\nStatus: O\n\nbody %d\n\n" % (i, i))
        return out

    spool = tmp_path / "spool"
    store = SqliteStore(tmp_path / "data", watch_changes=False)
    await store.start()
    try:
        await store.create_account(A)

        async def run() -> mailio.BoxReport:
            report = await mailio.import_mail(store, A, [mailio.SourceBox("INBOX", "mbox", spool, 1)])
            return report.boxes[0]

        spool.write_bytes(mbox(3, 3))
        assert (await run()).added == 3
        (mine,) = await store.deliver(b"Subject: to mailcove\r\n\r\nx\r\n", [DeliveryTarget(A)])
        assert mine.uid == 4
        spool.write_bytes(mbox(4, 4))
        second = await run()
        assert (second.added, second.skipped, second.renumbered) == (1, 3, 1)
        third = await run()
        assert (third.added, third.skipped) == (0, 4)
        box = await store.get_mailbox(A, "INBOX")
        assert (box.messages, box.uidvalidity) == (5, 1900000000)
        assert await store.read_message(box.id, 5) == b"Subject: 4\r\n\r\nbody 4\r\n"
    finally:
        await store.close()
