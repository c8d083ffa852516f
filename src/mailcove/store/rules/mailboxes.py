"""Mailboxes: creating, deleting, renaming and subscribing (RFC 9051 6.3), and reading them; an
account is created with its default mailboxes and deleted with all of them."""

from __future__ import annotations

from mailcove.core.errors import BadMailboxName, MailboxExists, MailboxNotFound, StoreError
from mailcove.store.api import DEFAULT_MAILBOXES, Mailbox
from mailcove.store.names import is_inferior, normalize_name, parents
from mailcove.store.rules.accounts import locked_account
from mailcove.store.rules.messages import copy_rows, purge
from mailcove.store.rules.statements import (
    AccountMailboxes,
    Announce,
    ChargeAccount,
    ClearExpunged,
    DeleteAccount,
    DeleteMailbox,
    ExpungedSince,
    FindMailbox,
    Inferiors,
    InsertAccount,
    InsertMailbox,
    LockMailboxes,
    MailboxById,
    MailboxByName,
    Mailboxes,
    MakeNoselect,
    MessageUids,
    NextUidvalidity,
    RenameMailbox,
    ReviveMailbox,
    SetSubscribed,
)
from mailcove.store.sansio import Rule


def insert_mailbox(
    account_id: int, name: str, now: float, special_use: str | None = None, *, noselect: bool = False
) -> Rule[int]:
    """A new mailbox under a new UIDVALIDITY; subscribed (a \\Noselect placeholder too: it
    exists because someone subscribed to the name)."""
    uidvalidity = yield NextUidvalidity(account_id, int(now))
    return (yield InsertMailbox(account_id, name, uidvalidity, special_use, True, noselect))


def new_mailbox(user: str, account_id: int, name: str, now: float, special_use: str | None = None) -> Rule[int]:
    mailbox_id = yield from insert_mailbox(account_id, name, now, special_use)
    yield Announce(user, mailbox_id, "mailbox")
    return mailbox_id


def _make_parents(user: str, account_id: int, name: str, now: float) -> Rule[None]:
    for parent in parents(name):
        if (yield FindMailbox(account_id, parent)) is None:
            yield from new_mailbox(user, account_id, parent, now)


def create_mailbox(user: str, name: str, special_use: str | None, now: float) -> Rule[int]:
    name = normalize_name(name)
    account = yield from locked_account(user)
    existing = yield FindMailbox(account.id, name)
    if existing is not None:
        if not existing.noselect:
            raise MailboxExists(f"mailbox already exists: {name}")
        # A \Noselect placeholder left by DELETE becomes a real mailbox again.
        yield ReviveMailbox(existing.id, (yield NextUidvalidity(account.id, int(now))), special_use)
        yield Announce(user, existing.id, "mailbox")
        return existing.id
    yield from _make_parents(user, account.id, name, now)
    return (yield from new_mailbox(user, account.id, name, now, special_use))


def delete_mailbox(user: str, name: str) -> Rule[None]:
    name = normalize_name(name)
    if name == "INBOX":
        raise BadMailboxName("INBOX cannot be deleted")
    account = yield from locked_account(user)
    box = yield FindMailbox(account.id, name)
    if box is None:
        raise MailboxNotFound(f"no such mailbox: {name}")
    yield LockMailboxes((box.id,))
    has_children = bool((yield Inferiors(account.id, name, first=True)))
    if has_children and box.noselect:
        raise StoreError(f"{name} has inferior mailboxes and is already \\Noselect", code=550, enhanced="5.2.0")
    messages, size = yield from purge(box.id)
    yield ChargeAccount(account.id, -messages, -size)
    yield ClearExpunged(box.id)
    if has_children:
        # RFC 9051 6.3.4: the name stays as a \Noselect parent of its inferiors.
        yield MakeNoselect(box.id)
    else:
        yield DeleteMailbox(box.id)
    yield Announce(user, box.id, "mailbox")


def rename_mailbox(user: str, old: str, new: str, now: float) -> Rule[None]:
    old, new = normalize_name(old), normalize_name(new)
    account = yield from locked_account(user)
    box = yield FindMailbox(account.id, old)
    if box is None:
        raise MailboxNotFound(f"no such mailbox: {old}")
    if (yield FindMailbox(account.id, new)) is not None:
        raise MailboxExists(f"mailbox already exists: {new}")
    if new == old or is_inferior(new, old):
        raise BadMailboxName("cannot rename a mailbox into itself")
    yield from _make_parents(user, account.id, new, now)
    if old == "INBOX":
        # RFC 9051 6.3.6: renaming INBOX moves its messages to a new mailbox; INBOX stays, empty.
        new_id = yield from insert_mailbox(account.id, new, now)
        uids = yield MessageUids(box.id)
        if uids:
            yield from copy_rows(account, box.id, uids, new_id, move=True)
        yield Announce(user, new_id, "mailbox")
        return
    children = yield Inferiors(account.id, old)
    # Renaming changes the name, so clients must not reuse cached UIDs under it: new UIDVALIDITY.
    yield RenameMailbox(box.id, new, (yield NextUidvalidity(account.id, int(now))))
    yield Announce(user, box.id, "mailbox")
    for child_id, child_name in children:
        yield RenameMailbox(child_id, new + child_name[len(old) :], (yield NextUidvalidity(account.id, int(now))))
        yield Announce(user, child_id, "mailbox")


def set_subscribed(user: str, name: str, subscribed: bool, now: float) -> Rule[None]:
    name = normalize_name(name)
    account = yield from locked_account(user)
    if (yield SetSubscribed(account.id, name, subscribed)) == 0:
        if not subscribed:
            return
        # RFC 9051 6.3.7 allows subscribing to a name that does not exist (yet): keep a placeholder.
        yield from insert_mailbox(account.id, name, now, noselect=True)
    yield Announce(user, 0, "mailbox")


# --- accounts --------------------------------------------------------------------------------------


def create_account(user: str, quota_bytes: int, quota_messages: int, now: float) -> Rule[bool]:
    """The account and its default mailboxes; False (and nothing changed) if it exists."""
    account_id = yield InsertAccount(user, quota_bytes, quota_messages)
    if account_id is None:
        return False
    for name, special in DEFAULT_MAILBOXES:
        yield from new_mailbox(user, account_id, name, now, special)
    return True


def delete_account(user: str) -> Rule[None]:
    account = yield from locked_account(user)
    ids = yield AccountMailboxes(account.id)
    for mailbox_id in ids:
        yield from purge(mailbox_id)
        yield Announce(user, mailbox_id, "mailbox")
    yield DeleteAccount(account.id, ids)


# --- reading ---------------------------------------------------------------------------------------


def list_mailboxes(user: str) -> Rule[list[Mailbox]]:
    return list((yield Mailboxes(user)))


def get_mailbox(user: str, name: str) -> Rule[Mailbox]:
    name = normalize_name(name)
    box = yield MailboxByName(user, name)
    if box is None:
        raise MailboxNotFound(f"no such mailbox: {name}")
    return box


def mailbox_by_id(mailbox_id: int) -> Rule[Mailbox]:
    box = yield MailboxById(mailbox_id)
    if box is None:
        raise MailboxNotFound("no such mailbox")
    return box


def expunged_since(mailbox_id: int, modseq: int) -> Rule[list[int]]:
    return list((yield ExpungedSince(mailbox_id, modseq)))
