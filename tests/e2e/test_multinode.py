"""Several nodes, one truth: two real `mailcove serve` processes on different ports share one
PostgreSQL database (issue 8, item 2), driven by real clients (imapclient, smtplib, poplib).

- concurrent APPENDs to one mailbox through both nodes: UIDs unique and increasing per client,
  MODSEQs increasing with UIDs, and a client polling never sees a UID appear below one it saw;
- SMTP delivery on node A reaches an IMAP client IDLE on node B (LISTEN/NOTIFY);
- an expunge on node B shows up in a session on node A;
- the outbound queue is delivered once: both nodes' queue runners claim from one queue and a
  local SMTP sink counts what arrives;
- the POP3 maildrop lock holds across nodes;
- kill -9 of a node while clients deliver to it and while its queue runner is mid-delivery:
  every acknowledged message is there, the other node keeps serving and delivers the queue
  (at least once: a claim of the dead node comes due again when its lease ends).
"""

from __future__ import annotations

import asyncio
import poplib
import re
import smtplib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from imapclient import IMAPClient

from mailcove_testing import ServerProcess, run_async

PASSWORD = "It1"
USERS = ("a@hamap.local", "b@hamap.local", "c@hamap.local", "d@hamap.local")
LISTENERS: dict[str, str | None] = {
    "smtp": "127.0.0.1:0", "imap": "127.0.0.1:0", "pop3": "127.0.0.1:0",
    "submission": None, "submissions": None, "imaps": None, "pop3s": None, "http": None,
}


