"""`mailcove db copy`: an IMAP client sees the same mailboxes after the copy and does not resync.

A real client (imapclient) records, on a server running on SQLite, what its cache depends on:
each mailbox's UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, the UIDs with their flags and MODSEQs, the
bytes, and what QRESYNC answers for the expunged UIDs. The server stops; `mailcove db copy`
(the real CLI, a subprocess) moves the installation; a server on the target comes up and the
client records the same things there. They must be equal, the password must still work (the
hash moved with the user) and a new message must get the next UID. The queue moves too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient

from mailcove_testing import REPO, ServerProcess, run_async

BASE = """\
[auth]
allow_plaintext = true
argon2_time_cost = 1
argon2_memory_kib = 1024
[tls]
enabled = false
"""
IMAP_ONLY: dict[str, str | None] = {
    "smtp": None, "submission": None, "submissions": None, "pop3": None, "pop3s": None, "http": None,
}
USERS = {"a@hamap.local": "It1", "b@hamap.local": "It2"}


def mailcove(cfg: Path, data: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH", "")) if p)
    env.pop("MAILCOVE_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "mailcove", "--config", str(cfg), "--data", str(data), *args],
        input=input, capture_output=True, text=True, env=env, cwd=REPO, timeout=300,
    )


def client(srv: ServerProcess, user: str) -> IMAPClient:
    host, port = srv.address("imap")
    c = IMAPClient(host, port, ssl=False, timeout=30)
    c.login(user, USERS[user])
    c.enable("QRESYNC")
    return c


def record(srv: ServerProcess) -> dict[str, Any]:
    """Everything a client's cache holds, per user and mailbox."""
    out: dict[str, Any] = {}
    for user in USERS:
        c = client(srv, user)
        try:
            for _flags, _delim, name in c.list_folders():
                info = c.select_folder(name, readonly=True)
                uids = c.search("ALL")
                fetched = c.fetch(uids, ["FLAGS", "MODSEQ", "BODY.PEEK[]", "INTERNALDATE"]) if uids else {}
                # QRESYNC: the server says which UIDs vanished since MODSEQ 1 (its expunge
                # records). imapclient has no QRESYNC form of SELECT: send it through imaplib.
                raw = c._imap
                raw.untagged_responses.pop("VANISHED", None)
                typ, _data = raw._simple_command("EXAMINE", f'"{name}" (QRESYNC ({info[b"UIDVALIDITY"]} 1))')
                assert typ == "OK"
                untagged = raw.untagged_responses.pop("VANISHED", [])
                out[f"{user}/{name}"] = {
                    "uidvalidity": info[b"UIDVALIDITY"],
                    "uidnext": info[b"UIDNEXT"],
                    "highestmodseq": info.get(b"HIGHESTMODSEQ"),
                    "messages": {
                        # \Recent is per-process session state, not data: EXAMINE on a server
                        # nobody selected since it started shows every message as \Recent.
                        uid: (sorted(f for f in d[b"FLAGS"] if f != b"\\Recent"), d[b"MODSEQ"], d[b"BODY[]"],
                              d[b"INTERNALDATE"])
                        for uid, d in fetched.items()
                    },
                    "vanished": untagged,
                }
        finally:
            c.logout()
    return out


def populate(srv: ServerProcess) -> None:
    a = client(srv, "a@hamap.local")
    try:
        for i in range(6):
            a.append("INBOX", b"Subject: m%d\r\nFrom: x@example.org\r\n\r\nbody %d\r\n" % (i, i), flags=[f"$Tag{i}"])
        a.append("INBOX", b"Subject: big\r\n\r\n" + b"0123456789" * 20000 + b"\r\n")  # above the inline limit
        a.create_folder("Projects/2026")
        a.append("Projects/2026", b"Subject: p\r\n\r\nplan\r\n", flags=["\\Flagged"])
        a.select_folder("INBOX")
        a.add_flags([1, 2], ["\\Seen", "$Work"])
        a.add_flags([3, 5], ["\\Deleted"])
        a.expunge()
        a.remove_flags([2], ["$Work"])
        a.subscribe_folder("Projects/2026")
    finally:
        a.logout()
    b = client(srv, "b@hamap.local")
    try:
        b.append("INBOX", b"Subject: for b\r\n\r\nhi\r\n")
    finally:
        b.logout()


def _side(kind: str, data: Path, request: pytest.FixtureRequest) -> tuple[str, str]:
    """(config, location for db copy) of one side: SQLite in `data`, or a fresh PostgreSQL database."""
    if kind == "postgres":
        from pg_testing import PgCluster

        cluster: PgCluster = request.getfixturevalue("pg_cluster")
        dsn = cluster.dsn(cluster.create_database())
        return BASE + f'[store]\nbackend = "postgres"\ndsn = "{dsn}"\n', dsn
    return BASE, f"sqlite:{data}"


