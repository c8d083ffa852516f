"""`mailcove user add|passwd|list|del|disable|enable|quota`.

The password comes from a hidden prompt (asked twice), --password-stdin (one line) or
--password-file (its first line). It is never echoed, logged, put in an error message, or stored
other than as an argon2id hash."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mailcove import admin
from mailcove.admin import users
from mailcove.admin.runner import emit, fail, run
from mailcove.admin.units import BadSize, format_size
from mailcove.cli.password_input import ask


def _strip_newline(line: str) -> str:
    return line[:-1] if line.endswith("\n") else line


def _read_password(password_stdin: bool, password_file: str | None) -> str:
    if password_stdin and password_file:
        fail("give either --password-stdin or --password-file, not both", 2)
    if password_stdin:
        pw = _strip_newline(sys.stdin.readline()).rstrip("\r")
    elif password_file:
        try:
            with Path(password_file).open(encoding="utf-8") as f:
                pw = _strip_newline(f.readline()).rstrip("\r")
        except OSError as exc:
            fail(f"cannot read the password file {password_file}: {exc.strerror or exc}")
    else:
        pw = ask("Password")
    if not pw:
        fail("the password must not be empty")
    return pw


def _given_password(password_stdin: bool, password_file: str | None) -> str | None:
    """A password given by option is read before the settings are: root running a command on the
    service user's data dir becomes that user then (privileges.adopt_data_dir_owner), and could
    no longer read a root-only --password-file such as /root/a.pw."""
    return _read_password(password_stdin, password_file) if password_stdin or password_file else None


def _password_options(f: click.decorators.FC) -> click.decorators.FC:
    f = click.option(
        "--password-file", type=click.Path(dir_okay=False), help="Read the password from FILE's first line."
    )(f)
    f = click.option("--password-stdin", is_flag=True, help="Read the password from one line of standard input.")(f)
    return f


def _size(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return admin.parse_size(text)
    except BadSize as exc:
        fail(exc.text, 2)


@click.group()
def user() -> None:
    """Mail users (address, password, mailboxes, quota)."""


@user.command("add")
@click.argument("address")
@_password_options
@click.option("--quota", metavar="BYTES", help="Storage quota, e.g. 500M or 2G (0 = unlimited).")
@click.option("--quota-messages", type=click.IntRange(min=0), metavar="N", help="Message count quota (0 = unlimited).")
@click.pass_obj
def add(
    obj: object,
    address: str,
    password_stdin: bool,
    password_file: str | None,
    quota: str | None,
    quota_messages: int | None,
) -> None:
    """Add a user and create its mailboxes (INBOX, Sent, Drafts, Trash, Junk, Archive)."""
    quota_bytes = _size(quota)
    given = _given_password(password_stdin, password_file)
    # Refuse a bad address or an existing user before asking for a password (twice).
    run(obj.settings, lambda ctx: users.check_new_user(ctx, address))  # type: ignore[attr-defined]
    password = given or _read_password(password_stdin, password_file)
    info = run(
        obj.settings,  # type: ignore[attr-defined]
        lambda ctx: admin.add_user(ctx, address, password, quota_bytes=quota_bytes, quota_messages=quota_messages),
    )
    click.echo(f"added user {info.address}")


@user.command("passwd")
@click.argument("address")
@_password_options
@click.pass_obj
def passwd(obj: object, address: str, password_stdin: bool, password_file: str | None) -> None:
    """Change a user's password."""
    given = _given_password(password_stdin, password_file)
    run(obj.settings, lambda ctx: users.user_key(ctx, address))  # type: ignore[attr-defined]
    password = given or _read_password(password_stdin, password_file)
    key = run(obj.settings, lambda ctx: admin.set_password(ctx, address, password))  # type: ignore[attr-defined]
    click.echo(f"changed the password of {key}")


@user.command("list")
@click.option("--domain", help="Only this domain's users.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def list_(obj: object, domain: str | None, as_json: bool) -> None:
    """List users with their mailbox usage and quota."""
    views = run(obj.settings, lambda ctx: admin.list_users(ctx, domain=domain))  # type: ignore[attr-defined]
    rows = [v.as_dict() for v in views]
    if not as_json:
        for r in rows:
            r["used"] = _usage(r["used_bytes"], r["quota_bytes"])  # type: ignore[arg-type]
            r["msgs"] = _usage(r["used_messages"], r["quota_messages"], size=False)  # type: ignore[arg-type]
    emit(
        rows,
        [("address", "User"), ("disabled", "Disabled"), ("used", "Used / quota"), ("msgs", "Messages / quota")],
        as_json=as_json,
        empty="no users yet: mailcove user add ADDRESS",
    )


def _usage(used: int | None, limit: int | None, *, size: bool = True) -> str:
    if used is None:
        return "-"
    fmt = format_size if size else str
    return f"{fmt(used)} / {fmt(limit) if limit else 'unlimited'}"


@user.command("del")
@click.argument("address")
@click.option("--keep-mail", is_flag=True, help="Keep the mailboxes in the store (only remove the login).")
@click.pass_obj
def delete(obj: object, address: str, keep_mail: bool) -> None:
    """Delete a user and (unless --keep-mail) all of its mail."""
    key = run(obj.settings, lambda ctx: admin.delete_user(ctx, address, keep_mail=keep_mail))  # type: ignore[attr-defined]
    click.echo(f"deleted user {key}" + (" (mail kept)" if keep_mail else ""))


@user.command("disable")
@click.argument("address")
@click.pass_obj
def disable(obj: object, address: str) -> None:
    """Refuse the user's logins (mail is still accepted and stored)."""
    key = run(obj.settings, lambda ctx: admin.disable_user(ctx, address))  # type: ignore[attr-defined]
    click.echo(f"disabled {key}")


@user.command("enable")
@click.argument("address")
@click.pass_obj
def enable(obj: object, address: str) -> None:
    """Allow the user's logins again."""
    key = run(obj.settings, lambda ctx: admin.enable_user(ctx, address))  # type: ignore[attr-defined]
    click.echo(f"enabled {key}")


@user.command("quota")
@click.argument("address")
@click.option("--bytes", "quota", metavar="BYTES", help="Storage quota, e.g. 500M or 2G (0 = unlimited).")
@click.option("--messages", "quota_messages", type=click.IntRange(min=0), metavar="N", help="Message count quota.")
@click.pass_obj
def quota(obj: object, address: str, quota: str | None, quota_messages: int | None) -> None:
    """Show or change a user's quota."""
    quota_bytes = _size(quota)
    view = run(
        obj.settings,  # type: ignore[attr-defined]
        lambda ctx: admin.set_quota(ctx, address, quota_bytes, quota_messages),
    )
    click.echo(
        f"{view.address}: {_usage(view.used_bytes, view.max_bytes)} bytes, "
        f"{_usage(view.used_messages, view.max_messages, size=False)} messages"
    )


def register(root: click.Group) -> None:
    root.add_command(user)
