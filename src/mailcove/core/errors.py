"""Errors that carry their protocol meaning, so every layer can map them to a reply without
guessing. The codes follow RFC 5321 / RFC 3463; IMAP and POP3 map them to their own codes."""

from __future__ import annotations


class MailError(Exception):
    """Base class. `code`/`enhanced` are the SMTP reply; `temporary` mirrors 4xx vs 5xx."""

    code: int = 451
    enhanced: str = "4.3.0"

    def __init__(self, text: str = "", *, code: int | None = None, enhanced: str | None = None) -> None:
        super().__init__(text or self.__class__.__doc__ or "error")
        if code is not None:
            self.code = code
        if enhanced is not None:
            self.enhanced = enhanced

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500

    @property
    def text(self) -> str:
        return str(self.args[0])


class StoreError(MailError):
    """The message store refused or failed an operation."""


class QuotaExceeded(StoreError):
    """Mailbox full: the user's quota would be exceeded."""

    code = 452
    enhanced = "4.2.2"

    def __init__(self, text: str = "", *, resource: str = "bytes") -> None:
        super().__init__(text or f"quota exceeded ({resource})")
        self.resource = resource


class DiskFull(StoreError):
    """Insufficient system storage: free space is below the configured floor."""

    code = 452
    enhanced = "4.3.1"


class MailboxNotFound(StoreError):
    """No such mailbox."""

    code = 550
    enhanced = "5.1.1"


class MailboxExists(StoreError):
    """The mailbox already exists."""

    code = 550
    enhanced = "5.2.0"


class BadMailboxName(StoreError):
    """The mailbox name is not allowed."""

    code = 550
    enhanced = "5.2.0"


class AccountNotFound(StoreError):
    """No such account in the store."""

    code = 550
    enhanced = "5.1.1"


class DirectoryError(MailError):
    """The directory refused an administrative change (duplicate, unknown domain, bad syntax)."""

    code = 550
    enhanced = "5.1.0"
