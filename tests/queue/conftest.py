"""Fixtures of tests/queue: a data dir with domain a.test and user a@a.test made through the CLI,
and the store and directory opened on it (the queue runner's real collaborators)."""

from __future__ import annotations

from pathlib import Path

import pytest
from outbound_testing import free_tcp_port

from mailcove.config import load_settings
from mailcove.directory import open_directory
from mailcove.store.factory import open_store


@pytest.fixture
def configured(tmp_path: Path) -> tuple[Path, Path]:
    from click.testing import CliRunner

    from mailcove.cli.main import root

    cfg = tmp_path / "m.toml"
    cfg.write_text(f'hostname = "mx.a.test"\n[transport]\n"dead.test" = "127.0.0.1:{free_tcp_port()}"\n'
                   "[queue]\nconnect_timeout = 2.0\n")
    data = tmp_path / "data"
    data.mkdir(mode=0o700)  # only setup and serve create a missing data dir
    for args in (["domain", "add", "a.test"], ["user", "add", "a@a.test", "--password-stdin"]):
        r = CliRunner().invoke(root, ["--config", str(cfg), "--data", str(data), *args], input="It1\n")
        assert r.exit_code == 0, r.output
    return cfg, data


@pytest.fixture
async def env(configured: tuple[Path, Path]):  # type: ignore[no-untyped-def]
    cfg, data = configured
    settings = load_settings(cfg, data_dir=str(data))
    store = open_store(settings, watch_changes=False)
    await store.start()
    directory = open_directory(settings)
    await directory.start()
    yield settings, store, directory
    await directory.close()
    await store.close()
