"""`mailcove backup` while mail keeps arriving, `mailcove restore` into a new data dir, and a
server on the restored dir serving every message acknowledged before the backup started,
byte-identical, with the same UIDs and UIDVALIDITY."""

from __future__ import annotations

import imaplib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from mailcove_testing import REPO

USERS = ("a@hamap.local", "b@hamap.local")


def _cli(config: Path, data: Path, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    env.pop("MAILCOVE_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "mailcove", "--config", str(config), "--data", str(data), *args],
                          input=stdin.decode(), capture_output=True, text=True, env=env, cwd=REPO, timeout=120)


def _message(n: int) -> bytes:
    # every 7th message is larger than the inline limit, so blob files are part of the backup
    body = (b"x" * 200 + b"\r\n") * (800 if n % 7 == 0 else 2)
    return b"From: s@example.org\r\nTo: a@hamap.local\r\nSubject: m%d\r\nMessage-ID: <%d@t>\r\n\r\n" % (n, n) + body


def _imap_state(host: str, port: int, user: str) -> tuple[int, dict[int, bytes]]:
    with imaplib.IMAP4(host, port) as imap:
        imap.login(user, "It1")
        imap.select("INBOX", readonly=True)
        uidvalidity = int(imap.response("UIDVALIDITY")[1][0])  # type: ignore[index]
        typ, data = imap.uid("FETCH", "1:*", "(UID BODY.PEEK[])")
        assert typ == "OK"
        out: dict[int, bytes] = {}
        for item in data:
            if isinstance(item, tuple):
                uid = int(item[0].split(b"UID ")[1].split()[0])
                out[uid] = item[1]
        return uidvalidity, out


def test_backup_under_load_then_restore(serve_factory, tmp_path):
    cfg = '[auth]\nallow_plaintext = true\n[tls]\nenabled = false\n'
    srv = serve_factory(cfg)
    assert _cli(srv.config_path, srv.data_dir, "domain", "add", "hamap.local").returncode == 0
    for u in USERS:
        r = _cli(srv.config_path, srv.data_dir, "user", "add", u, "--password-stdin", stdin=b"It1\n")
        assert r.returncode == 0, r.stderr

    acked: list[tuple[float, str, int, bytes]] = []  # (ack time, user, uid, bytes)
    stop = threading.Event()

    def deliver_forever() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            user = USERS[n % 2]
            msg = _message(n)
            reply = srv.deliver(msg, [user])
            assert reply.startswith("OK"), reply
            uid = int(reply.split()[1].rsplit(":", 1)[1])
            acked.append((time.monotonic(), user, uid, msg))

    worker = threading.Thread(target=deliver_forever)
    worker.start()
    try:
        while len(acked) < 60:
            time.sleep(0.01)
        started = time.monotonic()
        dest = tmp_path / "backup"
        r = _cli(srv.config_path, srv.data_dir, "backup", str(dest), "--json")
        during = sum(1 for t, *_ in acked if t > started)
    finally:
        stop.set()
        worker.join()
    assert r.returncode == 0, r.stderr
    assert during > 0, "no delivery overlapped the backup"
    manifest = json.loads((dest / "MANIFEST.json").read_text())
    assert "data/mail.db" in manifest["files"] and "data/directory.db" in manifest["files"]
    assert any(f.startswith("data/blobs/") for f in manifest["files"])
    assert manifest["config"]["path"] == "config/mailcove.toml"
    assert not any(f.endswith(("-wal", "-shm", ".sock", "serve.json")) for f in manifest["files"])

    host, port = srv.address("imap")
    before = {u: _imap_state(host, port, u) for u in USERS}

    # refusals: while the server runs, and into a non-empty dir without --force
    r = _cli(srv.config_path, srv.data_dir, "restore", str(dest))
    assert r.returncode == 1 and "a server is running" in r.stderr, r.stderr
    srv.stop()
    r = _cli(srv.config_path, srv.data_dir, "restore", str(dest))
    assert r.returncode == 1 and "not empty: use --force" in r.stderr, r.stderr

    new_data = tmp_path / "restored"
    r = _cli(srv.config_path, new_data, "restore", str(dest))
    assert r.returncode == 0, r.stderr
    assert "config/mailcove.toml" in r.stdout
    srv2 = serve_factory(cfg, data_dir=new_data)
    host, port = srv2.address("imap")
    for user in USERS:
        validity, restored = _imap_state(host, port, user)
        assert validity == before[user][0]
        must_have = [(uid, msg) for t, u, uid, msg in acked if u == user and t < started]
        assert must_have
        for uid, msg in must_have:
            assert restored.get(uid) == msg, (user, uid)
        # whatever else was restored is a message the original served under the same UID
        for uid, msg in restored.items():
            assert before[user][1].get(uid) == msg, (user, uid)

    # a damaged backup is refused before anything is written
    blob = next(p for p in (dest / "data" / "blobs").rglob("*") if p.is_file())
    blob.write_bytes(blob.read_bytes()[:-1] + b"!")
    srv2.stop()
    r = _cli(srv.config_path, tmp_path / "again", "restore", str(dest))
    assert r.returncode == 1 and "checksum mismatch" in r.stderr, r.stderr
    assert not (tmp_path / "again").exists()
