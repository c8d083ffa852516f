"""Schema of the PostgreSQL directory, versioned as component "directory" in the store's
`schema_version` table and applied by `mailcove db migrate` (cli/db.py SCHEMAS).

The tables are the SQLite directory's (directory/sql.py), with PostgreSQL types, so the same
write transactions run on both, plus `directory_version`: one counter bumped by every write, which
lets a node whose LISTEN connection dropped notice a change it missed."""

from __future__ import annotations

COMPONENT = "directory"
# The NOTIFY channel every directory write signals on (payload: the new version).
CHANNEL = "mailcove_directory"

MIGRATIONS: list[str] = [
    # 1: the SQLite directory's tables
    """
    CREATE TABLE domains (
        name     text PRIMARY KEY,
        alias_of text REFERENCES domains (name),
        created  double precision NOT NULL
    );
    CREATE TABLE users (
        address  text PRIMARY KEY,
        local    text NOT NULL,
        domain   text NOT NULL REFERENCES domains (name),
        password text NOT NULL,
        disabled integer NOT NULL DEFAULT 0,
        created  double precision NOT NULL,
        changed  double precision NOT NULL
    );
    CREATE INDEX users_local ON users (local);
    CREATE TABLE aliases (
        source   text NOT NULL,
        target   text NOT NULL,
        position integer NOT NULL,
        PRIMARY KEY (source, target)
    );
    CREATE TABLE access (
        tag            text NOT NULL,
        key            text NOT NULL,
        pattern        text NOT NULL,
        action         text NOT NULL,
        reply_code     integer,
        reply_enhanced text,
        reply_text     text,
        position       integer NOT NULL,
        PRIMARY KEY (tag, key)
    );
    CREATE TABLE directory_version (
        id      integer PRIMARY KEY CHECK (id = 1),
        version bigint NOT NULL
    );
    INSERT INTO directory_version (id, version) VALUES (1, 0);
    """,
]
