"""Several sessions on one mailbox: exactly what the second session receives, and when
(RFC 9051 7.4.1: no EXPUNGE while answering FETCH, STORE or SEARCH; at once during IDLE)."""

from __future__ import annotations

import subprocess
import sys
import time

from imap_lab import fetches, kinds, message

from mailcove.proto.imap.client import Continuation, Tagged, Untagged


def _setup(imap, n: int = 3):
    for i in range(n):
        imap.deliver(message(f"m{i}"))
    a = imap.client(select="INBOX")
    b = imap.client(select="INBOX")
    return a, b


def test_flag_change_reaches_other_session_at_noop(imap):
    a, b = _setup(imap)
    a.ok("STORE 2 +FLAGS.SILENT (\\Flagged)")
    time.sleep(0.2)
    untagged = b.ok("NOOP")
    got = fetches(untagged)
    assert list(got) == [2]
    assert "\\Flagged" in got[2]["FLAGS"] and got[2]["UID"] == 2
    # told once only
    assert fetches(b.ok("NOOP")) == {}


def test_expunge_waits_while_fetch_store_search(imap):
    a, b = _setup(imap)
    a.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    a.ok("EXPUNGE")
    time.sleep(0.2)
    # b still sees 3 messages with the old numbers during FETCH, STORE and SEARCH
    for command in ("FETCH 1:3 (UID)", "STORE 3 +FLAGS.SILENT (\\Seen)", "SEARCH ALL"):
        untagged = b.ok(command)
        assert not any(r.kind == "EXPUNGE" for r in untagged), command
    untagged = b.ok("SEARCH ALL")
    assert next(r.data for r in untagged if r.kind == "SEARCH")["numbers"] == [1, 2, 3]
    # ...and gets the EXPUNGE at the first command that allows it
    untagged = b.ok("NOOP")
    assert kinds(untagged) == [("EXPUNGE", 1)]
    got = fetches(b.ok("FETCH 1:* (UID)"))
    assert [v["UID"] for v in got.values()] == [2, 3]


def test_uid_fetch_may_carry_expunge(imap):
    a, b = _setup(imap)
    a.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    a.ok("EXPUNGE")
    time.sleep(0.2)
    untagged = b.ok("UID FETCH 1:* (FLAGS)")
    assert ("EXPUNGE", 2) in kinds(untagged)


def test_new_mail_counted_consistently(imap):
    a, b = _setup(imap, 1)
    imap.deliver(message("new"))
    time.sleep(0.3)
    assert ("EXISTS", 2) in kinds(b.ok("NOOP"))
    assert ("EXISTS", 2) in kinds(a.ok("NOOP"))
    # sequence numbers agree in both sessions
    assert fetches(a.ok("FETCH 2 (UID)"))[2]["UID"] == fetches(b.ok("FETCH 2 (UID)"))[2]["UID"]


def _idle(c):
    c.send(b"idle1 IDLE\r\n")
    assert isinstance(c.read_one(), Continuation)


def _done(c):
    c.send(b"DONE\r\n")
    rest = []
    while True:
        r = c.read_one()
        if isinstance(r, Tagged):
            assert r.tag == "idle1" and r.status == "OK"
            return rest
        rest.append(r)


def _wait_for(c, kind: str, timeout: float = 1.0) -> tuple[list, float]:
    start = time.monotonic()
    seen = []
    while time.monotonic() - start < timeout + 0.5:
        for r in c.poll(0.05):
            seen.append(r)
            if isinstance(r, Untagged) and r.kind == kind:
                return seen, time.monotonic() - start
    raise AssertionError(f"no {kind} within {timeout}s: {seen}")


def test_idle_sees_delivery_within_one_second(imap):
    a, _b = _setup(imap, 1)
    _idle(a)
    t0 = time.monotonic()
    imap.deliver(message("pushed"))  # through the server's control socket (as SMTP delivery)
    seen, _ = _wait_for(a, "EXISTS")
    assert time.monotonic() - t0 < 1.5  # the delivery call itself is included
    assert kinds(seen)[-1] == ("EXISTS", 2)
    _done(a)


def test_idle_sees_other_process_within_one_second(imap):
    a, _b = _setup(imap, 1)
    _idle(a)
    # `mailcove deliver` without the control socket: another process writing the store directly
    env_cmd = [sys.executable, "-m", "mailcove", "--config", str(imap.srv.config_path), "--data",
               str(imap.srv.data_dir), "deliver", "--to", imap.a]
    proc = subprocess.run(env_cmd, input=message("from another process"), capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    t0 = time.monotonic()
    _seen, took = _wait_for(a, "EXISTS", 1.0)
    assert took < 1.0 and time.monotonic() - t0 < 1.0
    _done(a)


def test_idle_gets_expunge_and_flags_at_once(imap):
    a, b = _setup(imap, 3)
    _idle(a)
    b.ok("STORE 3 +FLAGS.SILENT (\\Answered)")
    seen, _ = _wait_for(a, "FETCH")
    assert "\\Answered" in fetches(seen)[3]["FLAGS"]
    b.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    b.ok("EXPUNGE")
    seen, _ = _wait_for(a, "EXPUNGE")
    assert ("EXPUNGE", 1) in kinds(seen)
    _done(a)


def test_qresync_session_gets_vanished(imap):
    a, b = _setup(imap, 3)
    b.ok("ENABLE QRESYNC")
    b.ok("SELECT INBOX")
    a.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    a.ok("EXPUNGE")
    time.sleep(0.2)
    untagged = b.ok("NOOP")
    assert [r.kind for r in untagged] == ["VANISHED"]
    assert untagged[0].raw.endswith(b"VANISHED 2")


def test_pop3_style_expunge_from_outside(imap):
    """An expunge made by another process (the admin tools, POP3 in another server) reaches the
    IMAP session through the change bus's poll of the store."""
    a, _b = _setup(imap, 2)
    code = (
        "import asyncio\n"
        "from mailcove.config import load_settings\n"
        "from mailcove.store.factory import open_store\n"
        "async def main():\n"
        f"    s = open_store(load_settings({str(imap.srv.config_path)!r}, data_dir={str(imap.srv.data_dir)!r}),"
        " watch_changes=False)\n"
        "    await s.start()\n"
        f"    box = await s.get_mailbox({imap.a!r}, 'INBOX')\n"
        "    await s.expunge(box.id, [1])\n"
        "    await s.close()\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
    time.sleep(0.5)
    assert kinds(a.ok("NOOP")) == [("EXPUNGE", 1), ("RECENT", 1)]  # RECENT: its count changed
