"""Accounts: quotas, usage, and copying whole accounts between backends. (An account is created
and deleted with its mailboxes: mailboxes.py.)"""

from __future__ import annotations

from mailcove.core.errors import AccountNotFound, QuotaExceeded, StoreError
from mailcove.store.api import AccountState, MailboxState, Usage
from mailcove.store.rules.statements import (
    AccountExists,
    AccountNames,
    AccountQuota,
    AccountRow,
    AccountUsage,
    ExpungedRecords,
    InsertAccount,
    InsertMailbox,
    LockAccount,
    MailboxStates,
    RecordExpunged,
    SetQuota,
)
from mailcove.store.sansio import Rule


def locked_account(user: str) -> Rule[AccountRow]:
    account = yield LockAccount(user)
    if account is None:
        raise AccountNotFound(f"no such account: {user}")
    return account


def check_quota(
    user: str, quota_bytes: int, quota_messages: int, used_bytes: int, used_messages: int, messages: int, size: int
) -> None:
    """QuotaExceeded if adding `messages` messages of `size` bytes in all would pass a limit
    (0: none). Every way of adding messages asks this, deliveries included."""
    if quota_messages and used_messages + messages > quota_messages:
        raise QuotaExceeded(f"{user} is over its message quota", resource="messages")
    if quota_bytes and used_bytes + size > quota_bytes:
        raise QuotaExceeded(f"{user} is over its storage quota", resource="bytes")


def set_quota(user: str, max_bytes: int, max_messages: int) -> Rule[None]:
    if (yield SetQuota(user, max_bytes, max_messages)) == 0:
        raise AccountNotFound(f"no such account: {user}")


def account_exists(user: str) -> Rule[bool]:
    return bool((yield AccountExists(user)))


def list_accounts() -> Rule[list[str]]:
    return list((yield AccountNames()))


def usage(user: str) -> Rule[Usage]:
    found = yield AccountUsage(user)
    if found is None:
        raise AccountNotFound(f"no such account: {user}")
    return found


# --- copying a whole installation to another backend (`mailcove db copy`) ------------------------


def export_account(user: str) -> Rule[AccountState]:
    row = yield AccountQuota(user)
    if row is None:
        raise AccountNotFound(f"no such account: {user}")
    account_id, quota_bytes, quota_messages = row
    boxes = []
    for mid, name, validity, uidnext, hms, special, subscribed, noselect in (yield MailboxStates(account_id)):
        expunged = tuple((u, m) for u, m in (yield ExpungedRecords(mid)))
        boxes.append(MailboxState(name, validity, uidnext, hms, special, bool(subscribed), bool(noselect), expunged))
    return AccountState(user, quota_bytes, quota_messages, tuple(boxes))


def restore_account(state: AccountState) -> Rule[None]:
    """Exactly these mailboxes with their counters and expunge records; the account's last
    UIDVALIDITY is the highest restored, so a mailbox created later gets a higher one."""
    last = max((m.uidvalidity for m in state.mailboxes), default=0)
    account_id = yield InsertAccount(state.user, state.quota_bytes, state.quota_messages, last)
    if account_id is None:
        raise StoreError(f"account {state.user} already exists in the target", code=550, enhanced="5.2.0")
    for m in state.mailboxes:
        mailbox_id = yield InsertMailbox(
            account_id, m.name, m.uidvalidity, m.special_use, m.subscribed, m.noselect, m.uidnext, m.highestmodseq
        )
        if m.expunged:
            yield RecordExpunged(mailbox_id, m.expunged)
