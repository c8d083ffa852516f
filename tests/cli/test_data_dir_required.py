"""A data dir that does not exist is created only by `setup`, `serve` on its first start (and
`restore`, `import sendmail|dovecot`, which make an installation) or an explicit --create; any
other command says so in one line and exits 1 (deliver: 75, so the MTA keeps the mail), and
creates nothing. A `serve` that fails to start leaves no half-made data dir behind."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from cli.cli_process import FAST_CONFIG, mailcove, one_line


@pytest.fixture
def config(tmp_path: Path) -> Path:
    p = tmp_path / "mailcove.toml"
    p.write_text(FAST_CONFIG + "[tls]\nenabled = false\n")
    return p


@pytest.mark.parametrize("command", [
    ("user", "list"),
    ("domain", "add", "hamap.local"),
    ("alias", "list"),
    ("relay", "list"),
    ("queue", "list"),
    ("mailq",),
    ("index", "status"),
    ("dkim", "generate", "hamap.local"),
])
def test_a_missing_data_dir_is_not_created(tmp_path: Path, config: Path, command: tuple[str, ...]) -> None:
    typo = tmp_path / "typo" / "dir"
    r = mailcove("--config", config, "--data", typo, *command)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert one_line(r).startswith(f"mailcove: no data dir at {typo} (create it with `mailcove setup DOMAIN`")
    assert r.stdout == ""
    assert not (tmp_path / "typo").exists()


def test_without_config_or_data_the_default_is_not_created_in_the_working_directory(tmp_path: Path) -> None:
    r = mailcove("user", "list", cwd=tmp_path)
    assert r.returncode == 1
    assert one_line(r).startswith(f"mailcove: no data dir at {tmp_path / 'mailcove-data'} ")
    assert list(tmp_path.iterdir()) == []


def test_deliver_to_a_missing_data_dir_is_a_temporary_failure(tmp_path: Path, config: Path) -> None:
    r = mailcove("--config", config, "--data", tmp_path / "nope", "deliver", "--to", "a@hamap.local",
                 input="Subject: x\n\nhi\n")
    assert r.returncode == 75  # EX_TEMPFAIL: the MTA keeps the message and tries again
    assert one_line(r).startswith("mailcove: no data dir at ")
    assert not (tmp_path / "nope").exists()


def test_create_makes_it(tmp_path: Path, config: Path) -> None:
    data = tmp_path / "new" / "data"
    r = mailcove("--config", config, "--data", data, "--create", "domain", "add", "hamap.local")
    assert r.returncode == 0, r.stderr
    assert data.is_dir() and data.stat().st_mode & 0o777 == 0o700
    r = mailcove("--config", config, "--data", data, "domain", "list", "--json")
    assert r.returncode == 0 and "hamap.local" in r.stdout


def test_a_file_where_the_data_dir_should_be(tmp_path: Path, config: Path) -> None:
    f = tmp_path / "file"
    f.write_text("")
    r = mailcove("--config", config, "--data", f, "user", "list")
    assert r.returncode == 2  # a usage error: click's Path(file_okay=False) on --data
    assert one_line(r) == f"mailcove: invalid value for '--data': Directory '{f}' is a file (see mailcove --help)"
    config.write_text(f'data_dir = "{f}"\n')
    r = mailcove("--config", config, "user", "list")
    assert r.returncode == 1
    assert one_line(r) == f"mailcove: the data dir {f} is not a directory"


def _taken_port() -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


def _serve(config: Path, data: Path, port: int) -> list[str | Path]:
    return ["--config", config, "--data", data, "serve", "--user", "root", "--workers", "1",
            "--listen", f"smtp=127.0.0.1:{port}", *(f"--listen={n}=" for n in
                                                      ("submission", "imap", "pop3", "http", "https"))]


def test_a_serve_that_fails_to_start_leaves_no_data_dir(tmp_path: Path, config: Path) -> None:
    data = tmp_path / "srv" / "data"
    with _taken_port() as taken:
        r = mailcove(*_serve(config, data, taken.getsockname()[1]))
    assert r.returncode == 2, r.stderr
    assert "Address already in use" in r.stderr
    assert not (tmp_path / "srv").exists()  # neither the data dir nor the parent serve made for it


def test_a_serve_that_fails_keeps_an_existing_data_dir(tmp_path: Path, config: Path) -> None:
    data = tmp_path / "data"
    assert mailcove("--config", config, "--data", data, "--create", "domain", "add", "hamap.local").returncode == 0
    with _taken_port() as taken:
        r = mailcove(*_serve(config, data, taken.getsockname()[1]))
    assert r.returncode == 2, r.stderr
    r = mailcove("--config", config, "--data", data, "domain", "list", "--json")
    assert r.returncode == 0 and "hamap.local" in r.stdout
