"""What an import would change: the plan every configuration parser returns.

A parser turns file text into a Plan and never touches the directory, the config file or the disk
(the Dovecot parser reads its includes through an injected `Files`). The apply step compares the
plan with what exists, then changes only what differs, so importing twice changes nothing the
second time. Every line a parser could not map becomes an Unmapped with its file and line: an
import may fall short, but it never drops anything without saying so."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Source:
    """Where a planned change came from, for the report (`/etc/mail/access:3`)."""

    file: str
    line: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


class _Default:
    """The value of a config key that should go back to mailcove's default (key removed)."""

    _instance: _Default | None = None

    def __new__(cls) -> _Default:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Any = _Default()


@dataclass(frozen=True, slots=True)
class ConfigSet:
    """Set one TOML key (`("tls", "enabled")`, `("transport", "example.org")`) to a value, or to
    DEFAULT: remove it so mailcove's default applies."""

    key: tuple[str, ...]
    value: Any
    source: Source
    note: str = ""

    @property
    def dotted(self) -> str:
        return ".".join(k if _bare(k) else f'"{k}"' for k in self.key)


def _bare(key: str) -> bool:
    return bool(key) and all(c.isalnum() or c in "_-" for c in key)


@dataclass(frozen=True, slots=True)
class DomainAdd:
    """A local domain; `alias_of` makes it the same domain as another (a@alias == a@primary)."""

    name: str
    alias_of: str | None
    source: Source


@dataclass(frozen=True, slots=True)
class AliasAdd:
    """An alias (`a@domain`, or `@domain` for a catch-all) to one or more addresses."""

    source_address: str
    targets: tuple[str, ...]
    source: Source


@dataclass(frozen=True, slots=True)
class AccessAdd:
    """An access rule (the directory's AccessRule), kept generic here so plans stay printable."""

    rule: Any  # mailcove.directory.AccessRule
    source: Source


@dataclass(frozen=True, slots=True)
class Unmapped:
    file: str
    line: int
    text: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.text.strip()}: {self.reason}" if self.text.strip() else f"{where}: {self.reason}"


@dataclass
class Plan:
    """Everything one `mailcove import sendmail|dovecot` run wants, in the order to apply it."""

    kind: str
    config: list[ConfigSet] = field(default_factory=list)
    domains: list[DomainAdd] = field(default_factory=list)
    aliases: list[AliasAdd] = field(default_factory=list)
    access: list[AccessAdd] = field(default_factory=list)
    unmapped: list[Unmapped] = field(default_factory=list)
    # Files read, in order (those missing are listed as Unmapped with line 0 when they matter).
    files: list[str] = field(default_factory=list)
    # Commands the administrator should run next (e.g. `mailcove import mail ...`), and facts
    # worth recording for later steps (e.g. Dovecot's mail_location).
    next_steps: list[str] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)

    def skip(self, file: str, line: int, text: str, reason: str) -> None:
        self.unmapped.append(Unmapped(file, line, text, reason))
