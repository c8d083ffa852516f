"""`mailcove restore SRC`: put a `mailcove backup` back into the data dir.

Order: check every checksum in SRC/MANIFEST.json (a damaged backup writes nothing), refuse while
a server runs on the data dir, refuse a non-empty data dir without --force (with it, the old
contents are removed: stale -wal/-shm files beside a restored database would corrupt it), copy,
then give the files to the data dir's owner (or the service user) when run as root. The config
file and keys from outside the data dir are not copied over yours: their place in SRC is printed."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import socket
import sys
from pathlib import Path
from typing import Any

import click

from mailcove.cli.backup import FORMAT, MANIFEST, sha256_file
from mailcove.config import Settings


def _fail(message: str, status: int = 1) -> None:
    click.echo(f"mailcove: {message}", err=True)
    sys.exit(status)


def _server_running(settings: Settings) -> bool:
    path = settings.control_socket_path
    if not (path.exists() or path.is_symlink()):
        return False
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(str(path))
    except OSError:
        return False  # a stale socket from a killed server
    finally:
        s.close()
    return True


def verify(src: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((src / MANIFEST).read_text())
    except FileNotFoundError:
        _fail(f"{src} has no {MANIFEST}: not a mailcove backup")
    except (OSError, ValueError) as exc:
        _fail(f"{src / MANIFEST}: {exc}")
    if manifest.get("format") != FORMAT:
        _fail(f"{src}: backup format {manifest.get('format')!r}, this mailcove reads {FORMAT}")
    for rel, info in manifest["files"].items():
        p = src / rel
        if not p.is_file():
            _fail(f"{p}: missing; the backup is incomplete")
        if p.stat().st_size != info["size"] or sha256_file(p) != info["sha256"]:
            _fail(f"{p}: checksum mismatch; the backup is damaged")
    return manifest


def _owner_for(settings: Settings, existed_uid: int | None) -> tuple[int, int] | None:
    """Who should own the restored files: the data dir's owner, else the service user."""
    if os.geteuid() != 0:
        return None
    if existed_uid not in (None, 0):
        st = settings.data_dir.stat()
        return st.st_uid, st.st_gid
    from mailcove.net import privileges

    target, _note = privileges.resolve_target(settings)
    return (target.uid, target.gid) if target is not None else None


def _clear(data_dir: Path) -> None:
    for entry in data_dir.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


@click.command()
@click.argument("src", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--force", is_flag=True, help="Replace the contents of a non-empty data dir.")
@click.pass_obj
def restore(obj: object, src: Path, force: bool) -> None:
    """Restore a backup made by `mailcove backup` into the data dir (the server must be stopped)."""
    settings = obj.settings  # type: ignore[attr-defined]
    manifest = verify(src)
    if manifest.get("store_backend", "sqlite") != "sqlite":
        # The mail is a database dump, not files: restoring it is the database's job.
        dumps = [rel for rel in manifest["files"] if rel.endswith(".pgdump")]
        _fail(f"this backup's store is {manifest['store_backend']}: restore the mail with "
              f"pg_restore -d DATABASE {' '.join(str(src / d) for d in dumps) or '...'}; then run mailcove restore "
              f"only for a SQLite store")
    data_dir = settings.data_dir
    if _server_running(settings):
        _fail(f"a server is running on {data_dir} (control socket {settings.control_socket_path}): stop it first")
    existed_uid: int | None = None
    if data_dir.exists():
        existed_uid = data_dir.stat().st_uid
        if any(data_dir.iterdir()):
            if not force:
                _fail(f"the data dir {data_dir} is not empty: use --force to replace its contents")
            _clear(data_dir)
    else:
        data_dir.mkdir(mode=0o700, parents=True)
    shutil.copytree(src / "data", data_dir, dirs_exist_ok=True)
    os.chmod(data_dir, 0o700)
    owner = _owner_for(settings, existed_uid)
    if owner is not None:
        for p in [data_dir, *data_dir.rglob("*")]:
            with contextlib.suppress(FileNotFoundError):
                os.chown(p, *owner, follow_symlinks=False)
    n = sum(1 for rel in manifest["files"] if rel.startswith("data/"))
    who = ""
    if owner is not None:
        try:
            who = f", owned by {pwd.getpwuid(owner[0]).pw_name}"
        except KeyError:
            who = f", owned by uid {owner[0]}"
    click.echo(f"restored {n} files from {src} ({manifest['created']}) into {data_dir}{who}")
    if manifest.get("config"):
        cfg = manifest["config"]
        click.echo(f"the configuration in use then ({cfg['was']}) is in {src / cfg['path']}: it was not copied")
    for key, info in (manifest.get("external") or {}).items():
        click.echo(f"{key} ({info['was']}) is in {src / info['path']}: it was not copied")


def register(root: click.Group) -> None:
    root.add_command(restore)
