"""bench/imap scenario (f): SEARCH BODY/TEXT on a --fts message mailbox with the full-text index
(store/rules/textindex.py), against the same server with its index lookups switched off (the exact
scan over every message, as before the index), plus what the index costs: its size beside the
mail, the time and CPU the background indexer took, and the CPU of a delivery with and without
indexing (`delivery_cpu`).

`--fts-store postgres` runs the mailcove side on a private PostgreSQL cluster (tests/pg_testing.py:
Debian's PostgreSQL on loopback, fsync on) instead of SQLite: the same searches with the pg_trgm
index and without it, the index's size from PostgreSQL's relation sizes; the delivery CPU figures
are SQLite's only.

The mailbox is bench/imap/fill.py's messages, each with one Korean line whose last word is a
two-syllable tag shared by 1 message in 1,000 (a tag matches 100 of 100,000 messages; a
needle{n % 1000} a few less, since the smallest messages end before the line that carries it);
the syllables of the tags appear nowhere else in the corpus.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.imap.fill import message

KOREAN = "안녕하세요 회의 자료를 보내드립니다 확인 부탁합니다"
_FIRST = "갸냐댜랴먀뱌샤야쟈챠캬탸퍄햐겨녀뎌려며벼셔여져쳐켜"  # 25
_SECOND = "규뉴듀류뮤뷰슈유쥬츄큐튜퓨휴그느르므브스으즈츠크트프흐기디리미비시지치키티피귀뒤"  # 40
assert len(_FIRST) == 25 and len(_SECOND) == 40 and not set(_FIRST + _SECOND) & set(KOREAN)

# Frontend.text_candidates answering "cannot narrow" for every needle: the server searches
# every message, as it did before the index (a preload of `mailcove serve`).
NO_INDEX = (
    "from mailcove.store import frontend\n\n"
    "async def _scan(self, mailbox_id, needle):\n    return None\n\n"
    "frontend.Frontend.text_candidates = _scan\n"
)


def tag(n: int) -> str:
    k = n % 1000
    return _FIRST[k // 40] + _SECOND[k % 40]


def fts_message(n: int, size: int) -> bytes:
    """fill.message with a UTF-8 Korean line (8bit) in front of its body."""
    m = message(n, size)
    head, _, body = m.partition(b"\r\n\r\n")
    head = head.replace(b"charset=us-ascii", b"charset=utf-8") + b"\r\nContent-Transfer-Encoding: 8bit"
    return head + b"\r\n\r\n" + f"{KOREAN} {tag(n)}\r\n".encode() + body


SEARCHES = (  # (label, criteria); matches among 100,000: 89, 88, 100, 100, 951, most
    ("body_ascii9", b"BODY needle123"),
    ("text_ascii9", b"TEXT needle345"),
    ("body_hangul2", b'CHARSET UTF-8 BODY "' + tag(345).encode() + b'"'),
    ("text_hangul2", b'CHARSET UTF-8 TEXT "' + tag(678).encode() + b'"'),
    ("text_ascii8_1100", b"TEXT needle77"),  # also needle770..needle779
    ("body_ascii2_scan", b"BODY zu"),  # shorter than a trigram: every message is scanned
)


def cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, ValueError):
            continue
    return total / tick


async def wait_indexed(cfg: Path, data: Path, timeout: float = 3600) -> tuple[int, int]:
    from mailcove.config import load_settings
    from mailcove.store.factory import open_store

    store = open_store(load_settings(cfg, data_dir=str(data)), watch_changes=False)
    await store.start()
    try:
        deadline = time.monotonic() + timeout
        while True:
            waiting, total = await store.index_progress()
            if not waiting or time.monotonic() > deadline:
                return waiting, total
            await asyncio.sleep(0.5)
    finally:
        await store.close()


def private_postgres() -> tuple[Any, str]:
    """A private PostgreSQL cluster with shared_buffers raised from the test suite's 64 MB to
    PG_SHARED_BUFFERS (the index and texts of 100,000 messages are a few hundred MB), and one
    database migrated by `mailcove db migrate`'s code: (the cluster, its DSN)."""
    from pg_testing import PgCluster, pg_bindir

    bindir = pg_bindir()
    if bindir is None:
        raise SystemExit("--fts-store postgres needs Debian's PostgreSQL (package postgresql)")
    cluster = PgCluster(bindir)
    cluster.start()
    try:
        with (cluster.data / "postgresql.auto.conf").open("a") as f:
            f.write(f"shared_buffers = {PG_SHARED_BUFFERS}\n")
        subprocess.run(["runuser", "-u", "postgres", "--", str(bindir / "pg_ctl"), "-D", str(cluster.data),
                        "-l", str(cluster.log), "-w", "restart"], check=True, capture_output=True, timeout=120)
        cluster.create_template()
        return cluster, cluster.dsn(cluster.create_database("fts"))
    except BaseException:
        cluster.stop()
        raise


