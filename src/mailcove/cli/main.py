"""Root of the `mailcove` command: the global options and the list of command groups.

Each command group lives in its own module under cli/ and exposes `register(root)`. Settings are
loaded lazily, so `mailcove --help` works even with a broken config file."""

from __future__ import annotations

import errno
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import click

from mailcove.cli.first_start import RemovedIfServeFails
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


# The commands that make an installation, so a data dir that does not exist yet is theirs to
# create (serve on its first start); every other command refuses one (a typo in --data must not
# quietly start an empty installation). sendmail is not here: it checks its own way in.
CREATING_COMMANDS = frozenset({("serve",), ("setup",), ("restore",), ("import", "sendmail"), ("import", "dovecot")})
# Commands that read the settings but never the data dir: the PostgreSQL schema lives in the DSN.
DATA_DIR_UNUSED = frozenset({("db", "migrate")})
# The commands MTAs and Postfix's pipe run, which act on sysexits.h codes: EX_USAGE (64) for a
# usage error, EX_TEMPFAIL (75: keep the mail, try again) for what the administrator must fix.
SYSEXITS_COMMANDS = frozenset({"deliver", "sendmail"})
EX_USAGE, EX_TEMPFAIL = 64, 75


@dataclass
class CliContext:
    config_path: str | None
    data_dir: str | None
    create: bool = False
    _settings: Settings | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            ctx = click.get_current_context(silent=True)
            path = _command_path(ctx)
            command = path[0] if path else None
            try:
                self._settings = load_settings(self.config_path, data_dir=self.data_dir)
            except ConfigError as exc:
                click.echo(f"mailcove: config error: {exc}", err=True)
                # deliver and sendmail: sysexits' EX_TEMPFAIL, so the caller keeps the mail meanwhile
                sys.exit(EX_TEMPFAIL if command in SYSEXITS_COMMANDS else 2)
            if command != "sendmail" and path not in DATA_DIR_UNUSED:
                _require_data_dir(self._settings, path, self.create, ctx)
            # root on a data dir owned by the service user: become its owner before any command
            # opens a database, so no root-owned SQLite/blob files are left behind.
            privileges.adopt_data_dir_owner(self._settings, command)
            if command not in ("serve", "sendmail", "mailq"):  # serve checks (and logs) itself
                _check_data_dir(self._settings)
        return self._settings


def _command_path(ctx: click.Context | None) -> tuple[str, ...]:
    """("import", "sendmail") for `mailcove import sendmail`."""
    names: list[str] = []
    while ctx is not None and ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return tuple(reversed(names))


def _require_data_dir(settings: Settings, path: tuple[str, ...], create: bool, ctx: click.Context | None) -> None:
    d = settings.data_dir
    if d.exists():
        if not d.is_dir():
            _data_dir_fail(path, f"the data dir {d.absolute()} is not a directory")
        return
    if create:
        try:
            d.mkdir(mode=0o700, parents=True)
        except OSError as exc:
            _data_dir_fail(path, f"cannot create the data dir {d.absolute()}: {exc.strerror or exc}")
        return
    if path[:1] == ("serve",) and ctx is not None:
        # serve makes it on its first start; one that fails to start takes it away again
        ctx.with_resource(RemovedIfServeFails(d))
        return
    if path in CREATING_COMMANDS:
        return
    _data_dir_fail(path, f"no data dir at {d.absolute()} (create it with `mailcove setup DOMAIN` or "
                         "`mailcove --create ...`, or fix --data / data_dir)")


def _data_dir_fail(path: tuple[str, ...], message: str) -> None:
    click.echo(f"mailcove: {message}", err=True)
    # an MTA running `deliver` keeps the mail for later instead of bouncing it
    sys.exit(EX_TEMPFAIL if path and path[0] in SYSEXITS_COMMANDS else 1)


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


class _NoArgsIsHelp(click.UsageError):
    """Stands in for click's NoArgsIsHelpError on a click before 8.2, which has none."""


# click >= 8.2 reports a group run without a command as this usage error; its message is the help.
_NO_ARGS_IS_HELP: type[click.UsageError] = getattr(click.exceptions, "NoArgsIsHelpError", _NoArgsIsHelp)


class OneLineErrors(click.Group):
    """The root group: a usage error is one `mailcove:` line on stderr (exit 2; 64, EX_USAGE, for
    deliver and sendmail, whose callers read sysexits codes), not click's three-line usage text."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,  # type: ignore[override]
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _NO_ARGS_IS_HELP as exc:  # `mailcove user`: the group's help, as click shows it
            exc.show()
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            sys.exit(_usage_line(exc))
        except click.ClickException as exc:
            click.echo(f"mailcove: {_one_line(exc.format_message())}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("mailcove: aborted", err=True)
            sys.exit(1)
        except OSError as exc:
            if exc.errno == errno.EPIPE:  # `mailcove user list | head`: as click's own main does
                sys.stdout = click.utils.PacifyFlushWrapper(sys.stdout)  # type: ignore[assignment]
                sys.exit(1)
            raise
        # standalone_mode=False returns the code of ctx.exit() (--help, --version) as an int
        sys.exit(rv if isinstance(rv, int) and not isinstance(rv, bool) else 0)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _usage_line(exc: click.UsageError) -> int:
    ctx = exc.ctx
    path = _command_path(ctx)
    message = _one_line(exc.format_message()).rstrip(".")
    message = message[:1].lower() + message[1:]
    where = f"{' '.join(path)}: " if path else ""
    hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
    click.echo(f"mailcove: {where}{message}{hint}", err=True)
    return EX_USAGE if path and path[0] in SYSEXITS_COMMANDS else exc.exit_code


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="MAILCOVE_CONFIG",
    help="TOML configuration file (also $MAILCOVE_CONFIG). Without one, embedded defaults apply.",
)
@click.option("--data", "data_dir", type=click.Path(file_okay=False), help="Data directory (overrides the config).")
@click.option("--create", is_flag=True,
              help="Create the data dir if it does not exist (setup, and serve on its first start, always do).")
@click.version_option(package_name="mailcove")
@click.pass_context
def root(ctx: click.Context, config_path: str | None, data_dir: str | None, create: bool) -> None:
    """mailcove: SMTP, IMAP and POP3 mail server in one package."""
    ctx.obj = CliContext(config_path, data_dir, create)


def _register_all() -> None:
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"mailcove.cli.{name}")
        module.register(root)


_register_all()


def main() -> None:
    root(prog_name="mailcove")
