"""Mail written by a real Dovecot (Debian's, driven with doveadm: save, flags, expunge) imports
with exactly what that Dovecot reports: UIDVALIDITY, UIDNEXT, UIDs (with the gap an expunge
leaves), flags and keywords, received dates, and the message text its IMAP server serves. Both of
the seed's formats: mbox (mail_location = mbox:~/mail:INBOX=...) and Maildir++."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from importers.test_import_mail import A, B, cli, fetch_all, imap_login, server  # noqa: F401 - fixture
from mailcove_testing import ServerProcess, require_tool

pytestmark = pytest.mark.interop  # `make test-interop`: runs Debian's doveadm

MESSAGES = [
    b"From: x@example.org\nSubject: one\nMessage-ID: <1@x>\nX-UIDL: old-uidl-1\n\nFrom here on\n>From quoted\nbody\n",
    b"From: x@example.org\nSubject: two\n\nFrom me Mon Jan  1 00:00:00 2024\nno final newline",
    b"From: y@example.org\nSubject: three, expunged\n\nthree\n",
    b"Subject: four\nMIME-Version: 1.0\nContent-Type: text/plain\n\n" + b"a longer line of text here\n" * 2000,
]
FLAGS = {1: "\\Seen $Label1 work", 2: "\\Answered \\Flagged", 4: "\\Draft \\Seen"}


class Doveadm:
    """doveadm against a private config: mail as the unprivileged `nobody`, nothing under /etc."""

    def __init__(self, base: Path, location: str) -> None:
        self.bin = require_tool("doveadm")
        base.mkdir(exist_ok=True)
        self.home = base / "home"
        self.home.mkdir(parents=True)
        nobody = pwd.getpwnam("nobody")
        os.chown(self.home, nobody.pw_uid, nobody.pw_gid)
        base.chmod(0o755)  # Dovecot runs as nobody: it must reach the home directory
        run = base / "run"
        run.mkdir()
        self.conf = base / "dovecot.conf"
        self.conf.write_text(
            f"protocols =\nssl = no\nbase_dir = {run}\nstate_dir = {run}\nlog_path = {base}/dovecot.log\n"
            f"mail_location = {location.replace('~', str(self.home))}\n"
            f"mail_uid = {nobody.pw_uid}\nmail_gid = {nobody.pw_gid}\nfirst_valid_uid = 1\nfirst_valid_gid = 1\n"
        )

    def __call__(self, *args: str, data: bytes | None = None) -> bytes:
        env = {**os.environ, "USER": "a", "HOME": str(self.home)}
        proc = subprocess.run([self.bin, "-c", str(self.conf), *args], input=data, env=env, capture_output=True,
                              timeout=60)
        assert proc.returncode == 0, proc.stderr.decode()
        return proc.stdout

    def fill(self, folder: str) -> None:
        for m in MESSAGES:
            self("save", "-m", "INBOX", data=m)
        for uid, flags in FLAGS.items():
            self("flags", "add", flags, "mailbox", "INBOX", "uid", str(uid))
        self("expunge", "mailbox", "INBOX", "uid", "3")
        self("mailbox", "create", folder)
        self("save", "-m", folder, data=b"Subject: in a folder\n\nfolder text\n")
        self("flags", "add", "\\Seen", "mailbox", folder, "uid", "1")

    def state(self, mailbox: str) -> tuple[int, int, list[tuple[int, set[str], float, bytes]]]:
        """UIDVALIDITY, UIDNEXT and (uid, flags, received date, text with CRLF) as Dovecot sees them."""
        status = self("-f", "tab", "mailbox", "status", "uidvalidity uidnext", mailbox).decode().splitlines()
        row = dict(zip(status[0].split("\t"), status[1].split("\t"), strict=True))
        meta = self("-f", "tab", "fetch", "uid flags date.received", "mailbox", mailbox).decode().splitlines()[1:]
        texts = self("-f", "pager", "fetch", "uid text", "mailbox", mailbox).split(b"\f\n")
        bodies = {}
        for rec in texts:
            head, _, rest = rec.partition(b"\ntext:\n")
            bodies[int(head.split(b"uid: ")[1])] = rest.replace(b"\n", b"\r\n")
        msgs = []
        for line in meta:
            uid, flags, received = line.split("\t")
            when = time.mktime(time.strptime(received, "%Y-%m-%d %H:%M:%S"))
            msgs.append((int(uid), set(flags.split()) - {"\\Recent"}, when, bodies[int(uid)]))
        return int(row["uidvalidity"]), int(row["uidnext"]), sorted(msgs)


@pytest.fixture
def dovecot_dir() -> Iterator[Path]:
    # Not under pytest's tmp_path: that sits in a 0700 root-owned directory nobody cannot enter.
    d = Path(tempfile.mkdtemp(prefix="mailcove-import-dovecot-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize(
    ("location", "folder", "user"),
    [("mbox:~/mail:INBOX=~/inbox", "Work/Old", A), ("maildir:~/Maildir", "Work.Old", B)],
)
def test_dovecot_written_mail_imports_as_dovecot_serves_it(
    server: ServerProcess, dovecot_dir: Path, location: str, folder: str, user: str  # noqa: F811
) -> None:
    dove = Doveadm(dovecot_dir, location)
    dove.fill(folder)
    server.start()
    # Dovecot's files belong to its mail UID (nobody here), not to a Unix user "a": --any-owner
    args = ("--location", location, "--home", str(dove.home), "--login", "a", "--any-owner")
    out = cli(server, "import", "mail", user, *args).stdout
    assert "INBOX: 3 added" in out and "Work/Old: 1 added" in out, out
    m = imap_login(server, user)
    try:
        for dove_name, ours in (("INBOX", "INBOX"), (folder, "Work/Old")):
            expected = dove.state(dove_name)
            got = fetch_all(m, ours)
            assert got[0] == expected[0]  # UIDVALIDITY
            assert got[1] == expected[1]  # UIDNEXT
            assert [x[:3] for x in got[2]] == [x[:3] for x in expected[2]]  # UIDs, flags, dates
            assert [x[3] for x in got[2]] == [x[3] for x in expected[2]]  # the bytes an IMAP client gets
    finally:
        m.logout()
    assert "0 added" in cli(server, "import", "mail", user, *args).stdout

    # Full circle: mailcove's export, read by the same Dovecot, is the mail Dovecot started with.
    fmt, back_location = ("mbox", "mbox:~/mail:INBOX=~/mail/inbox") if location.startswith("mbox") else (
        "maildir", "maildir:~/Maildir")
    back = Doveadm(dovecot_dir / "back", back_location)
    dest = back.home / ("mail" if fmt == "mbox" else "Maildir")
    cli(server, "export", user, str(dest), "--format", fmt)
    for dirpath, dirnames, filenames in os.walk(back.home):
        for name in [".", *dirnames, *filenames]:
            os.chown(os.path.join(dirpath, name), pwd.getpwnam("nobody").pw_uid, pwd.getpwnam("nobody").pw_gid)
    for name in ("INBOX", folder):
        assert back.state(name) == dove.state(name)