PG_SHARED_BUFFERS = "256MB"
PG_CONFIG = '[store]\nbackend = "postgres"\ndsn = "%s"\n'


async def pg_analyze_and_size(dsn: str) -> dict[str, int]:
    """ANALYZE (what autovacuum would do soon after the bulk indexing; the planner needs
    message_texts' statistics), then the bytes of the index's relations and of the mail."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("ANALYZE")
        row = await conn.fetchrow(
            "SELECT pg_table_size('message_texts'), pg_relation_size('message_texts_trgm'),"
            " pg_relation_size('message_texts_grams'), pg_relation_size('message_texts_pkey'),"
            " pg_relation_size('blobs_unindexed'), (SELECT coalesce(sum(size), 0)::bigint FROM messages)")
    finally:
        await conn.close()
    return {"texts_table_bytes": row[0], "trgm_index_bytes": row[1], "grams_index_bytes": row[2],
            "texts_pkey_bytes": row[3], "unindexed_index_bytes": row[4], "mail_bytes": row[5]}


def index_size(db: Path) -> dict[str, int]:
    """Bytes of the index's tables and of the messages they index (SQLite's dbstat)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        by_name = dict(conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall())
        mail = conn.execute("SELECT coalesce(sum(size), 0) FROM messages").fetchone()[0]
    finally:
        conn.close()
    trigram = sum(v for k, v in by_name.items() if k.startswith("text_fts"))
    hangul = sum(v for k, v in by_name.items() if k.startswith("hangul_fts"))
    return {"mail_bytes": mail, "text_fts_bytes": trigram, "hangul_fts_bytes": hangul,
            "unindexed_index_bytes": by_name.get("blobs_unindexed", 0)}


async def delivery_cpu(base: Path, count: int, *, unindexed_index: bool = True) -> dict[str, float]:
    """CPU per message (this process, every thread) to deliver `count` fts_messages through the
    SQLite store in concurrent batches (bench/store's way), then to index them as the background
    indexer does (read, text, write). `unindexed_index=False` drops the one thing indexing adds
    to the delivery itself (the partial index blobs_unindexed), for the comparison."""
    from mailcove.store.api import DeliveryTarget
    from mailcove.store.sqlite import SqliteStore

    store = SqliteStore(base / "cpu-data", watch_changes=False)
    await store.start()
    try:
        if not unindexed_index:
            conn = sqlite3.connect(base / "cpu-data" / "mail.db")
            conn.execute("DROP INDEX blobs_unindexed")
            conn.commit()
            conn.close()
        await store.create_account("cpu@hamap.local")
        target = [DeliveryTarget("cpu@hamap.local")]
        msgs = [fts_message(n, s) for n, s in enumerate(_sizes(count))]
        c0 = time.process_time()
        for start in range(0, count, 500):
            await asyncio.gather(*(store.deliver(m, target) for m in msgs[start : start + 500]))
        c1 = time.process_time()
        after = 0
        while unindexed_index:
            n, last = await store.index_pending(after)
            if not n:
                break
            after = last
        c2 = time.process_time()
    finally:
        await store.close()
    return {"deliver_cpu_us": (c1 - c0) / count * 1e6, "index_cpu_us": (c2 - c1) / count * 1e6}


def _sizes(count: int) -> list[int]:
    from bench.imap.fill import sizes

    return sizes(count, small=True)


def start_server(base: Path, user: str, password: str, boxes: dict[str, list[bytes]], store_config: str = "") -> Any:
    """`mailcove serve` (imap only) with `boxes` stored before it starts: unindexed, as after an
    upgrade, so the server's background indexer builds the whole index."""
    from bench.imap.fill import mailcove_fill
    from interop.imap_servers import PLAIN_CONFIG, start_mailcove

    return start_mailcove(base, {user: password}, config=PLAIN_CONFIG + store_config,
                          before_start=lambda cfg, data: mailcove_fill(cfg, data, boxes))


