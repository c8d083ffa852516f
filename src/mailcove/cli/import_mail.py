"""`mailcove import mail|mbox|maildir`: move a user's mail over from Dovecot/Sendmail files.

    mailcove import mail a@hamap.local --location 'mbox:~/mail:INBOX=/var/mail/%u'
    mailcove import mail a@hamap.local --location maildir:~/Maildir --home /home/a
    mailcove import mbox a@hamap.local /var/mail/a [--mailbox INBOX]
    mailcove import maildir a@hamap.local /home/a/Maildir [--layout fs]

UIDVALIDITY, UIDs, flags, keywords, dates and POP3 UIDLs are kept; running it again adds only
what is new (importers/mailio.py). The old server's POP3 settings that decided its UIDLs are
options (Dovecot's defaults; `mailcove import dovecot` prints them from its configuration).
Works while the server runs: the store is shared between processes."""

from __future__ import annotations

import os
import pwd
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from mailcove.admin.context import AdminContext
from mailcove.admin.runner import fail, run
from mailcove.admin.units import BadSize, parse_size
from mailcove.core.errors import MailError
from mailcove.directory.errors import DirectoryError
from mailcove.importers import dovecot_uidl, mailio
from mailcove.importers.mbox import QUOTINGS


@contextmanager
def progress_bar(
    total: int, quiet: bool, label: str, *, in_bytes: bool = True
) -> Iterator[Callable[[int], None] | None]:
    """A rich progress bar on stderr, only for a person watching (a TTY) and without --quiet."""
    if quiet or not sys.stderr.isatty() or total <= 0:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    count = DownloadColumn() if in_bytes else MofNCompleteColumn()
    with Progress(TextColumn("{task.description}"), BarColumn(), count, TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


async def account_key(ctx: AdminContext, user: str, *, create: bool) -> str:
    """USER's store account: the directory's canonical key (a@rocky9-3 -> a@hamap.local; the Unix
    name `a` for system users), created on first use as IMAP login does."""
    store = await ctx.store()
    try:
        key = await ctx.directory.user_key(user)
    except DirectoryError:
        if await store.account_exists(user):
            return user  # mail kept for an account the directory no longer lists
        fail(f"{user} is not a local account (add it first: mailcove user add {user})")
    if create and not await store.account_exists(key):
        await store.create_account(key)
    return key


def _print_report(report: mailio.ImportReport, user: str, unset_flag: str = "") -> None:
    """`unset_flag`: the old server's pop3_deleted_flag when [pop3] deleted_flag is not it."""
    for box in report.boxes:
        kept = "UIDVALIDITY and UIDs kept" if box.uidvalidity_kept else "new UIDs"
        line = f"{box.name}: {box.added} added, {box.skipped} already there ({kept})"
        if box.renumbered:
            line += (f"; {box.renumbered} got a new UID (mailcove had used theirs for other mail since an"
                     " earlier import): clients download those again")
        if box.uidls_kept:
            line += f"; {box.uidls_kept} keep their POP3 UIDL"
        if box.pop3_hidden:
            line += f"; {box.pop3_hidden} stay deleted for POP3"
        click.echo(line + (f"; {box.note}" if box.note else ""))
        if box.pop3_hidden and unset_flag:
            click.echo(f"warning: {box.name}: POP3 lists the {box.pop3_hidden} message(s) the old server's POP3 had"
                       f" deleted until [pop3] deleted_flag = \"{unset_flag}\" is set", err=True)
        for why, n in sorted(box.uidls_lost.items()):
            click.echo(f"warning: {box.name}: {n} message(s) keep no POP3 UIDL of the old server ({why}):"
                       " POP3 clients that leave mail on the server download them again", err=True)
    for p in report.problems:
        click.echo(f"warning: {p}", err=True)
    nl = report.newlines
    if nl:
        click.echo(
            f"{user}: {report.added} messages added, {report.skipped} already there;"
            f" line ends: {nl['lf']} LF, {nl['crlf']} CRLF, {nl['mixed']} mixed (kept as they were)"
        )
        if nl["lf"] and nl["crlf"] == 0:
            click.echo("export with --newline lf (the default) to get these files' bytes back")
        elif nl["crlf"] and nl["lf"] == 0:
            click.echo("export with --newline crlf to get these files' bytes back")
    else:
        click.echo(f"{user}: {report.added} messages added, {report.skipped} already there")


def _unset_flag(settings: Any, pop3: dovecot_uidl.OldPop3) -> str:
    return pop3.deleted_flag if pop3.deleted_flag and settings.pop3.deleted_flag != pop3.deleted_flag else ""


def _policy(settings: Any, login: str, max_size: str | None, any_owner: bool) -> mailio.Policy:
    """The import limits: the message size cap, and (run as root) whose files may be read."""
    if max_size is not None:
        try:
            limit = parse_size(max_size)
        except BadSize as exc:
            fail(exc.text, 2)
    else:
        limit = settings.server.max_message_bytes
    owners = None
    if not any_owner and os.geteuid() == 0:
        try:
            owners = frozenset({pwd.getpwnam(login.partition("@")[0]).pw_uid, 0})
        except KeyError:
            owners = None  # a virtual user: the files belong to a mail UID, nothing to compare with
    return mailio.Policy(limit, owners)


def _run_import(
    obj: object,
    user: str,
    build: Callable[[mailio.ImportReport], list[mailio.SourceBox]],
    *,
    into: str | None,
    quoting: str,
    quiet: bool,
    policy: Callable[[Any], mailio.Policy],
    pop3: dovecot_uidl.OldPop3,
) -> None:
    settings = obj.settings  # type: ignore[attr-defined]
    user = user.strip().lower()
    limits = policy(settings)
    report = mailio.ImportReport()
    try:
        sources = build(report)
    except (mailio.LocationError, OSError) as exc:
        fail(str(exc), 2)

    async def use_case(ctx: AdminContext) -> tuple[str, mailio.ImportReport]:
        key = await account_key(ctx, user, create=True)
        store = await ctx.store()
        with progress_bar(sum(s.size for s in sources), quiet, f"importing {key}") as advance:
            return key, await mailio.import_mail(store, key, sources, into=into, quoting=quoting, report=report,
                                                 progress=advance, policy=limits, pop3=pop3)

    try:
        key, result = run(settings, use_case)
    except mailio.SourceError as exc:
        fail(str(exc))
    except ValueError as exc:
        fail(str(exc), 2)
    finally:
        _hand_back(settings)
    _print_report(result, key, _unset_flag(settings, pop3))


def _hand_back(settings: Any) -> None:
    """`import` keeps root to read the users' files (privileges.KEEP_ROOT_COMMANDS); what it
    created in a data dir owned by the service user (blob directories, SQLite -wal/-shm when no
    server had them open) goes back to that user, as `mailcove backup` does."""
    if os.geteuid() != 0:
        return
    from mailcove.net import privileges

    try:
        st = settings.data_dir.stat()
    except OSError:
        return
    if st.st_uid != 0:
        privileges.chown_tree(settings.data_dir, privileges.Target(str(st.st_uid), st.st_uid, st.st_gid,
                                                                   (st.st_gid,), "/"))


_quoting = click.option(
    "--from-quoting", "quoting", type=click.Choice(QUOTINGS), default="none", show_default=True,
    help="Undo '>From ' escaping in mbox bodies: none keeps them as Dovecot served them; mboxrd/mboxo remove one '>'.",
)
_quiet = click.option("--quiet", "-q", is_flag=True, help="No progress bar.")


def _old_pop3(f: Any) -> Any:
    """The old Dovecot's POP3 settings that decided its UIDLs (importers/dovecot_uidl.py)."""
    f = click.option("--pop3-deleted-flag", "deleted_flag", metavar="KEYWORD", default="",
                     help="The old server's pop3_deleted_flag: messages with this keyword stay deleted for POP3.")(f)
    f = click.option("--mbox-md5", type=click.Choice(dovecot_uidl.MD5_ALGORITHMS), default="apop3d",
                     show_default=True, help="The old server's mbox_md5 (for %m and mbox %g).")(f)
    f = click.option("--pop3-reuse-xuidl/--no-pop3-reuse-xuidl", "reuse_xuidl", default=False, show_default=True,
                     help="The old server's pop3_reuse_xuidl: it served a message's X-UIDL header as its UIDL.")(f)
    return click.option("--pop3-uidl-format", "uidl_format", metavar="FORMAT", default=dovecot_uidl.DEFAULT_FORMAT,
                        show_default=True, help="The old server's pop3_uidl_format.")(f)


def _pop3(uidl_format: str, reuse_xuidl: bool, mbox_md5: str, deleted_flag: str) -> dovecot_uidl.OldPop3:
    try:
        dovecot_uidl.check_format(uidl_format)
    except dovecot_uidl.FormatError as exc:
        fail(f"--pop3-uidl-format: {exc}", 2)
    return dovecot_uidl.OldPop3(uidl_format, reuse_xuidl, mbox_md5, deleted_flag.strip())


def _limits(f: Any) -> Any:
    f = click.option("--any-owner", is_flag=True,
                     help="Run as root, read files whoever owns them (default: only the user's and root's).")(f)
    return click.option("--max-message-size", "max_size", metavar="SIZE",
                        help="Largest message to import (default: [server] max_message_bytes).")(f)


@click.command("mail")
@click.argument("user", required=False)
@click.option("--location", required=True, metavar="MAIL_LOCATION",
              help="Dovecot mail_location, e.g. 'mbox:~/mail:INBOX=/var/mail/%u' or maildir:~/Maildir[:LAYOUT=fs].")
@click.option("--all-users", is_flag=True,
              help="Every user of the directory instead of USER, each with their Unix home; users without mail "
                   "at the location are listed and skipped.")
@click.option("--home", type=click.Path(file_okay=False, path_type=Path),
              help="The user's home directory for ~ and %h (default: the Unix account's); with --all-users a "
                   "pattern such as /home/%n.")
@click.option("--login", help="The name the old server knew the user by, for %u/%n/%d (default: USER's local part).")
@click.option("--mailbox", "only", metavar="NAME", help="Import only this mailbox of the location.")
@_quoting
@_old_pop3
@_limits
@_quiet
@click.pass_obj
def import_mail(obj: object, user: str | None, location: str, all_users: bool, home: Path | None, login: str | None,
                only: str | None, quoting: str, uidl_format: str, reuse_xuidl: bool, mbox_md5: str, deleted_flag: str,
                max_size: str | None, any_owner: bool, quiet: bool) -> None:
    """Import USER's mail (or --all-users') from a Dovecot mail_location (mbox or Maildir)."""
    pop3 = _pop3(uidl_format, reuse_xuidl, mbox_md5, deleted_flag)
    if all_users:
        if user or login or only:
            fail("--all-users takes no USER, --login or --mailbox", 2)
        _import_all(obj, location, home, quoting, max_size, any_owner, quiet, pop3)
        return
    if not user:
        fail("give USER or --all-users", 2)
    login = login or user.partition("@")[0]
    home = home or mailio.home_of(login)

    def build(report: mailio.ImportReport) -> list[mailio.SourceBox]:
        loc = mailio.parse_location(location, login=login, home=home)
        sources = mailio.list_sources(loc, report)
        if only is not None:
            sources = [s for s in sources if s.name == only or (only.upper() == "INBOX" and s.name == "INBOX")]
            if not sources:
                raise mailio.LocationError(f"no mailbox {only!r} at {location}")
        return sources

    _run_import(obj, user, build, into=None, quoting=quoting, quiet=quiet,
                policy=lambda st: _policy(st, login, max_size, any_owner), pop3=pop3)


def _import_all(obj: object, location: str, home_pattern: Path | None, quoting: str, max_size: str | None,
                any_owner: bool, quiet: bool, pop3: dovecot_uidl.OldPop3) -> None:
    """One pass over the directory's users; a user whose import fails is reported and the rest go on.
    `home_pattern` (--home with --all-users) is expanded per user (%n, %u, %d), e.g. /home/%n."""
    settings = obj.settings  # type: ignore[attr-defined]
    failed = 0

    async def use_case(ctx: AdminContext) -> None:
        nonlocal failed
        store = await ctx.store()
        for info in await ctx.directory.list_users():
            if info.disabled:
                continue
            key = await account_key(ctx, info.address, create=False)
            login = key.partition("@")[0]
            report = mailio.ImportReport()
            try:
                home = (Path(mailio.expand(str(home_pattern), login=login, home=None)) if home_pattern
                        else mailio.home_of(login))
                loc = mailio.parse_location(location, login=login, home=home)
                sources = mailio.list_sources(loc, report)
            except (mailio.LocationError, OSError) as exc:
                click.echo(f"{key}: skipped: {exc}")
                continue
            if not await store.account_exists(key):
                await store.create_account(key)
            try:
                with progress_bar(sum(x.size for x in sources), quiet, f"importing {key}") as advance:
                    await mailio.import_mail(store, key, sources, quoting=quoting, report=report, progress=advance,
                                             policy=_policy(settings, login, max_size, any_owner), pop3=pop3)
            except (mailio.SourceError, MailError) as exc:
                failed += 1
                click.echo(f"mailcove: {key}: {exc}", err=True)
                continue
            _print_report(report, key, _unset_flag(settings, pop3))

    try:
        run(settings, use_case)
    finally:
        _hand_back(settings)
    if failed:
        fail(f"{failed} user(s) not completely imported (see above); run the same command again after fixing")


@click.command("mbox")
@click.argument("user")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--mailbox", default="INBOX", show_default=True, help="The mailbox to import into.")
@_quoting
@_old_pop3
@_limits
@_quiet
@click.pass_obj
def import_mbox(obj: object, user: str, file: Path, mailbox: str, quoting: str, uidl_format: str, reuse_xuidl: bool,
                mbox_md5: str, deleted_flag: str, max_size: str | None, any_owner: bool, quiet: bool) -> None:
    """Import one mbox FILE into one of USER's mailboxes."""

    def build(report: mailio.ImportReport) -> list[mailio.SourceBox]:
        return [mailio.SourceBox(mailbox, "mbox", file, file.stat().st_size)]

    _run_import(obj, user, build, into=mailbox, quoting=quoting, quiet=quiet,
                policy=lambda st: _policy(st, user, max_size, any_owner),
                pop3=_pop3(uidl_format, reuse_xuidl, mbox_md5, deleted_flag))


@click.command("maildir")
@click.argument("user")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--layout", type=click.Choice(["maildir++", "fs"]), default="maildir++", show_default=True,
              help="Folders as .Foo.Bar (Maildir++) or Foo/Bar directories (LAYOUT=fs).")
