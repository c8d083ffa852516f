"""`mailcove import ...`: moving an existing installation over.

The group only collects subcommands: each module named in IMPORT_MODULES exposes
`register(group)` and adds its own (`sendmail` and `dovecot` from import_config; mail import
adds `mail`, `mbox`, `maildir`). Kept as a tuple so two engineers can each add a module without
touching the other's code."""

from __future__ import annotations

import importlib

import click

IMPORT_MODULES: tuple[str, ...] = ("mailcove.cli.import_config", "mailcove.cli.import_mail")


@click.group("import")
def import_group() -> None:
    """Import configuration (Sendmail, Dovecot) and mail from an existing installation."""


def _register_all() -> None:
    for name in IMPORT_MODULES:
        importlib.import_module(name).register(import_group)


_register_all()


def register(root: click.Group) -> None:
    root.add_command(import_group)
