"""A consistent copy of the PostgreSQL store while the server runs: a pg_dump archive.

pg_dump reads the whole database in one snapshot (REPEATABLE READ), so the archive is the
database as of one moment whatever the nodes write meanwhile. Custom format: `pg_restore -d NEWDB
mailcove.pgdump` restores it. The directory's tables are in the same database, so in it too."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from mailcove.core.errors import StoreError

ARCHIVE = "mailcove.pgdump"


async def backup_store(dsn: str, dest: Path) -> list[str]:
    """Write the archive into the directory `dest`; returns its name, relative to `dest`."""
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise StoreError("pg_dump is not installed (Debian: postgresql-client)", code=451, enhanced="4.3.0")
    dest.mkdir(mode=0o700, parents=True, exist_ok=True)
    dsn, env = _dsn_without_password(dsn)
    proc = await asyncio.create_subprocess_exec(
        pg_dump, "--format=custom", "--no-owner", "--file", str(dest / ARCHIVE), "--dbname", dsn,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env,
    )
    _out, err = await proc.communicate()
    if proc.returncode != 0:
        why = err.decode(errors="replace").strip()[:500]
        raise StoreError(f"pg_dump failed: {why}", code=451, enhanced="4.3.0")
    return [ARCHIVE]


def _dsn_without_password(dsn: str) -> tuple[str, dict[str, str]]:
    """The DSN minus its password, which goes to the child in PGPASSWORD instead: a command
    line is visible to every local user (ps), the environment is not."""
    env = dict(os.environ)
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn, env
    env["PGPASSWORD"] = unquote(parts.password)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = (parts.username or "") + "@" + host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), env
