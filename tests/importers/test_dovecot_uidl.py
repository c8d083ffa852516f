"""Dovecot's POP3 UIDL rules as the importer applies them (importers/dovecot_uidl.py), and
`mailcove import dovecot` reading them from the configuration, includes and `protocol pop3 { }`
included. The same values against a real Dovecot: tests/interop/test_pop3_uidl_dovecot.py."""

from __future__ import annotations

import poplib
import re
from pathlib import Path

import pytest

from importers.test_import_config import Cli, cli, not_imported  # noqa: F401 - fixture
from importers.test_import_mail import A, B, server  # noqa: F401 - fixture
from importers.test_import_mail import cli as mail_cli
from mailcove.importers import dovecot_uidl as du
from mailcove.importers import maildir as md
from mailcove_testing import ServerProcess
from pop3.helpers import PASSWORD

V, U = "1729750000", "3"


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("%08Xu%08Xv", "000000036719e3f0"),  # Dovecot's default: lowercase hex (var-expand.c "%llx")
        ("%v.%u", "1729750000.3"),
        ("%u", "3"),
        ("%Xv", "6719e3f0"),
        ("%XUv", "6719E3F0"),  # modifiers apply in order: uppercase after hex
        ("%UXv", "6719e3f0"),
        ("%3v", "172"),  # a width without 0 cuts
        ("%0.5u", "3"),  # an offset of 0, then a width without 0
        ("%2.3v", "297"),  # offset 2, width 3
        ("%-3.2v", "00"),  # the last 3, then 2 of them
        ("%Rv", "0000579271"),
        ("%%u-%u", "%u-3"),
        ("%{uidvalidity}/%u", "1729750000/3"),
        ("%{uid}", ""),  # only short variables are looked up (pop3-client.c parse_uidl_keymask)
    ],
)
def test_format_expands_like_dovecot(fmt: str, expected: str) -> None:
    values = {"v": V}
    if "u" in du.keys_of(fmt):
        values["u"] = U
    assert du.expand(fmt, values) == expected


@pytest.mark.parametrize("fmt", ["", "uidl", "%{uid}", "%n", "%Hu"])
def test_formats_dovecot_refuses_are_refused(fmt: str) -> None:
    with pytest.raises(du.FormatError):
        du.check_format(fmt)


def test_dovecots_order_saved_then_xuidl_then_format() -> None:
    header = b"Subject: x\nX-UIDL: qpopper-1\n"
    base = du.Facts("maildir", header, 3, 1729750000, "1700000000.M1P2.host,S=10", None, None)
    stock, reuse = du.OldPop3(), du.OldPop3(reuse_xuidl=True)
    assert du.old_uidl(stock, base) == "000000036719e3f0"  # pop3_reuse_xuidl = no: the header is ignored
    assert du.old_uidl(reuse, base) == "qpopper-1"
    saved = du.Facts("maildir", header, 3, 1729750000, "1700000000.M1P2.host,S=10", None, "saved-7")
    assert du.old_uidl(reuse, saved) == "saved-7"
    empty_p = du.Facts("maildir", header, 3, 1729750000, "1700000000.M1P2.host,S=10", None, "")
    assert du.old_uidl(reuse, empty_p) == "1700000000.M1P2.host,S=10"  # an empty P: the base name
    assert du.old_uidl(du.OldPop3("%g"), base) == "1700000000.M1P2.host,S=10"
    guid = du.Facts("maildir", header, 3, 1729750000, "f", "0123abcd", None)
    assert du.old_uidl(du.OldPop3("%g"), guid) == "0123abcd"


