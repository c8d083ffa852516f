"""Every numeric setting has its range in config/settings.py, and a value outside it stops any
command with one line naming the file, the key and the range (exit 2) instead of crashing later
(argon2 with 0 KiB) or being taken silently (a negative retry time)."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path

import pytest

from cli.cli_process import mailcove, one_line
from mailcove.config import ConfigError, Settings, load_settings
from mailcove.config.settings import Range


def _numeric_fields(cls: type, prefix: str = "") -> list[tuple[str, dataclasses.Field[typing.Any]]]:
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out += _numeric_fields(tp, f"{prefix}{f.name}.")  # type: ignore[arg-type]
        elif tp in (int, float) or (typing.get_origin(tp) in (typing.Union, types.UnionType)
                                    and set(typing.get_args(tp)) & {int, float}):
            out.append((prefix + f.name, f))
    return out


def test_every_numeric_setting_has_a_range_holding_its_default() -> None:
    fields = _numeric_fields(Settings)
    assert len(fields) > 70
    for key, f in fields:
        allowed = f.metadata.get("range")
        assert isinstance(allowed, Range), f"{key} has no range"
        assert allowed.admits(f.default), f"{key}'s default {f.default} is outside {allowed}"  # type: ignore[arg-type]


@pytest.mark.parametrize(("section", "key", "value", "allowed"), [
    ("auth", "argon2_memory_kib", "0", "at least 1024 and at most 4194304"),
    ("queue", "retry_minutes", "-5", "more than 0 and at most 10080"),
    ("queue", "mx_port", "70000", "at least 1 and at most 65535"),
    ("smtp", "max_connections", "0", "at least 1"),
])
def test_out_of_range_is_one_line_with_file_key_and_range(tmp_path: Path, section: str, key: str, value: str,
                                                          allowed: str) -> None:
    config = tmp_path / "mailcove.toml"
    config.write_text(f"[{section}]\n{key} = {value}\n")
    data = tmp_path / "data"
    data.mkdir()
    for command in (("domain", "list"), ("user", "add", "a@hamap.local", "--password-stdin")):
        r = mailcove("--config", config, "--data", data, *command, input="It1\n")
        assert r.returncode == 2, r.stderr
        assert one_line(r) == (f"mailcove: config error: {config}: {section}.{key}: out of range: {value} "
                               f"(allowed: {allowed})")


def test_the_edges_of_a_range_load(tmp_path: Path) -> None:
    p = tmp_path / "m.toml"
    p.write_text("[auth]\nargon2_memory_kib = 1024\n[queue]\nretry_minutes = 0.01\nmx_port = 65535\n")
    s = load_settings(p)
    assert (s.auth.argon2_memory_kib, s.queue.retry_minutes, s.queue.mx_port) == (1024, 0.01, 65535)
    p.write_text("[queue]\nretry_minutes = 0\n")
    with pytest.raises(ConfigError) as e:
        load_settings(p)
    assert e.value.key == "queue.retry_minutes"


def test_configuration_md_lists_every_range() -> None:
    from mailcove_testing import REPO

    text = (REPO / "docs" / "configuration.md").read_text()
    section = text.split("## Ranges of the numeric settings", 1)[1].split("\n## ", 1)[0]
    documented = dict(re.findall(r"^\| `([a-z0-9_.]+)` \| (.+?) \|$", section, re.M))
    actual = {key: str(f.metadata["range"]) for key, f in _numeric_fields(Settings)}
    assert documented == actual