class SmtpSink:
    """A minimal SMTP receiver on loopback that counts messages by Message-ID. Hand-written (40
    lines) rather than aiosmtpd, which is only in the bench extra."""

    def __init__(self) -> None:
        self.received: Counter[str] = Counter()
        self.delay = 0.0  # seconds before the reply to the message data: a slow receiver
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            server = self.loop.run_until_complete(asyncio.start_server(self._session, "127.0.0.1", 0))
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait(10)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 sink.test ESMTP\r\n")
        try:
            while line := await reader.readline():
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    writer.write(b"250-sink.test\r\n250 8BITMIME\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 go on\r\n")
                    await writer.drain()
                    data = await reader.readuntil(b"\r\n.\r\n")
                    m = re.search(rb"(?im)^Message-ID:\s*(<[^>]+>)", data)
                    if self.delay:
                        await asyncio.sleep(self.delay)
                    self.received[m.group(1).decode() if m else "?"] += 1
                    writer.write(b"250 2.0.0 kept\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 bye\r\n")
                    break
                else:
                    writer.write(b"250 2.0.0 ok\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)


def _config(dsn: str, sink_port: int) -> str:
    return (
        'hostname = "mx1.hamap.local"\n'
        "[auth]\nallow_plaintext = true\nargon2_time_cost = 1\nargon2_memory_kib = 1024\n"
        "[tls]\nenabled = false\n"
        f'[store]\nbackend = "postgres"\ndsn = "{dsn}"\n'
        # lease_seconds: how long a claim of a killed node blocks its recipients (kill -9 test)
        "[queue]\npoll_interval = 0.1\nlease_seconds = 5.0\nconnect_timeout = 5.0\nreply_timeout = 20.0\n"
        "starttls = false\n"
        f'[transport]\n"remote.test" = "127.0.0.1:{sink_port}"\n'
    )


def _add_users(srv: ServerProcess) -> None:
    from mailcove.admin.context import open_admin
    from mailcove.admin.domains import add_domain
    from mailcove.admin.users import add_user
    from mailcove.config import load_settings

    async def go() -> None:
        async with open_admin(load_settings(srv.config_path, data_dir=str(srv.data_dir))) as ctx:
            await add_domain(ctx, "hamap.local")
            for user in USERS:
                await add_user(ctx, user, PASSWORD)

    srv.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    run_async(go())


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    s = SmtpSink()
    yield s
    s.stop()


@pytest.fixture
def two_nodes(
    serve_factory: Callable[..., ServerProcess], pg_cluster, sink: SmtpSink  # type: ignore[no-untyped-def]
) -> tuple[ServerProcess, ServerProcess]:
    dsn = pg_cluster.dsn(pg_cluster.create_database())
    config = _config(dsn, sink.port)
    a = serve_factory(config, listeners=LISTENERS, start=False)
    b = serve_factory(config, listeners=LISTENERS, start=False)
    _add_users(a)  # the directory is in the shared database: node B sees the same users
    a.start()
    b.start()
    return a, b


def imap(srv: ServerProcess, user: str) -> IMAPClient:
    host, port = srv.address("imap")
    c = IMAPClient(host, port, ssl=False, timeout=30)
    c.login(user, PASSWORD)
    return c


def smtp_send(srv: ServerProcess, rcpts: list[str], message: bytes, sender: str = "x@remote.example") -> None:
    host, port = srv.address("smtp")
    with smtplib.SMTP(host, port, timeout=30) as s:
        s.sendmail(sender, rcpts, message)


def message(tag: str, n: int) -> bytes:
    return b"From: x@remote.example\r\nSubject: %s %d\r\nMessage-ID: <%s.%d@test>\r\n\r\nbody\r\n" % (
        tag.encode(), n, tag.encode(), n,
    )


def wait_for(pred: Callable[[], object], timeout: float = 20.0, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_two_nodes_one_truth(two_nodes: tuple[ServerProcess, ServerProcess], sink: SmtpSink) -> None:
    node_a, node_b = two_nodes

    # --- concurrent APPENDs to one mailbox through both nodes, a poller on node A ---------------
    per_client = 25
    appended: dict[str, list[int]] = {}
    errors: list[BaseException] = []
    polls: list[list[int]] = []
    done = threading.Event()

    def appender(srv: ServerProcess, tag: str) -> None:
        try:
            c = imap(srv, "a@hamap.local")
            uids = []
            for i in range(per_client):
                resp = c.append("INBOX", message(tag, i))
                uids.append(int(re.search(rb"APPENDUID \d+ (\d+)", resp).group(1)))  # type: ignore[union-attr]
            appended[tag] = uids
            c.logout()
        except BaseException as exc:
            errors.append(exc)

    def poller() -> None:
        try:
            c = imap(node_a, "a@hamap.local")
            c.select_folder("INBOX")
            while not done.is_set():
                c.noop()
                polls.append(sorted(c.search("ALL")))
            c.noop()
            polls.append(sorted(c.search("ALL")))
            c.logout()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=appender, args=(srv, tag)) for srv, tag in ((node_a, "A"), (node_b, "B"))]
    watcher = threading.Thread(target=poller)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    done.set()
    watcher.join(60)
    assert not errors, errors
    all_uids = appended["A"] + appended["B"]
    assert len(set(all_uids)) == 2 * per_client, "a UID was handed out twice"
    for tag in "AB":
        assert appended[tag] == sorted(appended[tag]), f"node {tag}'s APPENDUIDs went backwards"
    c = imap(node_b, "a@hamap.local")
    c.select_folder("INBOX")
    assert sorted(c.search("ALL")) == sorted(all_uids), "a fresh session does not see every appended UID"
    modseqs = [d[b"MODSEQ"][0] for _uid, d in sorted(c.fetch(c.search("ALL"), ["MODSEQ"]).items())]
    c.logout()
    assert modseqs == sorted(modseqs) and len(set(modseqs)) == len(modseqs), "MODSEQs not increasing with UIDs"
    visibility_problem = _visibility_problem(polls, set(all_uids))

    # --- SMTP delivery on node A reaches an IDLE client on node B -------------------------------
    idler = imap(node_b, "b@hamap.local")
    idler.select_folder("INBOX")
    idler.idle()
    t0 = time.monotonic()
    smtp_send(node_a, ["b@hamap.local"], message("idle", 1))
    sent = time.monotonic()
    got: list[object] = []
    while time.monotonic() - t0 < 10 and not any(r[1] == b"EXISTS" for r in got if isinstance(r, tuple)):
        got += idler.idle_check(timeout=0.5)
    latency = time.monotonic() - sent
    idler.idle_done()
    assert any(r[1] == b"EXISTS" for r in got if isinstance(r, tuple)), got
    # LISTEN/NOTIFY pushes it; the issue asks for 1 s. Measured figures are in docs/scaling.md;
    # this bound only catches falling back to slow polling on a loaded test machine.
    assert latency < 3.0, f"IDLE on node B saw node A's delivery only after {latency:.2f} s"
    print(f"cross-node IDLE latency {latency * 1000:.0f} ms")

    # --- an expunge on node B shows up in a session on node A -----------------------------------
    watcher_a = imap(node_a, "b@hamap.local")
    watcher_a.select_folder("INBOX")
    watcher_a.idle()
    expunger = imap(node_b, "b@hamap.local")
    expunger.select_folder("INBOX")
    (uid,) = expunger.search("ALL")
    expunger.delete_messages([uid])
    expunger.expunge()
    expunger.logout()
    got = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(r[1] == b"EXPUNGE" for r in got if isinstance(r, tuple)):
        got += watcher_a.idle_check(timeout=0.5)
    watcher_a.idle_done()
    assert any(r[1] == b"EXPUNGE" for r in got if isinstance(r, tuple)), got
    assert watcher_a.search("ALL") == []
    watcher_a.logout()
    idler.logout()

    # --- the POP3 maildrop lock holds across nodes ----------------------------------------------
    first = poplib.POP3(*node_a.address("pop3"), timeout=30)
    first.user("d@hamap.local")
    first.pass_(PASSWORD)
    second = poplib.POP3(*node_b.address("pop3"), timeout=30)
    second.user("d@hamap.local")
    with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
        second.pass_(PASSWORD)
    first.quit()
    second.user("d@hamap.local")
    assert second.pass_(PASSWORD).startswith(b"+OK")
    second.quit()

    # --- the outbound queue: both nodes' runners, each message delivered once -------------------
    n = 20
    for i in range(n):
        smtp_send(node_a if i % 2 else node_b, ["r@remote.test"], message("out", i), sender="c@hamap.local")
    wait_for(lambda: len(sink.received) >= n, what="all queued mail at the sink")
    time.sleep(1.0)  # a double delivery would arrive by now (the runners poll every 0.1 s)
    assert set(sink.received) == {f"<out.{i}@test>" for i in range(n)}
    assert max(sink.received.values()) == 1, {k: v for k, v in sink.received.items() if v > 1}

    # Checked last so that everything else is asserted even when this fails (it found the
    # IMAP bug fixed in CacheRegistry.add_appended: an own APPEND overtaking another node's
    # lower UID still on the change bus).
    assert visibility_problem is None, f"IMAP session view out of allocation order: {visibility_problem}"