def restart_with(srv: Any, base: Path, preload: Path) -> Any:
    """The same server's store served again by a `mailcove serve` that first runs `preload`."""
    from mailcove_testing import ServerProcess

    args = srv.argv[3:]  # [python, -m, mailcove, *args]
    code = (f"import sys, runpy\nrunpy.run_path({str(preload)!r})\nfrom mailcove.cli.main import main\n"
            f"sys.argv = ['mailcove', *{args!r}]\nmain()\n")
    plain = ServerProcess(srv.data_dir, srv.config_path, [srv.argv[0], "-c", code], base / "stdout-plain.txt",
                          base / "stderr-plain.txt", srv.env)
    return plain.start()


XAPIAN = """
mail_plugins = $mail_plugins fts fts_xapian
plugin {
  fts = xapian
  fts_xapian = partial=%d full=20 verbose=0
  fts_autoindex = yes
  fts_enforced = yes
}
"""


def dovecot_xapian(base: Path, user: str, password: str, boxes: dict[str, list[bytes]], partial: int) -> Any:
    """Debian's Dovecot with Debian's dovecot-fts-xapian plugin, the same messages, its index built
    with `doveadm index` before measuring (the plugin's n-grams from `partial` characters)."""
    from bench.imap.fill import dovecot_fill
    from interop.dovecot import PrivateDovecot

    dc = PrivateDovecot({user: password}, extra_config=XAPIAN % partial, base=base)
    dovecot_fill(dc.dir / "mail", boxes)
    home = dc.dir / "home" / user
    home.mkdir(parents=True, exist_ok=True)
    import pwd

    nobody = pwd.getpwnam("nobody")
    for p in (dc.dir / "home", home):
        os.chown(p, nobody.pw_uid, nobody.pw_gid)
    dc.start()
    dc.doveadm("force-resync", "-u", user, "INBOX")
    return dc


async def count(peer: Any, user: str, password: str, criteria: bytes) -> int:
    from bench.imap.client import Client

    c = await Client.connect(peer.host, peer.port)
    await c.login(user, password)
    await c.command(b"EXAMINE INBOX")
    lines = await c.command(b"UID SEARCH " + criteria)
    await c.logout()
    return len(lines[0].split()) - 2 if lines else 0


async def run_f(args: Any, results: dict[str, Any], base: Path, password: str, make_peer: Any,
                make_peer_dovecot: Any, search: Any, median_of: Any, report: Any) -> None:
    from bench.imap.fill import sizes

    user = "fts@hamap.local"
    boxes = {user: [fts_message(n, s) for n, s in enumerate(sizes(args.fts, small=True))]}
    counts: dict[str, dict[str, int]] = {label: {} for label, _ in SEARCHES}
    if args.fts_mailcove:
        await _mailcove(args, results, base, password, make_peer, search, median_of, report, user, boxes, counts)
    if args.fts_dovecot:
        await _dovecot(args, results, base, password, make_peer_dovecot, search, median_of, report, user, boxes,
                       counts)
    results[f"f_search_counts_{args.fts}"] = counts
    print(f"matches: {counts}", flush=True)
    if args.fts_mailcove and args.fts_store == "sqlite":
        await _cpu(args, results, base)


async def _mailcove(args: Any, results: dict[str, Any], base: Path, password: str, make_peer: Any, search: Any,
                    median_of: Any, report: Any, user: str, boxes: dict[str, list[bytes]],
                    counts: dict[str, dict[str, int]]) -> None:
    if args.fts_store == "postgres":
        cluster, dsn = private_postgres()
        try:
            await _mailcove_on(args, results, base, password, make_peer, search, median_of, report, user, boxes,
                               counts, dsn)
        finally:
            cluster.stop()
    else:
        await _mailcove_on(args, results, base, password, make_peer, search, median_of, report, user, boxes,
                           counts, "")


