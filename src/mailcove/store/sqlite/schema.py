"""Schema and migrations of the SQLite store, versioned with PRAGMA user_version."""

from __future__ import annotations

import sqlite3

MIGRATIONS: list[str] = [
    # 1: the first schema
    """
    CREATE TABLE accounts (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        quota_bytes INTEGER NOT NULL DEFAULT 0,
        quota_messages INTEGER NOT NULL DEFAULT 0,
        used_bytes INTEGER NOT NULL DEFAULT 0,
        used_messages INTEGER NOT NULL DEFAULT 0,
        last_uidvalidity INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE mailboxes (
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL,
        name TEXT NOT NULL,
        uidvalidity INTEGER NOT NULL,
        uidnext INTEGER NOT NULL DEFAULT 1,
        highestmodseq INTEGER NOT NULL DEFAULT 1,
        special_use TEXT,
        subscribed INTEGER NOT NULL DEFAULT 0,
        noselect INTEGER NOT NULL DEFAULT 0,
        messages INTEGER NOT NULL DEFAULT 0,
        unseen INTEGER NOT NULL DEFAULT 0,
        size INTEGER NOT NULL DEFAULT 0,
        UNIQUE (account_id, name)
    );
    -- One row per stored body, shared by every mailbox row that holds the message
    CREATE TABLE blobs (
        id INTEGER PRIMARY KEY,
        size INTEGER NOT NULL,
        refs INTEGER NOT NULL,
        data BLOB,
        path TEXT,
        info BLOB NOT NULL
    );
    -- Distinct flag sets ("\\Seen $Label1", sorted, space-separated), id 0 the empty set.
    CREATE TABLE flagsets (
        id INTEGER PRIMARY KEY,
        flags TEXT NOT NULL UNIQUE
    );
    INSERT INTO flagsets (id, flags) VALUES (0, '');
    CREATE TABLE messages (
        mailbox_id INTEGER NOT NULL,
        uid INTEGER NOT NULL,
        blob_id INTEGER NOT NULL,
        flagset INTEGER NOT NULL DEFAULT 0,
        modseq INTEGER NOT NULL,
        internaldate REAL NOT NULL,
        size INTEGER NOT NULL,
        PRIMARY KEY (mailbox_id, uid)
    ) WITHOUT ROWID;
    -- Expunged UIDs with the modseq of their removal (RFC 7162 QRESYNC VANISHED).
    CREATE TABLE expunged (
        mailbox_id INTEGER NOT NULL,
        uid INTEGER NOT NULL,
        modseq INTEGER NOT NULL,
        PRIMARY KEY (mailbox_id, uid)
    ) WITHOUT ROWID;
    -- The change log other processes poll, pruned after a few minutes.
    CREATE TABLE changes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts REAL NOT NULL,
        user TEXT NOT NULL,
        mailbox_id INTEGER NOT NULL,
        kind TEXT NOT NULL,
        uids TEXT NOT NULL,
        modseq INTEGER NOT NULL
    );
    CREATE INDEX changes_ts ON changes (ts);
    """,
    # 2: the outbound queue; an entry holds one reference on its blob
    """
    CREATE TABLE queue (
        id INTEGER PRIMARY KEY,
        blob_id INTEGER NOT NULL,
        created REAL NOT NULL,
        size INTEGER NOT NULL,
        envelope TEXT NOT NULL
    );
    CREATE TABLE queue_rcpts (
        queue_id INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        address TEXT NOT NULL,
        orcpt TEXT,
        notify TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL DEFAULT 'queued',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt REAL NOT NULL,
        last_error TEXT,
        PRIMARY KEY (queue_id, idx)
    ) WITHOUT ROWID;
    CREATE INDEX queue_rcpts_due ON queue_rcpts (status, next_attempt)
    """,
    # 3: delivery by the queue runner: a lease token per claimed recipient (a runner that died
    # leaves next_attempt at the lease's end, so the recipient comes due again), and whether the
    # delay warning (RFC 3464 action=delayed) went out
    """
    ALTER TABLE queue_rcpts ADD COLUMN lease TEXT;
    ALTER TABLE queue_rcpts ADD COLUMN warned INTEGER NOT NULL DEFAULT 0
    """,
    # 4: named leases (store/api.py acquire_lease): the POP3 maildrop lock across processes
    """
    CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        expires REAL NOT NULL
    ) WITHOUT ROWID
    """,
    # 5: mailbox ids are never reused. A rowid table hands the highest deleted id out again, so
    # a mailbox deleted and then created (under any name) would take over the old one's id, and
    # every cache keyed by it (IMAP's shared mailbox view, the change log) would mix the two.
    # PostgreSQL's identity column never reuses; this is the same rule for SQLite.
    """
    CREATE TABLE mailbox_id_high (last INTEGER NOT NULL);
    INSERT INTO mailbox_id_high SELECT COALESCE(MAX(id), 0) FROM mailboxes
    """,
    # 6: a body is stored exactly as received, the server's header lines beside it
    # (api.MessagePrefix): a local copy is blobs.prefix + data[skip:], a queue entry
    # queue.prefix + the same bytes. NULL: no prefix (every row written before).
    """
    ALTER TABLE blobs ADD COLUMN prefix BLOB;
    ALTER TABLE blobs ADD COLUMN skip INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE queue ADD COLUMN prefix BLOB
    """,
    # 7: the full-text index for SEARCH BODY/TEXT (store/rules/textindex.py): every body starts
    # unindexed (those stored before too, indexed in the background after the upgrade); the
    # partial index finds the ones waiting. text_fts holds each body's text under FTS5's
    # trigram tokenizer, hangul_fts its Hangul syllable pairs; the rowid of both is the blob id.
    """
    ALTER TABLE blobs ADD COLUMN indexed INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX blobs_unindexed ON blobs (id) WHERE indexed = 0;
    CREATE VIRTUAL TABLE text_fts USING fts5 (text, tokenize = 'trigram', detail = 'none');
    CREATE VIRTUAL TABLE hangul_fts USING fts5 (grams, tokenize = 'unicode61', detail = 'none')
    """,
    # 8: the UIDL an old POP3 server gave an imported message (api.ImportMessage.pop3_uidl),
    # served by POP3 instead of mailcove's own so clients do not download it again. NULL: none.
    """
    ALTER TABLE messages ADD COLUMN pop3_uidl TEXT
    """,
]


def connect(path: str, *, readonly: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute("PRAGMA journal_mode = WAL")
    # FULL: the WAL is fsynced at every commit, so a returned append survives power loss.
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA cache_size = -65536")
    conn.execute("PRAGMA temp_store = MEMORY")
    if readonly:
        conn.execute("PRAGMA query_only = 1")
    return conn


def migrate(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # executescript would COMMIT first; run statements one by one inside our transaction.
            for stmt in script.split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
