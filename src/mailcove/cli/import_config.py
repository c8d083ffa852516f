"""`mailcove import sendmail [DIR]` and `mailcove import dovecot [DIR]`: configuration import.

Directory objects (domains, aliases, access rules) go through the directory's admin API. Config
keys are merged into a TOML file: `--write-config PATH` if given, else the `--config` file (it is
created when missing, with `data_dir` pinned to the directory the import used); with neither, the
TOML to add is printed. `--dry-run` prints the same report and changes nothing, not even the data
directory's existence.

One installation is one config file and one data dir, so the import never splits them: the
report says where the data goes; a new config file's data dir is a new installation's
(settings.new_installation_data_dir, as `setup` writes it), not the working directory, and is
pinned in it; --data that differs from the file's data_dir is refused when the file names its
own or that one exists; with no config file at all --data must name the data dir."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from mailcove.admin.runner import fail, run
from mailcove.config import ConfigError, Settings, load_settings
from mailcove.config.settings import new_installation_data_dir
from mailcove.directory.errors import DirectoryError
from mailcove.directory.sql import DB_NAME
from mailcove.importers.apply import DirectoryDiff, Existing, apply, diff_directory, read_existing
from mailcove.importers.dovecot import plan_dovecot
from mailcove.importers.files import DiskFiles
from mailcove.importers.hostname import hostname_change
from mailcove.importers.plan import DEFAULT, ConfigSet, Plan, Source, Unmapped
from mailcove.importers.sendmail import plan_sendmail
from mailcove.importers.tomlconfig import ConfigOutcome, diff_config, fragment, merge, parse_doc, show, write_validated

_MARK = {"add": "+", "change": "~", "unchanged": "="}
_SECTIONS = (("domains", "Domains"), ("aliases", "Aliases"), ("access", "Access rules"))


@dataclass
class ConfigTarget:
    path: Path | None
    exists: bool
    text: str | None


def _config_target(obj: Any, write_config: str | None) -> ConfigTarget:
    raw = write_config or obj.config_path or os.environ.get("MAILCOVE_CONFIG") or None
    if raw is None:
        return ConfigTarget(None, False, None)
    p = Path(raw)
    try:
        return ConfigTarget(p, True, p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return ConfigTarget(p, False, None)
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"config error: {p}: {getattr(exc, 'strerror', None) or exc}", 2)


def _settings(obj: Any) -> Settings:
    """The settings the import runs with; a --config file that does not exist yet is one the
    import is about to create, not an error, and its data dir is a new installation's."""
    path = obj.config_path or os.environ.get("MAILCOVE_CONFIG") or None
    if path is None or Path(path).exists():
        return obj.settings  # type: ignore[no-any-return]
    data_dir = obj.data_dir or str(Path(path).absolute().parent / new_installation_data_dir(os.geteuid() == 0))
    # The embedded defaults: load_settings(None) would read $MAILCOVE_CONFIG, the very file that
    # does not exist yet when it names the config this import creates.
    settings = Settings()
    settings.data_dir = Path(data_dir)
    return settings


def _data_dir_change(obj: Any, target: ConfigTarget, doc: Any, used: Path, dry_run: bool) -> ConfigSet | None:
    """What keeps the config file and the data dir one installation (see the module's doc)."""
    pin = ConfigSet(("data_dir",), str(used), Source("--data" if obj.data_dir else "default"),
                    "the data directory this import used")
    if target.path is None:
        if obj.data_dir is None and not dry_run:
            fail(f"no config file to record where the data goes (it would be {used}): give --config FILE "
                 "(written if missing, with data_dir) or --data DIR", 2)
        return None
    if not target.exists:
        return pin
    try:
        configured = load_settings(target.path).data_dir.resolve()
    except ConfigError as exc:
        fail(f"config error: {exc}", 2)
    if configured == used:
        return None
    if "data_dir" in doc or configured.exists():
        fail(f"the data dir {used} is not {configured}, the data dir of {target.path}: the import would split the "
             f"installation in two; drop --data or change data_dir in {target.path}", 2)
    return None  # --data names it, and every command is given the same --data


def _hand_over(settings: Settings) -> None:
    """`import` keeps root (it reads files only root may read), so the directory database files
    it may have created go to the data dir's owner, the user the server runs as."""
    if os.geteuid() != 0:
        return
    data = Path(settings.data_dir)
    try:
        st = data.stat()
        if st.st_uid == 0:
            return
        for f in data.glob(DB_NAME + "*"):
            if f.stat().st_uid == 0:
                os.chown(f, st.st_uid, st.st_gid)
    except OSError:
        pass


