"""The full-text index through a real `mailcove serve`, on both store backends: the server indexes
what IMAP APPENDed in the background, UID SEARCH BODY/TEXT over imapclient answers exactly what
the same server answers with the index switched off (a second server on the same store, its
index lookups disabled by a preload), `mailcove index status` / `mailcove check` show the
progress, and `mailcove index rebuild USER` rebuilds one user's entries."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import imapclient
import pytest
from imap_lab import LAB, PASSWORD, add_users

from mailcove_testing import REPO, ServerProcess, run_async
from textsearch_corpus import CORPUS, NEEDLES

A = "a@hamap.local"
ONLY_IMAP = {n: None for n in ("smtp", "submission", "submissions", "pop3", "pop3s", "http", "imaps")}
# Every BODY/TEXT lookup answered "cannot narrow": the server searches as it did before the index.
NO_INDEX = "from mailcove.store import frontend\n\nasync def _scan(self, mailbox_id, needle):\n    return None\n\n" \
           "frontend.Frontend.text_candidates = _scan\n"


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _cli(srv: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailcove", "--config", str(srv.config_path), "--data", str(srv.data_dir), *args],
        capture_output=True, text=True, timeout=120, env=srv.env, cwd=REPO,
    )


def _wait_indexed(srv: ServerProcess, total: int) -> str:
    deadline = time.monotonic() + 60
    while True:
        out = _cli(srv, "index", "status")
        assert out.returncode == 0, out.stderr
        if f"{total} of {total} message bodies indexed (100.0%), 0 waiting" in out.stdout:
            return out.stdout
        assert time.monotonic() < deadline, out.stdout
        time.sleep(0.3)


def _client(srv: ServerProcess) -> imapclient.IMAPClient:
    host, port = srv.address("imap")
    c = imapclient.IMAPClient(host, port=port, ssl=False, timeout=30)
    c.login(A, PASSWORD)
    c.select_folder("INBOX")
    return c


def _searches(c: imapclient.IMAPClient) -> dict[tuple[str, str], list[int]]:
    out = {}
    for needle in NEEDLES:
        try:
            raw = needle.encode()
        except UnicodeEncodeError:
            continue  # a lone surrogate: no client can send it
        if b"\x00" in raw:
            continue  # IMAP strings hold no NUL
        for field in ("BODY", "TEXT"):
            out[(field, needle)] = sorted(c.search([field, raw], charset="UTF-8"))
        out[("NOT BODY", needle)] = sorted(c.search(["NOT", "BODY", raw], charset="UTF-8"))
    return out


def test_search_over_imap_is_the_same_with_and_without_the_index(
    serve_factory: Callable[..., ServerProcess], tmp_path: Path, backend: str
) -> None:
    srv = serve_factory(LAB, listeners=ONLY_IMAP, start=False)
    add_users(srv, (A,))
    srv.start()
    c = _client(srv)
    for data in CORPUS:
        c.append("INBOX", data)
    _wait_indexed(srv, len(CORPUS))
    indexed = _searches(c)
    c.logout()
    assert indexed[("TEXT", "unique-tail-marker")] == [10]
    assert indexed[("BODY", "서울")] == [2, 3]
    assert sum(1 for v in indexed.values() if v) > len(NEEDLES)

    check = _cli(srv, "check", "--skip", "listeners", "--skip", "tls", "--skip", "dns", "--skip", "relay")
    assert f"full-text index: {len(CORPUS)} of {len(CORPUS)} message bodies indexed (100.0%)" in check.stdout, \
        check.stdout + check.stderr
    assert srv.stop() == 0

    # the same store, its index lookups switched off
    preload = tmp_path / "no_index.py"
    preload.write_text(NO_INDEX)
    plain = serve_factory(LAB, listeners=ONLY_IMAP, data_dir=srv.data_dir, dsn=srv.dsn, preload=[preload],
                          backend=backend)
    c = _client(plain)
    assert _searches(c) == indexed
    c.logout()


def test_index_rebuild_and_progress(serve_factory: Callable[..., ServerProcess], backend: str) -> None:
    srv = serve_factory(LAB, listeners=ONLY_IMAP, start=False)
    add_users(srv, (A, "b@hamap.local"))
    srv.create_accounts(A, "b@hamap.local")
    for data in CORPUS[:4]:
        srv_deliver_offline(srv, data, A)
    srv_deliver_offline(srv, CORPUS[4], "b@hamap.local")
    # nothing runs the indexer: `mailcove check` says so
    out = _cli(srv, "index", "status")
    assert out.stdout.strip() == "0 of 5 message bodies indexed (0.0%), 5 waiting", out.stdout + out.stderr
    check = _cli(srv, "check", "--skip", "listeners", "--skip", "tls", "--skip", "dns", "--skip", "relay")
    assert "WARN full-text index: 0 of 5 message bodies indexed (0.0%), 5 waiting; the server is not running" \
        in check.stdout, check.stdout
    r = _cli(srv, "index", "rebuild", A)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        f"{A}: 4 messages dropped from the index, 5 indexed",  # b's waiting body was indexed too
        "5 of 5 message bodies indexed (100.0%), 0 waiting",
    ]
    r = _cli(srv, "index", "rebuild", "b@hamap.local", "--background")
    assert r.stdout.splitlines() == [
        "b@hamap.local: 1 messages to index again; the running server indexes them",
        "4 of 5 message bodies indexed (80.0%), 1 waiting",
    ], r.stdout + r.stderr
    srv.start()  # the server indexes what is waiting
    _wait_indexed(srv, 5)
    r = _cli(srv, "index", "rebuild", "nobody@hamap.local")
    assert r.returncode == 1 and "nobody@hamap.local" in r.stderr


def srv_deliver_offline(srv: ServerProcess, data: bytes, user: str) -> None:
    """Store a message with no server running (as an older mailcove left it: unindexed)."""
    from mailcove.config import load_settings
    from mailcove.store.factory import open_store

    async def go() -> None:
        store = open_store(load_settings(srv.config_path, data_dir=str(srv.data_dir)), watch_changes=False)
        await store.start()
        try:
            await store.append(user, "INBOX", data)
        finally:
            await store.close()

    run_async(go())