def _visibility_problem(polls: list[list[int]], appended: set[int]) -> str | None:
    """What a polling client saw wrong, if anything: a UID appearing below one already seen, or
    a UID never seen at all (even after the appends ended)."""
    seen: set[int] = set()
    for view in polls:
        new = set(view) - seen
        if new and seen and min(new) < max(seen):
            return f"UID {min(new)} appeared after UID {max(seen)} had been seen"
        seen |= new
    if seen != appended:
        return f"UIDs {sorted(appended - seen)[:5]} never appeared in the polling session"
    return None


def test_kill_9_loses_nothing_acknowledged(two_nodes: tuple[ServerProcess, ServerProcess], sink: SmtpSink) -> None:
    node_a, node_b = two_nodes
    # Outbound mail queued through node A; both nodes' runners claim from the one queue, and a
    # slow receiver keeps those deliveries open past the kill. Which node claimed which message
    # is up to the race; either way none may be lost.
    sink.delay = 4.0
    outbound = [f"<q.{i}@test>" for i in range(4)]
    for i in range(len(outbound)):
        smtp_send(node_a, ["r@remote.test"], message("q", i), sender="c@hamap.local")
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def sender(k: int) -> None:
        i = 0
        while not stop.is_set():
            try:
                smtp_send(node_a, ["a@hamap.local"], message(f"k{k}", i))
            except (OSError, smtplib.SMTPException):
                return  # the node is gone: nothing unacknowledged counts
            with lock:
                acknowledged.append(f"<k{k}.{i}@test>")
            i += 1

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    wait_for(lambda: len(acknowledged) >= 20, what="deliveries before the kill")
    node_a.kill()  # SIGKILL mid-delivery
    stop.set()
    for t in threads:
        t.join(60)
    with lock:
        acked = set(acknowledged)

    # Node B still serves, and holds every message node A acknowledged.
    c = imap(node_b, "a@hamap.local")
    c.select_folder("INBOX")
    stored = set()
    for d in c.fetch(c.search("ALL"), ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]).values():
        m = re.search(rb"<[^>]+>", d[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"])
        stored.add(m.group(0).decode() if m else "?")
    missing = acked - stored
    assert not missing, f"{len(missing)} acknowledged messages lost: {sorted(missing)[:5]}"
    smtp_send(node_b, ["a@hamap.local"], message("after", 1))

    def arrived() -> bool:
        c.noop()
        fetched = c.fetch(c.search("ALL"), ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
        return any(b"after.1" in v[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"] for v in fetched.values())

    wait_for(arrived, what="delivery through node B after node A died")
    c.logout()
    # The queue: what node A had claimed comes due again when its lease ends; node B delivers.
    sink.delay = 0.0
    wait_for(lambda: set(outbound) <= set(sink.received), timeout=60, what="queued mail delivered by node B")
    print(f"{len(acked)} acknowledged before kill -9, all stored; queue delivered {dict(sink.received)}")
