"""`mailcove backup DEST`: a consistent copy of a data dir, taken while the server runs.

Layout of DEST (a new or empty directory, created 0700: it holds password hashes and keys):

    MANIFEST.json      format, time, mailcove version, hostname, and the SHA-256 and size of
                       every other file; `mailcove restore` checks them all before it writes
    data/              what goes back into the data dir: mail.db (with the blob files it
                       references), directory.db, any other *.db, tls/, dkim/ and other files
    config/NAME        the configuration file in use (restore does not overwrite yours)
    external/          TLS and DKIM files configured outside the data dir

Each database is copied through its owner's `backup()` (MailStore for the mail, the directory for
directory.db), which takes one snapshot with SQLite's online backup API; blob files cannot vanish
during the copy (store/sqlite/backup.py). Sockets, serve.json, tmp/ and -wal/-shm files are not
copied."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import os
import shutil
import stat
import sys
from pathlib import Path
from typing import Any

import click

from mailcove import __version__
from mailcove.config import Settings

MANIFEST = "MANIFEST.json"
FORMAT = 1
# Never copied as files: the databases go through backup(), the rest is run-time state.
SKIP_NAMES = frozenset({"mail.db", "directory.db", "blobs", "tmp", "serve.json", "backup.hold", "control.sock"})
SKIP_SUFFIXES = (".db", "-wal", "-shm", "-journal", ".sock", ".tmp", ".pid", ".lock")


def _fail(message: str, status: int = 1) -> None:
    click.echo(f"mailcove: {message}", err=True)
    sys.exit(status)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def _copy_plain(src: Path, dest: Path) -> None:
    """Files and directories, without sockets, FIFOs or the SKIP_* names."""
    def ignore(directory: str, names: list[str]) -> list[str]:
        out = []
        for n in names:
            st = os.lstat(os.path.join(directory, n))
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)) or n.endswith(SKIP_SUFFIXES[1:]):
                out.append(n)
        return out

    if src.is_dir():
        shutil.copytree(src, dest, ignore=ignore, symlinks=False)
    elif src.is_file():
        dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.copy2(src, dest)


async def _databases(settings: Settings, data_out: Path) -> None:
    from mailcove.directory import open_directory
    from mailcove.store.factory import open_store
    from mailcove.store.sqlite.backup import copy_database

    # SQLite is not started: its backup reads the files beside the running server and needs no
    # writer thread (starting would also run migrations from a backup command). A networked
    # backend needs its connections.
    store = open_store(settings, watch_changes=False)
    started = settings.store.backend != "sqlite"
    if started:
        await store.start()
    try:
        await store.backup(data_out)
    finally:
        if started:
            await store.close()
    directory = open_directory(settings)
    try:
        await directory.backup(data_out)
    finally:
        await directory.close()
    # Databases other features keep in the data dir (a new *.db is backed up without a change here).
    for db in sorted(settings.data_dir.glob("*.db")):
        if not (data_out / db.name).exists():
            await asyncio.to_thread(copy_database, db, data_out / db.name)


def write_manifest(dest: Path, settings: Settings, extra: dict[str, Any]) -> dict[str, Any]:
    files: dict[str, dict[str, Any]] = {}
    for p in sorted(dest.rglob("*")):
        if p.is_file() and p.name != MANIFEST:
            rel = p.relative_to(dest).as_posix()
            files[rel] = {"sha256": sha256_file(p), "size": p.stat().st_size}
    manifest = {
        "format": FORMAT,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "mailcove": __version__,
        "hostname": settings.hostname,
        "data_dir": str(settings.data_dir.resolve()),
        "store_backend": settings.store.backend,
        **extra,
        "files": files,
    }
    tmp = dest / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, dest / MANIFEST)
    return manifest


def run_backup(settings: Settings, dest: Path) -> dict[str, Any]:
    data_dir = settings.data_dir
    if not data_dir.is_dir():
        _fail(f"no data dir at {data_dir}")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        _fail(f"{dest} exists and is not an empty directory: back up into a new one")
    if _inside(dest, data_dir):
        _fail(f"{dest} is inside the data dir {data_dir}")
    dest.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(dest, 0o700)
    data_out = dest / "data"
    data_out.mkdir(mode=0o700)
    asyncio.run(_databases(settings, data_out))
    for entry in sorted(data_dir.iterdir()):
        if entry.name in SKIP_NAMES or entry.name.endswith(SKIP_SUFFIXES):
            continue
        _copy_plain(entry, data_out / entry.name)
    extra: dict[str, Any] = {"config": None, "external": {}}
    if settings.source != "<defaults>" and Path(settings.source).is_file():
        name = Path(settings.source).name
        _copy_plain(Path(settings.source), dest / "config" / name)
        extra["config"] = {"path": f"config/{name}", "was": str(Path(settings.source).resolve())}
    outside: list[tuple[str, Path | None]] = [("tls.cert", settings.tls.cert), ("tls.key", settings.tls.key),
                                              ("dkim.key_dir", settings.dkim.key_dir)]
    for key, path in outside:
        if path is not None and path.exists() and not _inside(path, data_dir):
            rel = f"external/{key}/{path.name}"
            _copy_plain(path, dest / rel)
            extra["external"][key] = {"path": rel, "was": str(path.resolve())}
    manifest = write_manifest(dest, settings, extra)
    _hand_back(settings)
    return manifest


def _hand_back(settings: Settings) -> None:
    """Run as root on a data dir owned by the service user, the backup may have created
    SQLite side files (-wal/-shm, when no server had them open) and backup.hold as root."""
    if os.geteuid() != 0:
        return
    from mailcove.net import privileges

    st = settings.data_dir.stat()
    if st.st_uid == 0:
        return
    target = privileges.Target(str(st.st_uid), st.st_uid, st.st_gid, (st.st_gid,), "/")
    privileges.chown_tree(settings.data_dir, target)


@click.command()
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the manifest's summary as JSON.")
@click.pass_obj
def backup(obj: object, dest: Path, as_json: bool) -> None:
    """Copy the data dir (mail, directory, keys) and the config into DEST, consistently, while
    the server runs. Restore with `mailcove restore DEST`."""
    settings = obj.settings  # type: ignore[attr-defined]
    manifest = run_backup(settings, dest)
    files = manifest["files"]
    total = sum(f["size"] for f in files.values())
    summary = {"dest": str(dest), "files": len(files), "bytes": total, "created": manifest["created"]}
    if as_json:
        click.echo(json.dumps(summary))
    else:
        click.echo(f"backed up {settings.data_dir} to {dest}: {len(files)} files, {total / 1e6:.1f} MB "
                   f"({manifest['created']})")


def register(root: click.Group) -> None:
    root.add_command(backup)
