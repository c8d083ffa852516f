"""Load Settings from TOML, checking every key and type against the dataclasses in settings.py.

Errors name the file and the dotted key, because "invalid config" with no location is the most
common complaint about mail server configuration."""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

from mailcove.config.settings import Settings


class ConfigError(Exception):
    def __init__(self, source: str, key: str, message: str) -> None:
        self.source = source
        self.key = key
        self.message = message
        where = f"{source}: {key}: " if key else f"{source}: "
        super().__init__(where + message)


def load_settings(path: str | os.PathLike[str] | None = None, *, data_dir: str | None = None) -> Settings:
    """Read `path` (or $MAILCOVE_CONFIG), apply the --data override, and return Settings.

    With no file at all the embedded defaults are used."""
    if path is None:
        path = os.environ.get("MAILCOVE_CONFIG") or None
    if path is None:
        settings = Settings()
    else:
        p = Path(path)
        source = str(p)
        try:
            raw = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(source, "", "file not found") from None
        except PermissionError:
            raise ConfigError(source, "", "permission denied") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(source, "", f"not valid TOML: {exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(source, "", "not UTF-8 text") from None
        settings = _build(Settings, raw, source, "")
        settings.source = source
        base = p.parent
        settings = _resolve_relative(settings, base)
    if data_dir is not None:
        settings.data_dir = Path(data_dir)
    return settings


def _resolve_relative(settings: Settings, base: Path) -> Settings:
    """Relative paths in a config file are relative to that file, not to the working directory."""
    def fix(p: Path | None) -> Path | None:
        if p is None or p.is_absolute():
            return p
        return base / p

    settings.data_dir = fix(settings.data_dir) or settings.data_dir
    settings.tls.cert = fix(settings.tls.cert)
    settings.tls.key = fix(settings.tls.key)
    settings.log.file = fix(settings.log.file)
    settings.server.control_socket = fix(settings.server.control_socket)
    return settings


def _build(cls: type, raw: Any, source: str, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(source, prefix.rstrip(".") or "(top level)", "expected a table")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.metadata.get("toml", True)}
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        dotted = prefix + key
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(source, dotted, f"unknown key (known keys here: {known})")
        if prefix == "" and key in _SHORTHANDS and isinstance(value, str):
            # `directory = "system"` stands for `[directory] users = "system"`.
            value = {_SHORTHANDS[key]: value}
        kwargs[key] = _convert(hints[key], value, source, dotted)
        choices = fields[key].metadata.get("choices")
        if choices and kwargs[key] not in choices:
            raise ConfigError(source, dotted, f"expected one of {', '.join(map(repr, choices))}, got {value!r}")
        allowed = fields[key].metadata.get("range")
        if allowed is not None and not allowed.admits(kwargs[key]):
            raise ConfigError(source, dotted, f"out of range: {value!r} (allowed: {allowed})")
    return cls(**kwargs)


# Top-level keys whose table may be written as one string: the string sets this key of the table.
_SHORTHANDS = {"directory": "users"}


def _convert(tp: Any, value: Any, source: str, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _convert(args[0], value, source, key)
        raise TypeError(f"unsupported settings type {tp}")  # a programming error, not user input
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, source, key + ".")
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(source, key, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(source, key, f"expected an integer, got {value!r}")
        return value  # its field's Range (settings.bounded) bounds it
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(source, key, f"expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(source, key, f"expected a string, got {value!r}")
        return value
    if tp is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(source, key, f"expected a path string, got {value!r}")
        return Path(value)
    if origin is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, str) and item is str:
            value = [value]  # `smtp = "127.0.0.1:25"` is a common, harmless shorthand
        if not isinstance(value, list):
            raise ConfigError(source, key, f"expected a list, got {value!r}")
        return [_convert(item, v, source, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        kt, vt = typing.get_args(tp)
        if not isinstance(value, dict):
            raise ConfigError(source, key, f"expected a table, got {value!r}")
        return {_convert(kt, k, source, key): _convert(vt, v, source, f"{key}.{k}") for k, v in value.items()}
    raise TypeError(f"unsupported settings type {tp}")
