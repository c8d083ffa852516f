"""imapclient (a real client library; its own response parser reads every answer) against
`mailcove serve`: two sessions on one mailbox, and the library's everyday calls.

The multi-session test asserts exactly what the idle session receives and when: EXISTS within a
second of another session's APPEND, the other session's flag change at its next NOOP, and an
EXPUNGE at once while idling.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from imapclient import IMAPClient

from interop.imap_servers import PASSWORD, PLAIN_CONFIG, message, shared
from mailcove_testing import ServerProcess, with_store_backend


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def imap_lab(
    request: pytest.FixtureRequest, imap_lab: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """The shared lab server (sqlite), and the same on the PostgreSQL store (issue 8)."""
    if request.param == "sqlite":
        yield imap_lab
        return
    cluster = request.getfixturevalue("pg_cluster")
    config = with_store_backend(PLAIN_CONFIG, "postgres", cluster.dsn(cluster.create_database()))
    yield from shared(tmp_path_factory.mktemp("imap-interop-lab-postgres"), config)


def connect(srv: ServerProcess, who: str) -> IMAPClient:
    host, port = srv.address("imap")
    c = IMAPClient(host, port=port, ssl=False, timeout=10)
    c.login(who, PASSWORD)
    return c


def wait_for(c: IMAPClient, what: bytes, seconds: float = 1.0) -> list:
    got: list = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got += c.idle_check(timeout=max(0.05, deadline - time.monotonic()))
        if any(isinstance(r, tuple) and len(r) > 1 and r[1] == what for r in got):
            return got
    raise AssertionError(f"no {what!r} within {seconds} s: {got!r}")


def test_two_sessions_one_mailbox(imap_lab: ServerProcess, user: str) -> None:
    srv = imap_lab
    for i in (1, 2, 3):
        assert srv.deliver(message(i), [user]).startswith("OK")
    a, b = connect(srv, user), connect(srv, user)
    try:
        assert a.select_folder("INBOX")[b"EXISTS"] == 3
        b.select_folder("INBOX")

        a.idle()
        b.append("INBOX", message(4), flags=(b"\\Seen",))
        got = wait_for(a, b"EXISTS")
        assert (4, b"EXISTS") in got
        a.idle_done()

        b.add_flags([1], [b"\\Flagged"])
        _text, responses = a.noop()
        fetches = [r for r in responses if len(r) > 2 and r[1] == b"FETCH"]
        assert len(fetches) == 1 and fetches[0][0] == 1
        assert b"\\Flagged" in fetches[0][2][fetches[0][2].index(b"FLAGS") + 1]

        a.idle()
        b.delete_messages([2])
        b.expunge()
        got = wait_for(a, b"EXPUNGE")
        assert (2, b"EXPUNGE") in got
        a.idle_done()
        # both sessions see the same messages after the expunge (imapclient works by UID) ...
        assert a.search("ALL") == b.search("ALL") == [1, 3, 4]
        assert a.fetch([4], ["FLAGS"])[4][b"FLAGS"] == (b"\\Seen",)
        # ... and the same sequence numbers
        a.use_uid = b.use_uid = False
        assert a.fetch([1, 2, 3], ["UID"]) == b.fetch([1, 2, 3], ["UID"])
        assert [v[b"UID"] for v in a.fetch([1, 2, 3], ["UID"]).values()] == [1, 3, 4]
    finally:
        a.logout()
        b.logout()


def test_everyday_calls(imap_lab: ServerProcess, user: str) -> None:
    srv = imap_lab
    msgs = [message(i, subj) for i, subj in enumerate(["Planning", "Re: Planning", "Other"], start=1)]
    for m in msgs:
        assert srv.deliver(m, [user]).startswith("OK")
    c = connect(srv, user)
    try:
        assert b"IDLE" in c.capabilities() and c.has_capability("MOVE")
        names = [name for _flags, _delim, name in c.list_folders()]
        assert {"INBOX", "Sent", "Drafts", "Trash"} <= set(names)
        assert c.find_special_folder(b"\\Sent") == "Sent"
        c.create_folder("Projects/2026")
        c.rename_folder("Projects/2026", "Projects/Done")
        assert c.folder_exists("Projects/Done") and not c.folder_exists("Projects/2026")
        status = c.folder_status("INBOX", [b"MESSAGES", b"UIDNEXT", b"UNSEEN"])
        assert status[b"MESSAGES"] == 3 and status[b"UNSEEN"] == 3
        c.select_folder("INBOX")
        uids = c.search(["SUBJECT", "Planning"])
        assert uids == [1, 2]
        assert c.sort(["SUBJECT"]) == [3, 1, 2]
        assert c.thread("REFERENCES") == ((1, 2), (3,))  # "Re: Planning" joins "Planning" by subject
        data = c.fetch([1], ["RFC822.SIZE", "BODY.PEEK[]", "ENVELOPE", "BODYSTRUCTURE"])[1]
        assert data[b"BODY[]"] == msgs[0] and data[b"RFC822.SIZE"] == len(msgs[0])
        assert data[b"ENVELOPE"].subject == b"Planning"
        c.copy([1], "Projects/Done")
        c.move([3], "Archive")
        assert c.search("ALL") == [1, 2]
        assert c.folder_status("Projects/Done", [b"MESSAGES"])[b"MESSAGES"] == 1
        assert c.folder_status("Archive", [b"MESSAGES"])[b"MESSAGES"] == 1
        c.delete_folder("Projects/Done")
        assert not c.folder_exists("Projects/Done")
    finally:
        c.logout()
