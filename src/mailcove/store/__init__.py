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
    OutboundEnvelope,
    OutboundRecipient,
    QueuedRecipient,
    QueueItem,
    SubmitResult,
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
    "OutboundEnvelope",
    "OutboundRecipient",
    "QueueItem",
    "QueuedRecipient",
    "SubmitResult",
    "Subscription",
    "Usage",
]
