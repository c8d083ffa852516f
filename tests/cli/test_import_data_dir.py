"""`import sendmail|dovecot` says where the data goes and never splits an installation (its
config file and its data dir) in two. It used to put the data of a new config file in
./mailcove-data of whatever directory it was run from."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

from cli.cli_process import FAST_CONFIG, mailcove, one_line


@pytest.fixture
def etc_mail(tmp_path: Path) -> Path:
    d = tmp_path / "old" / "etc" / "mail"
    d.mkdir(parents=True)
    (d / "local-host-names").write_text("hamap.local\nrocky9-3\n")
    (d / "mailertable").write_text("partner.example smtp:[mail.partner.example]\n")
    return d


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    d = tmp_path / "cwd"
    d.mkdir()
    return d


def test_a_new_config_says_where_the_data_goes_not_the_working_directory(tmp_path: Path, etc_mail: Path,
                                                                          cwd: Path) -> None:
    config = tmp_path / "etc" / "mailcove.toml"
    config.parent.mkdir()
    r = mailcove("--config", config, "import", "sendmail", etc_mail, "--dry-run", cwd=cwd)
    assert r.returncode == 0, r.stderr
    # root's new installation lives where the systemd unit keeps it (a user's: beside the file)
    expected = Path("/var/lib/mailcove") if os.geteuid() == 0 else config.parent / "mailcove-data"
    assert f"\ndata: {expected}" in r.stdout
    assert f"+ data_dir = \"{expected}\"" in r.stdout
    assert list(cwd.iterdir()) == []


def test_a_new_config_pins_the_data_dir_it_used(tmp_path: Path, etc_mail: Path, cwd: Path) -> None:
    config = tmp_path / "mailcove.toml"
    data = tmp_path / "data"
    r = mailcove("--config", config, "--data", data, "import", "sendmail", etc_mail, cwd=cwd)
    assert r.returncode == 0, r.stderr
    assert f"\ndata: {data} (a new data dir)\n" in r.stdout
    assert tomllib.loads(config.read_text())["data_dir"] == str(data)
    r = mailcove("--config", config, "domain", "list", "--json", cwd=cwd)  # no --data: the file knows
    assert r.returncode == 0 and '"hamap.local"' in r.stdout
    assert list(cwd.iterdir()) == []


def test_mailcove_config_naming_a_new_file_works_as_config_does(tmp_path: Path, etc_mail: Path, cwd: Path) -> None:
    """docs/import.md: `--config FILE` (or $MAILCOVE_CONFIG) is created if it does not exist yet.
    The new file's defaults were read from $MAILCOVE_CONFIG itself: 'file not found'."""
    config = tmp_path / "mailcove.toml"
    data = tmp_path / "data"
    r = mailcove("--data", data, "import", "sendmail", etc_mail, cwd=cwd, environ={"MAILCOVE_CONFIG": str(config)})
    assert r.returncode == 0, r.stderr
    assert tomllib.loads(config.read_text())["data_dir"] == str(data)


def test_no_config_and_no_data_dir_is_refused(tmp_path: Path, etc_mail: Path, cwd: Path) -> None:
    r = mailcove("import", "sendmail", etc_mail, cwd=cwd)
    assert r.returncode == 2
    assert one_line(r) == (f"mailcove: no config file to record where the data goes (it would be "
                           f"{cwd / 'mailcove-data'}): give --config FILE (written if missing, with data_dir) "
                           "or --data DIR")
    assert list(cwd.iterdir()) == []


def test_data_elsewhere_than_the_config_says_is_refused(tmp_path: Path, etc_mail: Path) -> None:
    config = tmp_path / "mailcove.toml"
    mine = tmp_path / "installed"
    config.write_text(f'data_dir = "{mine}"\n' + FAST_CONFIG)
    before = config.read_text()
    other = tmp_path / "other"
    r = mailcove("--config", config, "--data", other, "import", "sendmail", etc_mail)
    assert r.returncode == 2
    assert one_line(r).startswith(f"mailcove: the data dir {other} is not {mine}, the data dir of {config}: "
                                  "the import would split the installation in two")
    assert not other.exists() and config.read_text() == before


def test_data_elsewhere_than_an_existing_default_installation_is_refused(tmp_path: Path, etc_mail: Path) -> None:
    config = tmp_path / "mailcove.toml"
    config.write_text(FAST_CONFIG)  # no data_dir: mailcove-data beside the file, which holds an installation
    assert mailcove("--config", config, "--create", "domain", "add", "example.org").returncode == 0
    other = tmp_path / "other"
    r = mailcove("--config", config, "--data", other, "import", "sendmail", etc_mail)
    assert r.returncode == 2
    assert one_line(r).startswith(f"mailcove: the data dir {other} is not {tmp_path / 'mailcove-data'}")
    assert not other.exists()
