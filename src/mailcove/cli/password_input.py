"""Asking for a password on the terminal, for `user add|passwd` and `setup`.

A hidden prompt needs a terminal: getpass reads /dev/tty, and without one it falls back to
standard input with Python's GetPassWarning lines and the password echoed. So without a
terminal the command says, in one line, which option to use instead."""

from __future__ import annotations

import os

import click

from mailcove.admin.runner import fail

# click's hidden prompt as click ships it (getpass). click.testing.CliRunner puts its own in
# place for the duration of a call, which reads the runner's input and needs no terminal.
_GETPASS_PROMPT = click.termui.hidden_prompt_func


def has_terminal() -> bool:
    """Whether a hidden prompt can be shown: the process has a controlling terminal."""
    if click.termui.hidden_prompt_func is not _GETPASS_PROMPT:
        return True
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return False
    os.close(fd)
    return True


def ask(prompt: str, *, instead: str = "--password-stdin or --password-file") -> str:
    """The password typed twice at a hidden prompt; without a terminal, one line and exit 2."""
    if not has_terminal():
        fail(f"no terminal to ask for the password: give {instead}", 2)
    try:
        return str(click.prompt(prompt, hide_input=True, confirmation_prompt=True, err=True))
    except click.Abort:
        fail("no password given")