def _directory_diff(settings: Settings, plan: Plan, dry_run: bool) -> DirectoryDiff:
    if not (plan.domains or plan.aliases or plan.access):
        return DirectoryDiff()
    db = Path(settings.data_dir) / DB_NAME
    if dry_run and not db.exists():
        # A dry run against a data directory that does not exist yet must not create it.
        return diff_directory(plan, Existing())

    async def go(ctx: Any) -> DirectoryDiff:
        diff = diff_directory(plan, await read_existing(ctx.directory))
        if not dry_run:
            await apply(ctx.directory, diff)
        return diff

    try:
        return run(settings, go)
    finally:
        _hand_over(settings)


def run_import(obj: Any, plan: Plan, *, what: str, dry_run: bool, as_json: bool, write_config: str | None) -> None:
    if not plan.files:
        for u in plan.unmapped:
            click.echo(f"mailcove: {u}", err=True)
        fail(f"nothing to import: none of the {plan.kind} files were found in {what}")
    settings = _settings(obj)
    target = _config_target(obj, write_config)
    try:
        doc = parse_doc(target.text, str(target.path))
    except ConfigError as exc:
        fail(f"config error: {exc}", 2)
    changes = list(plan.config)
    if "hostname" not in doc and not any(c.key == ("hostname",) for c in changes):
        # mailcove's own default (socket.getfqdn) can be `localhost`: write the name down
        changes.append(hostname_change())
    used = Path(settings.data_dir).resolve()
    new_data_dir = not used.exists()
    pin = _data_dir_change(obj, target, doc, used, dry_run)
    if pin is not None:
        # so `mailcove --config FILE serve` finds the imported directory
        changes.insert(0, pin)
    config_outcomes, superseded = diff_config(doc, changes)
    merged: str | None = None
    pending = [o for o in config_outcomes if o.status != "unchanged"]
    if target.path is not None and pending:
        merged = merge(doc, config_outcomes)
    if merged is not None and not dry_run:
        # Check the merged file loads before anything is changed, so a failure changes nothing.
        _check_loads(target.path, merged)  # type: ignore[arg-type]
    diff = _directory_diff(settings, plan, dry_run)
    if merged is not None and not dry_run:
        try:
            write_validated(target.path, merged)  # type: ignore[arg-type]
        except (ConfigError, OSError) as exc:
            fail(f"config error: {exc}", 2)
    not_imported = [*plan.unmapped, *superseded, *diff.conflicts]
    toml_text = fragment(pending) if target.path is None and pending else ""
    if as_json:
        _emit_json(plan, diff, config_outcomes, not_imported, target, toml_text, dry_run, used)
    else:
        _emit_text(plan, diff, config_outcomes, not_imported, target, toml_text, dry_run, what,
                   f"{used}" + (" (a new data dir)" if new_data_dir else ""))


def _check_loads(path: Path, text: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="mailcove-import-") as tmp:
        # Same directory name semantics are not needed: only syntax and key/type checks matter here.
        probe = Path(tmp) / path.name
        probe.write_text(text, encoding="utf-8")
        try:
            load_settings(probe)
        except ConfigError as exc:
            fail(f"config error: {path}: the merged file would not load: {exc.key}: {exc.message}", 2)


def _emit_text(
    plan: Plan,
    diff: DirectoryDiff,
    config: list[ConfigOutcome],
    not_imported: list[Unmapped],
    target: ConfigTarget,
    toml_text: str,
    dry_run: bool,
    what: str,
    data: str,
) -> None:
    echo = click.echo
    echo(f"mailcove import {plan.kind} {what}" + (" (dry run: nothing is changed)" if dry_run else ""))
    echo(f"read: {', '.join(plan.files)}")
    echo(f"data: {data}")
    counts = {"add": 0, "change": 0, "unchanged": 0}
    for section, title in _SECTIONS:
        rows = [o for o in diff.outcomes if o.section == section]
        if not rows:
            continue
        echo(f"\n{title}")
        for o in rows:
            counts[o.status] += 1
            detail = f"  ({o.detail})" if o.detail else ""
            echo(f"  {_MARK[o.status]} {o.label}    [{o.source}]{detail}")
    if config:
        if target.path is None:
            where = "no config file: add the TOML below to yours, or re-run with --write-config PATH"
        elif target.exists:
            where = str(target.path)
        else:
            where = f"{target.path}, a new file"
        echo(f"\nConfiguration ({where})")
        for c in config:
            counts[c.status] += 1
            was = f"  (was {show(c.old)})" if c.status == "change" else ""
            note = f"  ({c.change.note})" if c.change.note else ""
            echo(f"  {_MARK[c.status]} {c.label}    [{c.change.source}]{was}{note}")
    if not_imported:
        echo(f"\nNot imported ({len(not_imported)})")
        for u in not_imported:
            echo(f"  {u}")
    if plan.next_steps:
        echo("\nNext")
        for step in plan.next_steps:
            echo(f"  {step}")
    if toml_text:
        echo("\n# --- TOML to add to your mailcove configuration ---")
        echo(toml_text.rstrip("\n"))
    verb = "would be " if dry_run else ""
    echo(
        f"\n{counts['add']} {verb}added, {counts['change']} {verb}changed, {counts['unchanged']} unchanged, "
        f"{len(not_imported)} not imported"
    )


