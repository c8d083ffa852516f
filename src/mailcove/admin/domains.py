"""Local domains: the seed's /etc/mail/local-host-names, with Sendmail-style domain aliases."""

from __future__ import annotations

from mailcove.admin.context import AdminContext
from mailcove.directory import DomainInfo


async def add_domain(ctx: AdminContext, name: str, alias_of: str | None = None) -> DomainInfo:
    return await ctx.directory.add_domain(name, alias_of)


async def list_domains(ctx: AdminContext) -> list[DomainInfo]:
    return await ctx.directory.list_domains()


async def delete_domain(ctx: AdminContext, name: str) -> None:
    await ctx.directory.delete_domain(name)