def test_what_dovecot_could_not_serve_is_not_invented() -> None:
    mbox = du.Facts("mbox", b"Subject: x\n", 3, 1729750000)
    with pytest.raises(du.Unknown, match="%f needs Maildir"):
        du.old_uidl(du.OldPop3("%f"), mbox)
    maildir = du.Facts("maildir", b"Subject: x\n", 3, 1729750000, "f")
    with pytest.raises(du.Unknown, match="%m needs mbox"):
        du.old_uidl(du.OldPop3("%m"), maildir)
    unnumbered = du.Facts("mbox", b"Subject: x\n", None, None)
    with pytest.raises(du.Unknown, match="UID"):
        du.old_uidl(du.OldPop3(), unnumbered)
    # %v.%u looks like mailcove's own form: kept only as the message's own (UIDVALIDITY kept)
    numbered = du.Facts("mbox", b"Subject: x\n", 3, 1729750000)
    assert du.kept_uidl(du.OldPop3("%v.%u"), numbered, b"1729750000.3") == "1729750000.3"
    with pytest.raises(du.Unknown, match="another message"):
        du.kept_uidl(du.OldPop3("%v.%u"), numbered, b"1800000000.9")
    spaced = du.Facts("mbox", b"X-UIDL: two words\n", 3, 1729750000)
    with pytest.raises(du.Unknown, match="not one POP3 allows"):
        du.kept_uidl(du.OldPop3(reuse_xuidl=True), spaced)


def test_mbox_md5_takes_the_headers_apop3d_takes() -> None:
    first = b"Received: from a\n\tby b\nDate: d1\nMessage-ID: <1@x>\nSubject: s\n"
    # Date and Message-ID after the first Received, later Received headers and others do not count
    same = b"Received: from a\n\tby b\nReceived: from c\nDate: d2\nMessage-ID: <2@x>\nSubject: t\n"
    assert du.mbox_md5(first) == du.mbox_md5(same)
    assert du.mbox_md5(first, "all") != du.mbox_md5(same, "all")
    assert du.mbox_md5(b"Date: d1\nReceived: r\n") != du.mbox_md5(b"Date: d2\nReceived: r\n")


def test_uidlist_fields_g_and_p_are_read() -> None:
    text = "3 V1729750000 N4 Gabc\n1 W120 P000000016719e3f0 :1.M1.h,S=100\n2 P :2.M2.h,S=5\n3 Gfeed:1 :3.M3.h\n"
    ul = md.parse_uidlist(text)
    assert ul.uids == {"1.M1.h,S=100": 1, "2.M2.h,S=5": 2, "3.M3.h": 3}
    assert ul.ext == {"1.M1.h,S=100": {"P": "000000016719e3f0"}, "2.M2.h,S=5": {"P": ""},
                      "3.M3.h": {"G": "feed:1"}}


def write_conf(root: Path, main: str, files: dict[str, str]) -> Path:
    d = root / "dovecot"
    (d / "conf.d").mkdir(parents=True)
    (d / "dovecot.conf").write_text(main)
    for name, text in files.items():
        (d / "conf.d" / name).write_text(text)
    return d