@click.option("--mailbox", metavar="NAME",
              help="DIRECTORY is one folder (its cur/ and new/ only): import it into this mailbox.")
@_old_pop3
@_limits
@_quiet
@click.pass_obj
def import_maildir(obj: object, user: str, directory: Path, layout: str, mailbox: str | None, uidl_format: str,
                   reuse_xuidl: bool, mbox_md5: str, deleted_flag: str, max_size: str | None, any_owner: bool,
                   quiet: bool) -> None:
    """Import a Maildir tree (INBOX and its folders), or one folder with --mailbox, into USER's mailboxes."""

    def build(report: mailio.ImportReport) -> list[mailio.SourceBox]:
        if mailbox is not None:
            if not (directory / "cur").is_dir() and not (directory / "new").is_dir():
                raise mailio.LocationError(f"{directory} has no cur/ or new/: not a Maildir folder")
            return [mailio.SourceBox(mailbox, "maildir", directory, 0)]
        return mailio.list_sources(mailio.Location("maildir", directory, None, layout), report)

    _run_import(obj, user, build, into=mailbox, quoting="none", quiet=quiet,
                policy=lambda st: _policy(st, user, max_size, any_owner),
                pop3=_pop3(uidl_format, reuse_xuidl, mbox_md5, deleted_flag))


def register(group: click.Group) -> None:
    group.add_command(import_mail)
    group.add_command(import_mbox)
    group.add_command(import_maildir)
