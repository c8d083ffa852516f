"""Mail users: a directory entry (address, argon2id hash, enabled flag) plus a store account
(mailboxes and quota). The two are kept in step: a user without an account could log in to nothing,
and an account without a user is unreachable."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mailcove.admin.context import AdminContext
from mailcove.core.errors import AccountNotFound
from mailcove.directory import UserInfo

log = logging.getLogger("mailcove.admin")


@dataclass(frozen=True, slots=True)
class UserView:
    address: str
    disabled: bool
    used_bytes: int | None = None  # None: the store could not say
    used_messages: int | None = None
    max_bytes: int | None = None
    max_messages: int | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "address": self.address,
            "disabled": self.disabled,
            "used_bytes": self.used_bytes,
            "used_messages": self.used_messages,
            "quota_bytes": self.max_bytes,
            "quota_messages": self.max_messages,
        }


async def add_user(
    ctx: AdminContext,
    address: str,
    password: str,
    *,
    quota_bytes: int | None = None,
    quota_messages: int | None = None,
) -> UserInfo:
    """Create the user, then its mailboxes (INBOX, Sent, Drafts, Trash, Junk, Archive). If the
    store fails, the directory entry is removed again so no half-made user remains."""
    info = await ctx.directory.add_user(address, password)
    try:
        store = await ctx.store()
        await store.create_account(info.address)
        if quota_bytes is not None or quota_messages is not None:
            qb = quota_bytes if quota_bytes is not None else ctx.settings.store.default_quota_bytes
            qm = quota_messages if quota_messages is not None else ctx.settings.store.default_quota_messages
            await store.set_quota(info.address, qb, qm)
    except BaseException:
        await ctx.directory.delete_user(info.address)
        raise
    return info


async def check_new_user(ctx: AdminContext, address: str) -> str:
    return await ctx.directory.check_new_user(address)


async def user_key(ctx: AdminContext, address: str) -> str:
    return await ctx.directory.user_key(address)


async def set_password(ctx: AdminContext, address: str, password: str) -> str:
    return await ctx.directory.set_password(address, password)


async def set_quota(ctx: AdminContext, address: str, quota_bytes: int | None, quota_messages: int | None) -> UserView:
    key = await ctx.directory.user_key(address)
    store = await ctx.store()
    current = await store.usage(key)
    qb = current.max_bytes if quota_bytes is None else quota_bytes
    qm = current.max_messages if quota_messages is None else quota_messages
    await store.set_quota(key, qb, qm)
    u = await store.usage(key)
    return UserView(key, False, u.bytes, u.messages, u.max_bytes, u.max_messages)


async def disable_user(ctx: AdminContext, address: str) -> str:
    return await ctx.directory.set_disabled(address, True)


async def enable_user(ctx: AdminContext, address: str) -> str:
    return await ctx.directory.set_disabled(address, False)


async def delete_user(ctx: AdminContext, address: str, *, keep_mail: bool = False) -> str:
    key = await ctx.directory.delete_user(address)
    if not keep_mail:
        store = await ctx.store()
        try:
            await store.delete_account(key)
        except AccountNotFound:
            pass  # made before the store existed, or already gone: nothing to delete
    return key


async def list_users(ctx: AdminContext, *, domain: str | None = None, with_usage: bool = True) -> list[UserView]:
    users = await ctx.directory.list_users(domain)
    if not with_usage:
        return [UserView(u.address, u.disabled) for u in users]
    store = await ctx.store()
    out: list[UserView] = []
    for u in users:
        try:
            usage = await store.usage(u.address)
        except AccountNotFound:
            out.append(UserView(u.address, u.disabled))
            continue
        out.append(UserView(u.address, u.disabled, usage.bytes, usage.messages, usage.max_bytes, usage.max_messages))
    return out
