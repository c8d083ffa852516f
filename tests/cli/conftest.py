from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mailcove.cli.main import root

# Cheap argon2 for speed; the CLI reads it from a real config file, as an administrator's would.
FAST_CONFIG = """\
[auth]
argon2_time_cost = 1
argon2_memory_kib = 1024
"""


@dataclass
class Cli:
    data: Path
    config: Path

    def __call__(self, *args: str, input: str | None = None) -> Result:
        runner = CliRunner()
        return runner.invoke(
            root, ["--config", str(self.config), "--data", str(self.data), *args], input=input, catch_exceptions=False
        )


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    config = tmp_path / "mailcove.toml"
    config.write_text(FAST_CONFIG)
    (tmp_path / "data").mkdir(mode=0o700)  # only setup and serve create a missing data dir
    return Cli(tmp_path / "data", config)


@pytest.fixture
def lab(cli: Cli) -> Cli:
    """The seed's lab, made through the CLI."""
    for args in (("domain", "add", "hamap.local"), ("domain", "add", "rocky9-3", "--alias-of", "hamap.local")):
        assert cli(*args).exit_code == 0
    for name in ("a", "b"):
        r = cli("user", "add", f"{name}@hamap.local", "--password-stdin", input="It1\n")
        assert r.exit_code == 0, r.output
    return cli

