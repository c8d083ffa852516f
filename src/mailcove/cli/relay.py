"""`mailcove relay allow|deny|add|list|del`: the seed's /etc/mail/access, one rule at a time.

PATTERN without a tag is a client (Connect:): an IP (127.0.0.2), a dotted prefix (10.0.0), a CIDR
(10.0.0.0/24), a netmask (10.0.0.0/255.255.255.0), IPv6, or a host name (the client's
forward-confirmed reverse name, that host and its subdomains). --to DOMAIN|ADDRESS and
--from ADDRESS|DOMAIN make To: and From: rules. A pattern may also carry its tag itself
(Connect:1.2.3.4, To:partner.example)."""

from __future__ import annotations

import click

from mailcove import admin
from mailcove.admin.runner import emit, fail, run
from mailcove.directory import AccessRule, BadAccessRule


def _rule(pattern: str, action: str, to: bool, sender: bool) -> AccessRule:
    try:
        return admin.rule_for(pattern, action, to=to, sender=sender)
    except BadAccessRule as exc:
        fail(exc.text, 2)


def _put(obj: object, rule: AccessRule) -> None:
    result = run(obj.settings, lambda ctx: admin.put_rule(ctx, rule))  # type: ignore[attr-defined]
    verb = "added" if result.created else "updated"
    click.echo(f"{verb}: {rule.display.expandtabs(1)}")


_to = click.option("--to", "to", is_flag=True, help="PATTERN is a recipient domain or address (To:).")
_from = click.option("--from", "sender", is_flag=True, help="PATTERN is an envelope sender or its domain (From:).")


@click.group()
def relay() -> None:
    """Who may relay through this server without logging in, and who is refused (access rules)."""


@relay.command("allow")
@click.argument("pattern")
@_to
@_from
@click.pass_obj
def allow(obj: object, pattern: str, to: bool, sender: bool) -> None:
    """Allow relaying (RELAY) for a client, a recipient domain (--to) or a sender (--from)."""
    _put(obj, _rule(pattern, "RELAY", to, sender))


@relay.command("deny")
@click.argument("pattern")
@_to
@_from
@click.pass_obj
def deny(obj: object, pattern: str, to: bool, sender: bool) -> None:
    """Refuse a client, recipient or sender with 550 5.7.1 (REJECT)."""
    _put(obj, _rule(pattern, "REJECT", to, sender))


@relay.command("add")
@click.argument("pattern")
@click.argument("action")
@_to
@_from
@click.pass_obj
def add(obj: object, pattern: str, action: str, to: bool, sender: bool) -> None:
    """Add any rule: ACTION is RELAY, OK, REJECT, DISCARD or "ERROR:5.7.1:550 text".

    Example: mailcove relay add Connect:1.2.3.4 DISCARD"""
    _put(obj, _rule(pattern, action, to, sender))


@relay.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def list_(obj: object, as_json: bool) -> None:
    """List access rules in the order they were added (matching is by specificity, not order)."""
    rules = run(obj.settings, admin.list_rules)  # type: ignore[attr-defined]
    rows = []
    for r in rules:
        code, enhanced, text = r.reply()
        rows.append(
            {
                "tag": r.tag.value or None,
                "pattern": r.pattern,
                "key": r.key,
                "action": r.action.value,
                "reply": f"{code} {enhanced} {text}" if r.reply_code is not None else None,
            }
        )
    emit(
        rows,
        [("tag", "Tag"), ("pattern", "Pattern"), ("key", "Matches"), ("action", "Action"), ("reply", "Reply")],
        as_json=as_json,
        empty="no access rules: only local domains accept mail, and only 127.0.0.1/::1 may relay",
    )


@relay.command("del")
@click.argument("pattern")
@_to
@_from
@click.pass_obj
def delete(obj: object, pattern: str, to: bool, sender: bool) -> None:
    """Delete the rule for PATTERN (10.0.0 and 10.0.0.0/24 name the same rule)."""
    try:
        admin.rule_for(pattern, "OK", to=to, sender=sender)  # syntax check before opening anything
    except BadAccessRule as exc:
        fail(exc.text, 2)
    rule = run(obj.settings, lambda ctx: admin.delete_rule(ctx, pattern, to=to, sender=sender))  # type: ignore[attr-defined]
    click.echo(f"deleted: {rule.display.expandtabs(1)}")


def register(root: click.Group) -> None:
    root.add_command(relay)
