"""The fuzz targets, one module per parser. Each module has:

- ``INSTRUMENT``: the packages atheris instruments (the parser's own code);
- ``MODULES``: the source files whose branch coverage `fuzz.replay` reports;
- ``SEEDS``: realistic whole sessions (or messages) as fuzz inputs (`fuzz.common.seed`);
- ``TOKENS``: the protocol's words, for libFuzzer's dictionary;
- ``one_input(data)``: run one input; raises only on a finding."""

from __future__ import annotations

import importlib
from types import ModuleType

NAMES = ("smtp", "imap", "pop3", "http", "mime")


def load(name: str) -> ModuleType:
    if name not in NAMES:
        raise KeyError(f"no fuzz target {name!r} (targets: {', '.join(NAMES)})")
    return importlib.import_module(f"fuzz.targets.{name}")
