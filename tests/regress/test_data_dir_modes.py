"""Local users reading mail out of the data dir (issue 13, finding 11): mail.db, its -wal/-shm and
serve.json were created 0644 under the usual umask 022, so with a data dir left at 0755 any local
user could read a message out of mail.db. Now every file is 0600 whatever the umask, and a data
dir other users can read is closed (one line says so) by `serve` and by the CLI, or refused when
it does not look like a mailcove data dir."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailcove_testing import REPO


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The umask of a careless shell; children started by the test inherit it."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _open_to_others(root: Path) -> list[str]:
    return [f"{p.relative_to(root)} {stat.S_IMODE(p.lstat().st_mode):o}"
            for p in [root, *root.rglob("*")] if not p.is_symlink() and p.lstat().st_mode & 0o077]


def test_serve_files_are_private_whatever_the_umask(serve_factory, tmp_path: Path, umask_022: None) -> None:
    data = tmp_path / "mail-data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    srv = serve_factory(data_dir=data, accounts=["a@hamap.local"])
    assert "OK" in srv.deliver(b"Subject: secret\r\n\r\n" + b"private words\r\n" * 2000, ["a@hamap.local"])
    for name in ("mail.db", "mail.db-wal", "mail.db-shm", "serve.json"):
        assert (data / name).exists(), name
    assert _open_to_others(data) == []
    assert "had mode 755" in srv.logs() and "changed it to 700" in srv.logs()
    srv.stop()


def test_serve_narrows_files_of_an_older_install(serve_factory, tmp_path: Path, umask_022: None) -> None:
    data = tmp_path / "mail-data"
    srv = serve_factory(data_dir=data, accounts=["a@hamap.local"])
    srv.stop()
    os.chmod(data, 0o755)
    for p in data.iterdir():
        if p.is_file():
            os.chmod(p, 0o644)
    srv.start()
    assert [x for x in _open_to_others(data) if x.split()[0].startswith("mail.db")] == []
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    srv.stop()


def _cli(config: Path, data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]))
    env.pop("MAILCOVE_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "mailcove", "--config", str(config), "--data", str(data), *args],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=60, input="pw-123456789\n")


def test_cli_closes_an_open_data_dir_and_says_so(tmp_path: Path, umask_022: None) -> None:
    config = tmp_path / "mailcove.toml"
    config.write_text('hostname = "mx1.hamap.local"\n')
    data = tmp_path / "data"
    data.mkdir()
    os.chmod(data, 0o755)
    r = _cli(config, data, "domain", "add", "hamap.local")
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("\n") == 1 and "had mode 755" in r.stderr, r.stderr
    r = _cli(config, data, "user", "add", "a@hamap.local", "--password-stdin")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert (data / "mail.db").exists()
    assert _open_to_others(data) == []


def test_cli_refuses_an_open_dir_that_is_not_a_data_dir(tmp_path: Path, umask_022: None) -> None:
    config = tmp_path / "mailcove.toml"
    config.write_text('hostname = "mx1.hamap.local"\n')
    data = tmp_path / "not-mail"
    data.mkdir()
    os.chmod(data, 0o755)
    (data / "notes.txt").write_text("someone else's")
    r = _cli(config, data, "user", "add", "a@hamap.local", "--password-stdin")
    assert r.returncode == 2 and "does not look like a mailcove data dir" in r.stderr, r.stderr
    assert stat.S_IMODE(data.stat().st_mode) == 0o755
    assert sorted(p.name for p in data.iterdir()) == ["notes.txt"]