def test_import_dovecot_reads_the_pop3_uidl_settings(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    d = write_conf(tmp_path, "!include conf.d/*.conf\nmail_location = maildir:~/Maildir\n", {
        "10-mail.conf": 'pop3_uidl_format = %v.%u\n',
        "20-pop3.conf": (
            "pop3_reuse_xuidl = yes\n"
            "protocol pop3 {\n  pop3_uidl_format = %08Xv%08Xu\n  pop3_deleted_flag = \"$POP3Deleted\"\n"
            "  pop3_client_workarounds = outlook-no-nuls\n}\n"
        ),
    })
    report = cli.json("import", "dovecot", str(d))
    facts = report["facts"]
    # protocol pop3 { } wins over the top level, as in Dovecot; a quoted $ is not a variable
    assert facts["pop3_uidl_format"] == "%08Xv%08Xu"
    assert facts["pop3_reuse_xuidl"] == "yes" and facts["pop3_deleted_flag"] == "$POP3Deleted"
    step = next(s for s in report["next_steps"] if "import mail" in s)
    assert ("--location 'maildir:~/Maildir' --pop3-uidl-format '%08Xv%08Xu' --pop3-reuse-xuidl"
            " --pop3-deleted-flag '$POP3Deleted'") in step
    config = {c["key"]: (c["status"], c["value"]) for c in report["changes"]}
    assert config["pop3.deleted_flag"] == ("add", "$POP3Deleted")  # POP3 keeps hiding them
    skipped = not_imported(report)
    assert "set again later" in skipped[("10-mail.conf", 1)]
    assert "per-protocol" in skipped[("20-pop3.conf", 5)]
    assert ("20-pop3.conf", 3) not in skipped and ("20-pop3.conf", 1) not in skipped


def test_import_dovecot_stock_pop3_needs_no_options(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    d = write_conf(tmp_path, "mail_location = mbox:~/mail:INBOX=/var/mail/%u\npop3_save_uidl = yes\n", {})
    report = cli.json("import", "dovecot", str(d))
    assert report["facts"]["pop3_uidl_format"] == "%08Xu%08Xv"  # Dovecot's default
    step = next(s for s in report["next_steps"] if "import mail" in s)
    assert "--location 'mbox:~/mail:INBOX=/var/mail/%u'   (once per user" in step
    # mbox: Dovecot 2.3 saves no UIDL there (pop3-commands.c, mbox has no update_pop3_uidl)
    assert ("dovecot.conf", 2) not in not_imported(report) and report["facts"]["pop3_save_uidl"] == "yes"


SPOOL = (
    b"From alice@example.org Mon Nov  2 10:00:00 2026\n"
    b"Subject: one\nMessage-ID: <u1@x>\nX-IMAPbase: 1729750000 0000000004\nX-UID: 3\nStatus: O\n\none\n\n"
    b"From bob@example.org Tue Nov  3 11:30:00 2026\n"
    b"Subject: two\nMessage-ID: <u2@x>\nX-UIDL: qpopper-0815\nX-UID: 4\nStatus: O\n\ntwo\n\n"
    b"From carol@example.org Wed Nov  4 12:45:30 2026\n"
    b"Subject: three, not numbered yet\nMessage-ID: <u3@x>\n\nthree\n"
)


def pop3_uidls(srv: ServerProcess, user: str) -> list[bytes]:
    host, port = srv.address("pop3")
    p = poplib.POP3(host, port, timeout=30)
    try:
        p.user(user)
        p.pass_(PASSWORD)
        return [line.split(b" ", 1)[1] for line in p.uidl()[1]]
    finally:
        p.quit()


def test_imported_mail_keeps_dovecots_uidls_over_pop3(server: ServerProcess, tmp_path: Path) -> None:  # noqa: F811
    spool = tmp_path / "a"
    spool.write_bytes(SPOOL)
    # A stock Dovecot: %08Xu%08Xv, the X-UIDL header ignored although mailcove's reuse_xuidl is on.
    out = mail_cli(server, "import", "mbox", A, str(spool)).stdout
    assert "3 keep their POP3 UIDL" in out, out
    # B's INBOX already holds mail, so the old UIDVALIDITY and UIDs cannot be kept: the UIDLs of
    # the numbered messages are kept all the same; the unnumbered one's old UID is not known.
    earlier = tmp_path / "earlier"
    earlier.write_bytes(b"From x@example.org Sun Nov  1 09:00:00 2026\nSubject: earlier\n\nearlier\n")
    mail_cli(server, "import", "mbox", B, str(earlier))
    r = mail_cli(server, "import", "mbox", B, str(spool), "--pop3-reuse-xuidl")
    assert "2 keep their POP3 UIDL" in r.stdout and "old UID is not known" in r.stderr, r.stdout + r.stderr
    server.start()
    assert pop3_uidls(server, A) == [b"000000036719e3f0", b"000000046719e3f0", b"000000056719e3f0"]
    theirs = pop3_uidls(server, B)
    assert theirs[1:3] == [b"000000036719e3f0", b"qpopper-0815"]
    assert all(re.fullmatch(rb"\d+\.\d+", u) for u in (theirs[0], theirs[3])), theirs
