"""Root of the `mailcove` command: the global options and the list of command groups.

Each command group lives in its own module under cli/ and exposes `register(root)`. Settings are
loaded lazily, so `mailcove --help` works even with a broken config file."""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field

import click

from mailcove.config import ConfigError, Settings, load_settings
from mailcove.net import privileges

COMMAND_MODULES = (
    "serve",
    "domain",
    "user",
    "alias",
    "relay",
    "access",
    "tls",
    "deliver",
    "sendmail",
    "mailq",
    "queue",
    "dkim",
    "dns",
    "check",
    "index",
    "db",
    "importing",
    "export",
    "backup",
    "restore",
    "setup",
)


@dataclass
class CliContext:
    config_path: str | None
    data_dir: str | None
    _settings: Settings | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = load_settings(self.config_path, data_dir=self.data_dir)
            except ConfigError as exc:
                click.echo(f"mailcove: config error: {exc}", err=True)
                sys.exit(2)
            # root on a data dir owned by the service user: become its owner before any command
            # opens a database, so no root-owned SQLite/blob files are left behind.
            ctx = click.get_current_context(silent=True)
            command = ctx.find_root().invoked_subcommand if ctx else None
            privileges.adopt_data_dir_owner(self._settings, command)
            if command not in ("serve", "sendmail", "mailq"):  # serve checks (and logs) itself
                _check_data_dir(self._settings)
        return self._settings


def _check_data_dir(settings: Settings) -> None:
    """A data dir other local users can read is closed (one line on stderr says so) or, when
    mailcove may not change it, refused (exit 2) before any command reads or writes mail."""
    from mailcove.app import DataDirError, secure_data_dir

    if not settings.data_dir.is_dir():
        return
    try:
        fixed = secure_data_dir(settings.data_dir)
    except (DataDirError, OSError) as exc:
        click.echo(f"mailcove: {exc}", err=True)
        sys.exit(2)
    if fixed:
        click.echo(f"mailcove: {fixed}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="MAILCOVE_CONFIG",
    help="TOML configuration file (also $MAILCOVE_CONFIG). Without one, embedded defaults apply.",
)
@click.option("--data", "data_dir", type=click.Path(file_okay=False), help="Data directory (overrides the config).")
@click.version_option(package_name="mailcove")
@click.pass_context
def root(ctx: click.Context, config_path: str | None, data_dir: str | None) -> None:
    """mailcove: SMTP, IMAP and POP3 mail server in one package."""
    ctx.obj = CliContext(config_path, data_dir)


def _register_all() -> None:
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"mailcove.cli.{name}")
        module.register(root)


_register_all()


def main() -> None:
    root(prog_name="mailcove")
