"""Comparing a Plan's directory objects with the directory, and applying what differs.

Import only adds and updates: nothing in the directory that the old files do not mention is
deleted (an administrator may have added users, aliases or rules already). Every planned item
gets an outcome: add, change, unchanged, or a conflict, which is reported as not imported and
left for the administrator to decide."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from mailcove.directory.api import AccessRule, AliasInfo, DomainInfo
from mailcove.directory.sql import PutResult
from mailcove.importers.plan import AccessAdd, AliasAdd, DomainAdd, Plan, Source, Unmapped


class ImportDirectory(Protocol):
    """The part of the directory's admin API the import uses (what `domain add`, `alias add` and
    `access import` call)."""

    async def list_domains(self) -> list[DomainInfo]: ...
    async def add_domain(self, name: str, alias_of: str | None = None) -> DomainInfo: ...
    async def list_aliases(self) -> list[AliasInfo]: ...
    async def add_alias(self, source: str, targets: Any) -> AliasInfo: ...
    async def list_access_rules(self) -> list[AccessRule]: ...
    async def put_access_rules(self, rules: Any, *, replace: bool = False) -> PutResult: ...


@dataclass
class Outcome:
    section: str  # "domains" | "aliases" | "access"
    status: str  # "add" | "change" | "unchanged"
    label: str
    source: Source
    detail: str = ""
    item: Any = None  # what apply() passes to the directory


@dataclass
class DirectoryDiff:
    outcomes: list[Outcome] = field(default_factory=list)
    conflicts: list[Unmapped] = field(default_factory=list)


@dataclass
class Existing:
    domains: dict[str, str | None] = field(default_factory=dict)
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    access: dict[tuple[str, str], AccessRule] = field(default_factory=dict)


async def read_existing(directory: ImportDirectory) -> Existing:
    return Existing(
        {d.name: d.alias_of for d in await directory.list_domains()},
        {a.source: a.targets for a in await directory.list_aliases()},
        {(r.tag.value, r.key): r for r in await directory.list_access_rules()},
    )


def _rule_text(rule: AccessRule) -> str:
    return rule.display.expandtabs(1).replace("\t", " ")


def _same_rule(a: AccessRule, b: AccessRule) -> bool:
    return (a.action, a.reply_code, a.reply_enhanced, a.reply_text) == (
        b.action, b.reply_code, b.reply_enhanced, b.reply_text)


def diff_directory(plan: Plan, existing: Existing) -> DirectoryDiff:
    """Pure: what applying `plan` to a directory holding `existing` would do."""
    out = DirectoryDiff()
    state = dict(existing.domains)

    def canon(d: str) -> str:
        return state.get(d) or d

    def conflict(src: Source, text: str, reason: str) -> None:
        out.conflicts.append(Unmapped(src.file, src.line, text, reason))

    for d in plan.domains:
        _diff_domain(d, state, canon, out, conflict)

    seen_alias: dict[str, tuple[Source, tuple[str, ...]]] = {}
    for a in plan.aliases:
        local, _, dom = a.source_address.rpartition("@")
        label = f"{a.source_address} -> {', '.join(a.targets)}"
        if dom not in state:
            conflict(a.source, label, f"{dom} is not a local domain")
            continue
        key = f"{local}@{canon(dom)}"
        if key in seen_alias:
            first, targets = seen_alias[key]
            if {t.lower() for t in a.targets} <= {t.lower() for t in targets}:
                out.outcomes.append(Outcome("aliases", "unchanged", label, a.source, f"same as {first}"))
            else:
                conflict(a.source, label, f"{key} is already defined at {first} (the first definition is imported)")
            continue
        seen_alias[key] = (a.source, a.targets)
        current = existing.aliases.get(key, ())
        have = {t.lower() for t in current}
        new = tuple(t for t in a.targets if t.lower() not in have)
        if key != a.source_address:
            label = f"{a.source_address} (= {key}) -> {', '.join(a.targets)}"
        if not new:
            out.outcomes.append(Outcome("aliases", "unchanged", label, a.source))
        elif current:
            detail = f"adds {', '.join(new)}; keeps {', '.join(current)}"
            out.outcomes.append(Outcome("aliases", "change", label, a.source, detail, AliasAdd(key, new, a.source)))
        else:
            out.outcomes.append(Outcome("aliases", "add", label, a.source, "", AliasAdd(key, new, a.source)))

    seen_rule: dict[tuple[str, str], tuple[Source, AccessRule]] = {}
    for r in plan.access:
        rule: AccessRule = r.rule
        ident = (rule.tag.value, rule.key)
        label = _rule_text(rule)
        if ident in seen_rule:
            first, prev = seen_rule[ident]
            same = f"the same rule as {first} ({rule.key})"
            if _same_rule(prev, rule):
                out.outcomes.append(Outcome("access", "unchanged", label, r.source, same))
            else:
                conflict(r.source, label, f"{first} already has a rule for {rule.key}: {_rule_text(prev)} "
                         "(the first is imported)")
            continue
        seen_rule[ident] = (r.source, rule)
        cur = existing.access.get(ident)
        if cur is None:
            out.outcomes.append(Outcome("access", "add", label, r.source, "", r))
        elif _same_rule(cur, rule):
            out.outcomes.append(Outcome("access", "unchanged", label, r.source))
        else:
            out.outcomes.append(Outcome("access", "change", label, r.source, f"was: {_rule_text(cur)}", r))
    return out


def _diff_domain(d: DomainAdd, state: dict[str, str | None], canon: Any, out: DirectoryDiff, conflict: Any) -> None:
    label = f"{d.name} (alias of {d.alias_of})" if d.alias_of else d.name
    if d.alias_of is not None and d.alias_of not in state:
        conflict(d.source, label, f"{d.alias_of} is not a local domain")
        return
    want = canon(d.alias_of) if d.alias_of else None
    if d.name in state:
        cur = state[d.name]
        if cur == want:
            out.outcomes.append(Outcome("domains", "unchanged", label, d.source))
        else:
            now = f"an alias of {cur}" if cur else "a domain of its own"
            conflict(d.source, label, f"{d.name} already exists as {now}; left as it is")
        return
    if want == d.name:
        conflict(d.source, label, "a domain cannot be an alias of itself")
        return
    state[d.name] = want
    out.outcomes.append(Outcome("domains", "add", label, d.source, "", d))


async def apply(directory: ImportDirectory, diff: DirectoryDiff) -> None:
    """Domains first (aliases need them), then aliases, then the access rules in one transaction."""
    for o in diff.outcomes:
        if o.section == "domains" and o.status == "add":
            await directory.add_domain(o.item.name, o.item.alias_of)
    for o in diff.outcomes:
        if o.section == "aliases" and o.status in ("add", "change"):
            await directory.add_alias(o.item.source_address, o.item.targets)
    rules = [o.item.rule for o in diff.outcomes if o.section == "access" and o.status in ("add", "change")]
    if rules:
        await directory.put_access_rules(rules)


__all__ = ["AccessAdd", "DirectoryDiff", "Existing", "ImportDirectory", "Outcome", "apply", "diff_directory",
           "read_existing"]
