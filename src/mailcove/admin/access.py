"""Access rules (the seed's /etc/mail/access): relay allow/deny and importing a whole file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mailcove.admin.context import AdminContext
from mailcove.directory import AccessRule, Action, BadAccessRule, Tag
from mailcove.directory.access import AccessLine, make_rule, parse_access_file, split_tag
from mailcove.directory.sql import PutResult


def rule_for(pattern: str, action: str, *, to: bool = False, sender: bool = False) -> AccessRule:
    """`relay allow 10.0.0` -> Connect:10.0.0 RELAY; `--to` / `--from` pick the To:/From: tag.
    A pattern that carries its own tag (`Connect:1.2.3.4`) keeps it."""
    if to and sender:
        raise BadAccessRule("--to and --from cannot be combined")
    tag, pat = _tagged(pattern, Tag.TO if to else Tag.FROM if sender else Tag.CONNECT)
    return make_rule(tag, pat, action)


def _tagged(pattern: str, default: Tag) -> tuple[Tag, str]:
    tag, pat = split_tag(pattern.strip())
    if tag is Tag.ANY and pat == pattern.strip():
        # No tag written: the command decides (untagged entries exist only through `access import`).
        return default, pat
    return tag, pat


async def put_rule(ctx: AdminContext, rule: AccessRule) -> PutResult:
    return await ctx.directory.put_access_rules([rule])


async def delete_rule(ctx: AdminContext, pattern: str, *, to: bool = False, sender: bool = False) -> AccessRule:
    if to and sender:
        raise BadAccessRule("--to and --from cannot be combined")
    tag, pat = _tagged(pattern, Tag.TO if to else Tag.FROM if sender else Tag.CONNECT)
    return await ctx.directory.delete_access_rule(tag, pat)


async def list_rules(ctx: AdminContext) -> list[AccessRule]:
    return await ctx.directory.list_access_rules()


@dataclass
class ImportReport:
    path: str
    imported: list[AccessLine] = field(default_factory=list)
    unmapped: list[AccessLine] = field(default_factory=list)
    created: int = 0
    updated: int = 0

    def problems(self) -> list[str]:
        return [f"{self.path}:{line.lineno}: {line.problem}: {line.text.strip()}" for line in self.unmapped]


async def import_access_file(
    ctx: AdminContext, path: str | Path, *, replace: bool = False, dry_run: bool = False
) -> ImportReport:
    """Import every line that maps onto mailcove's rules in one transaction; report the others
    with file:line instead of dropping them."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        raise BadAccessRule(f"cannot read {p}: {exc.strerror or exc}") from None
    report = ImportReport(str(p))
    for line in parse_access_file(text):
        (report.imported if line.rule is not None else report.unmapped).append(line)
    if not dry_run:
        result = await ctx.directory.put_access_rules(
            [line.rule for line in report.imported if line.rule is not None], replace=replace
        )
        report.created, report.updated = result.created, result.updated
    return report


__all__ = ["Action", "ImportReport", "delete_rule", "import_access_file", "list_rules", "put_rule", "rule_for"]
