"""The base of every parsed command."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

__all__ = ["Command", "command"]


def command(cls: type) -> type:
    """Decorator: a frozen, slotted, keyword-only dataclass (keyword-only so subclasses can add
    required fields after the base class's defaulted ``uid``)."""
    return dataclass(frozen=True, slots=True, kw_only=True)(cls)


@command
class Command:
    """A complete, syntactically valid command. ``name`` is the upper-case command word
    (without ``UID``); ``uid`` is True for the ``UID`` form."""

    name: ClassVar[str] = ""
    tag: str
    uid: bool = False
