"""One user can never see or change another user's mailboxes, through any IMAP command."""

# ruff: noqa: F811 - the fixtures are imported from imap_lab and then requested by name
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "imap"))
from imap_lab import fetches, imap, imap_module, message  # noqa: F401

from mailcove.proto.imap.client import Tagged

SECRET = "secret-of-b"


def test_no_command_reaches_another_account(imap):
    imap.deliver(message(SECRET, SECRET), imap.b)
    b = imap.client(imap.b)
    b.ok("CREATE Private")
    a = imap.client(imap.a)
    # names that try to leave the account: other user's paths, traversal, absolute, ~user
    for name in (f"{imap.b}/INBOX", f"../{imap.b}/INBOX", "/INBOX/../../b", "~b/INBOX", "Private",
                 f"#user/{imap.b}", f"{imap.b}", "..", "INBOX/../Private", "%2e%2e"):
        for cmd in (f'SELECT "{name}"', f'EXAMINE "{name}"', f'STATUS "{name}" (MESSAGES)', f'DELETE "{name}"',
                    f'RENAME "{name}" Mine', f'GETQUOTAROOT "{name}"'):
            untagged, done = a.cmd(cmd)
            assert done.status in ("NO", "BAD"), (cmd, done)
            assert not any(SECRET.encode() in r.raw for r in untagged), cmd
            a.ok("NOOP")  # consecutive BADs end the session (a limit); keep it going
    untagged = a.ok('LIST "" "*"')
    assert b"Private" not in b"".join(r.raw for r in untagged)
    untagged = a.ok('LIST "" "%/%"') + a.ok('LIST "/" "*"') + a.ok('LSUB "" "*"') + a.ok('LIST "~" "*"')
    assert b"Private" not in b"".join(r.raw for r in untagged)
    # ".." can name no mailbox: the LIST matches nothing (OK, not BAD: the syntax is valid)
    untagged, done = a.cmd('LIST "../" "*"')
    assert done.status == "OK" and not [r for r in untagged if r.kind == "LIST"]
    # COPY / MOVE / APPEND into b's names create nothing in b's account
    imap.deliver(message("mine"), imap.a)
    a.ok("SELECT INBOX")
    for name in (f"{imap.b}/INBOX", "../b/INBOX"):
        _, done = a.cmd(f'COPY 1 "{name}"')
        assert done.status in ("NO", "BAD")
        a.send(f'x APPEND "{name}" {{5}}\r\n'.encode())
        r = a.read_one()
        assert isinstance(r, Tagged) and r.status in ("NO", "BAD")
        a.ok("NOOP")
    # b's mailbox is unchanged
    got = fetches(b.ok("SELECT INBOX") and b.ok("FETCH 1:* (UID)"))
    assert len(got) == 1
    assert {r.data["name"] for r in b.ok('LIST "" "*"') if r.kind == "LIST"} >= {b"Private", b"INBOX"}


def test_uids_of_another_mailbox_are_not_reachable(imap):
    imap.deliver(message(SECRET, SECRET), imap.b)
    a = imap.client(imap.a, select="INBOX")
    for cmd in ("UID FETCH 1:* (BODY[])", "FETCH 1 (BODY[])", "UID STORE 1 +FLAGS (\\Deleted)", "UID EXPUNGE 1:*",
                "UID COPY 1 INBOX", "UID MOVE 1 Trash", "SEARCH TEXT secret"):
        untagged, _done = a.cmd(cmd)
        assert not any(SECRET.encode() in r.raw for r in untagged), cmd
    b = imap.client(imap.b, select="INBOX")
    got = fetches(b.ok("FETCH 1 (FLAGS BODY.PEEK[TEXT])"))
    assert "\\Deleted" not in got[1]["FLAGS"] and SECRET.encode() in got[1]["BODY[TEXT]"]
