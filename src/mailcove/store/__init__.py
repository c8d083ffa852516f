"""The message store: one async interface (api.py), backends beside it."""

from mailcove.store.api import (
    AppendResult,
    CopyResult,
    DeliveryTarget,
    FlagUpdate,
    IndexEntry,
    Mailbox,
    MailboxIndex,
    MailStore,
    MessageMeta,
    Usage,
)
from mailcove.store.changes import Change, ChangeBus, Subscription

__all__ = [
    "AppendResult",
    "Change",
    "ChangeBus",
    "CopyResult",
    "DeliveryTarget",
    "FlagUpdate",
    "IndexEntry",
    "MailStore",
    "Mailbox",
    "MailboxIndex",
    "MessageMeta",
    "Subscription",
    "Usage",
]
