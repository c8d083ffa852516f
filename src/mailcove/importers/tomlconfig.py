"""Merging planned config keys into the administrator's TOML file without losing anything in it.

tomlkit keeps comments, key order and formatting of everything it does not touch (the stdlib's
tomllib only reads). Comparison is against the file's own value when the key is there, else
against mailcove's default, so a key that already has the wanted value (written or defaulted) is
"unchanged" and nothing is written: importing twice leaves the file byte for byte as it was."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
import tomlkit.exceptions

from mailcove.config import ConfigError, load_settings
from mailcove.config.settings import Settings
from mailcove.importers.plan import DEFAULT, ConfigSet, Unmapped

_ABSENT = object()


@dataclass
class ConfigOutcome:
    change: ConfigSet
    status: str  # "add" | "change" | "unchanged"
    old: Any  # the file's value, DEFAULT when the key is not in the file

    @property
    def label(self) -> str:
        return f"{self.change.dotted} = {show(self.change.value)}"


def show(value: Any) -> str:
    if value is DEFAULT:
        return "(mailcove's default)"
    return tomlkit.item(value).as_string() if not isinstance(value, str) else tomlkit.string(value).as_string()


def default_of(key: tuple[str, ...]) -> Any:
    """mailcove's default for a key: DEFAULT for "unset" (None, or a free table's missing key),
    _ABSENT for a key mailcove does not know. hostname="" avoids the FQDN lookup."""
    node: Any = Settings(hostname="")
    for part in key:
        if isinstance(node, dict):
            node = node.get(part, None)
        elif dataclasses.is_dataclass(node) and part in {f.name for f in dataclasses.fields(node)}:
            node = getattr(node, part)
        else:
            return _ABSENT
    if isinstance(node, Path):
        return str(node)
    return DEFAULT if node is None else node


def _lookup(doc: Any, key: tuple[str, ...]) -> Any:
    node = doc
    for part in key:
        if not hasattr(node, "get") or part not in node:
            return _ABSENT
        node = node[part]
    return node.unwrap() if hasattr(node, "unwrap") else node


def _same(a: Any, b: Any) -> bool:
    if a is DEFAULT or b is DEFAULT:
        return a is b
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def parse_doc(text: str | None, path: str) -> tomlkit.TOMLDocument:
    if text is None:
        return tomlkit.document()
    try:
        return tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        raise ConfigError(path, "", f"not valid TOML: {exc}") from None


def diff_config(doc: tomlkit.TOMLDocument, changes: list[ConfigSet]) -> tuple[list[ConfigOutcome], list[Unmapped]]:
    """The last change for a key wins (as the last line does in the files it came from); an
    earlier one with another value is reported."""
    last: dict[tuple[str, ...], ConfigSet] = {}
    superseded: list[Unmapped] = []
    for c in changes:
        prev = last.get(c.key)
        if prev is not None and not _same(prev.value, c.value):
            superseded.append(Unmapped(prev.source.file, prev.source.line, f"{prev.dotted} = {show(prev.value)}",
                                       f"superseded by {c.source}"))
        last.pop(c.key, None)
        last[c.key] = c
    out: list[ConfigOutcome] = []
    for c in last.values():
        current = _lookup(doc, c.key)
        if current is _ABSENT:
            effective = default_of(c.key)
            old: Any = DEFAULT
            status = "unchanged" if effective is not _ABSENT and _same(effective, c.value) else "add"
            if c.value is DEFAULT:
                status = "unchanged"
        else:
            old = current
            status = "unchanged" if _same(current, c.value) else "change"
        out.append(ConfigOutcome(c, status, old))
    return out, superseded


def merge(doc: tomlkit.TOMLDocument, outcomes: list[ConfigOutcome]) -> str:
    for o in outcomes:
        if o.status == "unchanged":
            continue
        *parents, last = o.change.key
        node: Any = doc
        for part in parents:
            if part not in node:
                node[part] = tomlkit.table()
            node = node[part]
        if o.change.value is DEFAULT:
            if last in node:
                del node[last]
        else:
            node[last] = o.change.value
    return tomlkit.dumps(doc)


def fragment(outcomes: list[ConfigOutcome]) -> str:
    """The TOML to add by hand when there is no config file to write."""
    doc = tomlkit.document()
    return merge(doc, [o for o in outcomes if o.change.value is not DEFAULT])


def write_validated(path: Path, text: str) -> None:
    """Write `text` to `path` only if mailcove can load it; atomically, keeping the file's mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".import-", suffix=".toml", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        try:
            load_settings(tmp)
        except ConfigError as exc:
            raise ConfigError(str(path), exc.key, f"the merged file would not load: {exc.message}") from None
        if path.exists():
            st = path.stat()
            os.chmod(tmp, st.st_mode & 0o7777)
            if os.geteuid() == 0:
                # root editing the service user's file: it must stay theirs
                os.chown(tmp, st.st_uid, st.st_gid)
        else:
            # Like Postfix's main.cf: nothing secret lives in it (passwords are in files it
            # names), and a server started as its own user must be able to read it.
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


__all__ = ["ConfigOutcome", "default_of", "diff_config", "fragment", "merge", "parse_doc", "write_validated"]