async def _mailcove_on(args: Any, results: dict[str, Any], base: Path, password: str, make_peer: Any, search: Any,
                       median_of: Any, report: Any, user: str, boxes: dict[str, list[bytes]],
                       counts: dict[str, dict[str, int]], dsn: str) -> None:
    """mailcove with its index, then the same store without it; on SQLite, or PostgreSQL at `dsn`."""
    tag = f"{args.fts}_postgres" if dsn else f"{args.fts}"
    srv = start_server(base / "mailcove-fts", user, password, boxes, PG_CONFIG % dsn if dsn else "")
    t0 = time.perf_counter()
    peer = make_peer(srv)
    cpu0 = cpu_seconds(peer.pids())
    waiting, total = await wait_indexed(srv.config_path, srv.data_dir)
    took = time.perf_counter() - t0
    cpu = cpu_seconds(peer.pids()) - cpu0
    print(f"mailcove indexed {total - waiting} of {total} bodies {took:.0f} s after start, {cpu:.0f} s CPU",
          flush=True)
    results[f"f_index_build_{tag}"] = {"seconds_after_start": took, "server_cpu_seconds": cpu,
                                            "bodies": total, "waiting": waiting}
    size = await pg_analyze_and_size(dsn) if dsn else {}
    try:
        for label, crit in SEARCHES:
            v = await median_of(args.runs, [peer], lambda p, c=crit: search(p, user, c))
            report(results, f"f_search_{label}_{tag}_indexed", v, "ms", higher_better=False)
            counts[label]["mailcove"] = await count(peer, user, password, crit)
    finally:
        peer.stop()
    size = size or index_size(srv.data_dir / "mail.db")
    size["index_fraction_of_mail"] = (sum(v for k, v in size.items() if k != "mail_bytes")
                                      / max(1, size["mail_bytes"]))
    results[f"f_index_size_{tag}"] = size
    print(f"index size: {size}", flush=True)
    # the same store, searched without the index
    preload = base / "no_index.py"
    preload.write_text(NO_INDEX)
    plain = make_peer(restart_with(srv, base, preload))
    try:
        await _search_every(plain, "mailcove", "mailcove-no-index", f"{tag}_no_index", args.fts_scan_runs,
                            results, search, median_of, report, user, password, counts)
    finally:
        plain.stop()


async def _search_every(peer: Any, peer_name: str, label_as: str, suffix: str, runs: int, results: dict[str, Any],
                        search: Any, median_of: Any, report: Any, user: str, password: str,
                        counts: dict[str, dict[str, int]]) -> None:
    """Every SEARCHES criterion against one peer: its median time as `label_as`, and its count."""
    for label, crit in SEARCHES:
        v = await median_of(runs, [peer], lambda p, c=crit: search(p, user, c))
        report(results, f"f_search_{label}_{suffix}", {label_as: v[peer_name]}, "ms", higher_better=False)
        counts[label][label_as] = await count(peer, user, password, crit)


async def _dovecot(args: Any, results: dict[str, Any], base: Path, password: str, make_peer_dovecot: Any,
                   search: Any, median_of: Any, report: Any, user: str, boxes: dict[str, list[bytes]],
                   counts: dict[str, dict[str, int]]) -> None:
    t0 = time.perf_counter()
    dc = dovecot_xapian(base, user, password, boxes, args.fts_xapian_partial)
    try:
        # doveadm index of 100,000 messages takes minutes: PrivateDovecot.doveadm's 120 s is too short
        subprocess.run(["doveadm", "-c", str(dc.conf), "index", "-u", user, "INBOX"], capture_output=True,
                       text=True, timeout=7200, check=True)
        took = time.perf_counter() - t0
        size = sum(f.stat().st_size for f in dc.dir.rglob("*")
                   if f.is_file() and "xapian" in str(f.relative_to(dc.dir)).lower())
        results[f"f_dovecot_xapian_index_{args.fts}"] = {"seconds": took, "bytes": size}
        print(f"dovecot xapian index: {took:.0f} s, {size} bytes", flush=True)
        dpeer = make_peer_dovecot(dc)
        await _search_every(dpeer, "dovecot", "dovecot-xapian", f"{args.fts}_dovecot_xapian", args.runs,
                            results, search, median_of, report, user, password, counts)
    finally:
        dc.cleanup()


async def _cpu(args: Any, results: dict[str, Any], base: Path) -> None:
    # taking turns: with the index (as shipped), without its partial index on blobs
    runs: dict[str, list[dict[str, float]]] = {"with": [], "without": []}
    for i in range(args.runs):
        runs["with"].append(await delivery_cpu(base / f"cpu{i}w", args.fts_cpu))
        runs["without"].append(await delivery_cpu(base / f"cpu{i}n", args.fts_cpu, unindexed_index=False))
    deliver = statistics.median(r["deliver_cpu_us"] for r in runs["with"])
    base_deliver = statistics.median(r["deliver_cpu_us"] for r in runs["without"])
    index = statistics.median(r["index_cpu_us"] for r in runs["with"])
    out = {"deliver_cpu_us": deliver, "deliver_cpu_us_without_unindexed_index": base_deliver,
           "delivery_path_increase": deliver / base_deliver - 1, "background_index_cpu_us": index,
           "background_index_vs_delivery": index / deliver, "runs": runs}
    results[f"f_delivery_cpu_{args.fts_cpu}"] = out
    print(f"delivery CPU: { {k: v for k, v in out.items() if k != 'runs'} }", flush=True)
