"""Named leases (MailStore.acquire_lease): each verb is one statement, judged by the store's clock."""

from __future__ import annotations

from mailcove.store.rules.statements import AcquireLease, ReleaseLease, RenewLease
from mailcove.store.sansio import Rule


def acquire_lease(name: str, owner: str, ttl: float) -> Rule[bool]:
    return bool((yield AcquireLease(name, owner, ttl)))


def renew_lease(name: str, owner: str, ttl: float) -> Rule[bool]:
    # An expired lease nobody took yet is still ours to renew: nothing happened in between that
    # another holder could have relied on.
    return bool((yield RenewLease(name, owner, ttl)))


def release_lease(name: str, owner: str) -> Rule[None]:
    yield ReleaseLease(name, owner)
