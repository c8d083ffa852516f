"""Aliases: one address (or `@domain`, a catch-all) to several local or remote addresses."""

from __future__ import annotations

from collections.abc import Sequence

from mailcove.admin.context import AdminContext
from mailcove.directory import AliasInfo


async def add_alias(ctx: AdminContext, source: str, targets: Sequence[str]) -> AliasInfo:
    return await ctx.directory.add_alias(source, targets)


async def delete_alias(ctx: AdminContext, source: str, target: str | None = None) -> AliasInfo:
    return await ctx.directory.delete_alias(source, target)


async def list_aliases(ctx: AdminContext) -> list[AliasInfo]:
    return await ctx.directory.list_aliases()