@pytest.mark.parametrize(("source", "target"), [("sqlite", "postgres"), ("postgres", "sqlite")])
def test_copy_keeps_what_imap_clients_cache(
    serve_factory: Callable[..., ServerProcess], tmp_path: Path, request: pytest.FixtureRequest, source: str,
    target: str,
) -> None:
    src_data = tmp_path / "src-data"
    src_config, frm = _side(source, src_data, request)
    src = serve_factory(src_config, listeners=IMAP_ONLY, data_dir=src_data, start=False)
    assert mailcove(src.config_path, src_data, "--create", "domain", "add", "hamap.local").returncode == 0
    for user, password in USERS.items():
        r = mailcove(src.config_path, src_data, "user", "add", user, "--password-stdin", input=password + "\n")
        assert r.returncode == 0, r.stderr
    src.start()
    populate(src)
    before = record(src)
    assert src.stop() == 0
    # Queued with the server stopped, so no queue runner attempts it before the copy.
    queued = _queue_one(src.config_path, src_data)

    dst_data = tmp_path / "dst-data"
    dst_config, to = _side(target, dst_data, request)
    r = mailcove(src.config_path, src_data, "db", "copy", "--from", frm, "--to", to)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "copied 2 accounts" in r.stdout and "1 queue entries" in r.stdout
    # a second copy into the now non-empty target is refused
    again = mailcove(src.config_path, src_data, "db", "copy", "--from", frm, "--to", to)
    assert again.returncode == 2 and "already has accounts" in again.stderr
    dst = serve_factory(dst_config, listeners=IMAP_ONLY, data_dir=dst_data, start=False)
    # the queue entry moved with its bytes (checked before a queue runner could touch it)
    assert [data for _id, data in _queue(dst.config_path, dst_data)] == [queued]

    dst.start()
    after = record(dst)
    assert after.keys() == before.keys()
    for key in before:
        assert after[key] == before[key], key
    assert before["a@hamap.local/INBOX"]["vanished"], "the expunge records were not exercised"

    # The copy carries on: the next message gets UIDNEXT, a MODSEQ above HIGHESTMODSEQ.
    c = client(dst, "a@hamap.local")
    try:
        c.select_folder("INBOX")
        c.append("INBOX", b"Subject: after\r\n\r\nnew\r\n")
        uid = max(c.search("ALL"))
        assert uid == before["a@hamap.local/INBOX"]["uidnext"]
        (modseq,) = [d[b"MODSEQ"][0] for d in c.fetch([uid], ["MODSEQ"]).values()]
        assert modseq > before["a@hamap.local/INBOX"]["highestmodseq"]
    finally:
        c.logout()


def _queue_one(cfg: Path, data_dir: Path) -> bytes:
    """Put one message in the outbound queue through the store API (no SMTP listener here)."""
    from mailcove.config import load_settings
    from mailcove.store.api import OutboundEnvelope, OutboundRecipient
    from mailcove.store.factory import open_store

    msg = b"Subject: out\r\n\r\nto the world\r\n"

    async def go() -> None:
        store = open_store(load_settings(cfg, data_dir=str(data_dir)), watch_changes=False)
        await store.start()
        try:
            env = OutboundEnvelope("a@hamap.local", (OutboundRecipient("r@remote.example"),))
            # Due in a day: the target's queue runner must not attempt it (and bounce into INBOX)
            # while the test compares mailboxes.
            await store.submit(msg, [], env, internaldate=time.time() + 86400)
        finally:
            await store.close()

    run_async(go())
    return msg


def _queue(cfg: Path, data_dir: Path) -> list[tuple[int, bytes]]:
    from mailcove.config import load_settings
    from mailcove.store.factory import open_store

    async def go() -> list[tuple[int, bytes]]:
        store = open_store(load_settings(cfg, data_dir=str(data_dir)), watch_changes=False)
        await store.start()
        try:
            return [(i.id, await store.queue_read(i.id)) for i in await store.queue_list()]
        finally:
            await store.close()

    return run_async(go())


@pytest.mark.parametrize(
    ("frm", "to", "message"),
    [
        ("mysql://x", "sqlite:/tmp/x", "not a store location"),
        ("sqlite:", "postgresql://127.0.0.1/x", "needs the data directory"),
        ("sqlite:/same", "sqlite:/same", "are the same"),
        ("sqlite:/nonexistent-mailcove-dir", "sqlite:/tmp/elsewhere", "holds no mailcove store"),
    ],
)
def test_copy_refuses_bad_locations(frm: str, to: str, message: str) -> None:
    from click.testing import CliRunner

    from mailcove.cli.main import root

    r = CliRunner().invoke(root, ["db", "copy", "--from", frm, "--to", to])
    assert r.exit_code == 2, r.output
    assert message in r.output