def _jsonable(value: Any) -> Any:
    return None if value is DEFAULT else value


def _emit_json(
    plan: Plan,
    diff: DirectoryDiff,
    config: list[ConfigOutcome],
    not_imported: list[Unmapped],
    target: ConfigTarget,
    toml_text: str,
    dry_run: bool,
    data_dir: Path,
) -> None:
    changes: list[dict[str, Any]] = [
        {"section": o.section, "status": o.status, "item": o.label, "source": str(o.source), "detail": o.detail}
        for o in diff.outcomes
    ]
    changes += [
        {
            "section": "config",
            "status": c.status,
            "key": c.change.dotted,
            "value": _jsonable(c.change.value),
            "old": _jsonable(c.old),
            "item": c.label,
            "source": str(c.change.source),
            "detail": c.change.note,
        }
        for c in config
    ]
    doc = {
        "kind": plan.kind,
        "dry_run": dry_run,
        "files": plan.files,
        "data_dir": str(data_dir),
        "config_file": str(target.path) if target.path else None,
        "changes": changes,
        "not_imported": [{"file": u.file, "line": u.line, "text": u.text.strip(), "reason": u.reason}
                         for u in not_imported],
        "next_steps": plan.next_steps,
        "facts": plan.facts,
        "toml": toml_text or None,
    }
    json.dump(doc, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


# --- the commands ------------------------------------------------------------------------------

_dry = click.option("--dry-run", is_flag=True, help="Show what would change and change nothing.")
_json = click.option("--json", "as_json", is_flag=True, help="Machine-readable report.")
_write = click.option(
    "--write-config",
    metavar="PATH",
    type=click.Path(dir_okay=False),
    help="Merge config keys into this TOML file (created if missing). Default: the --config file; with "
    "neither, the TOML is printed.",
)


def _guard(fn: Callable[[], Plan]) -> Plan:
    try:
        return fn()
    except (DirectoryError, ValueError) as exc:
        fail(str(getattr(exc, "text", exc)), 2)


@click.command("sendmail")
@click.argument("directory", default="/etc/mail", type=click.Path(file_okay=False))
@click.option("--aliases", "aliases_path", metavar="PATH", type=click.Path(dir_okay=False),
              help="The aliases file (default: DIRECTORY/../aliases, i.e. /etc/aliases).")
@click.option("--primary", metavar="DOMAIN",
              help="The local domain the other local-host-names become aliases of (default: the most general "
              "dotted name, e.g. hamap.local rather than mx1.hamap.local).")
@_dry
@_json
@_write
@click.pass_obj
def sendmail(obj: Any, directory: str, aliases_path: str | None, primary: str | None, dry_run: bool, as_json: bool,
             write_config: str | None) -> None:
    """Import Sendmail's local-host-names, access, aliases, virtusertable, mailertable and
    relay-domains from DIRECTORY (default /etc/mail). Lines that cannot be mapped are listed as
    FILE:LINE under "Not imported"; re-running changes nothing that is already there."""
    if not Path(directory).is_dir():
        fail(f"{directory}: not a directory")
    plan = _guard(lambda: plan_sendmail(directory, DiskFiles(), aliases_path=aliases_path, primary=primary))
    run_import(obj, plan, what=directory, dry_run=dry_run, as_json=as_json, write_config=write_config)


@click.command("dovecot")
@click.argument("directory", default="/etc/dovecot", type=click.Path())
@click.option("--root", "root_prefix", metavar="DIR", type=click.Path(file_okay=False),
              help="Absolute !include paths are looked up under DIR (a copy of the old machine's files).")
@_dry
@_json
@_write
@click.pass_obj
def dovecot(obj: Any, directory: str, root_prefix: str | None, dry_run: bool, as_json: bool,
            write_config: str | None) -> None:
    """Import Dovecot's protocols, listen (and the login services' ports), ssl, ssl_cert/ssl_key,
    disable_plaintext_auth and mail_location from DIRECTORY/dovecot.conf (default /etc/dovecot; a
    file path is read as the main file), following !include and !include_try."""
    p = Path(directory)
    if p.is_file():
        plan = _guard(lambda: plan_dovecot(str(p.parent), DiskFiles(), config_file=str(p),
                                                root_prefix=root_prefix))
    elif p.is_dir():
        plan = _guard(lambda: plan_dovecot(directory, DiskFiles(), root_prefix=root_prefix))
    else:
        fail(f"{directory}: no such file or directory")
    run_import(obj, plan, what=directory, dry_run=dry_run, as_json=as_json, write_config=write_config)


def register(group: click.Group) -> None:
    group.add_command(sendmail)
    group.add_command(dovecot)
