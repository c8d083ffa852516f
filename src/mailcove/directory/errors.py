"""Directory errors. Each one is a `DirectoryError` (from core) with text an administrator can act
on; the CLI prints `str(exc)` as its one-line message, so the text names the offending value."""

from __future__ import annotations

from mailcove.core.errors import DirectoryError


class BadAddress(DirectoryError):
    """The address is not valid mail address syntax."""

    code = 501
    enhanced = "5.1.3"


class UnknownDomain(DirectoryError):
    """The domain is not a local domain."""


class DomainExists(DirectoryError):
    """The domain already exists."""


class DomainInUse(DirectoryError):
    """The domain still has users, aliases or alias domains."""


class UnknownUser(DirectoryError):
    """No such user."""

    enhanced = "5.1.1"


class UserExists(DirectoryError):
    """The user already exists."""


class UnknownAlias(DirectoryError):
    """No such alias."""

    enhanced = "5.1.1"


class BadAccessRule(DirectoryError):
    """The access rule cannot be understood."""

    code = 501
    enhanced = "5.5.4"


class UnknownAccessRule(DirectoryError):
    """No such access rule."""


class BadPassword(DirectoryError):
    """The password is not acceptable (empty or too long)."""

    code = 501
    enhanced = "5.5.4"


class DirectoryBusy(DirectoryError):
    """Too many logins are waiting for a password check; try again later."""

    # Temporary: SMTP answers 454 4.7.0, IMAP NO [UNAVAILABLE], POP3 -ERR [SYS/TEMP].
    code = 454
    enhanced = "4.7.0"


__all__ = [
    "BadAccessRule",
    "BadAddress",
    "BadPassword",
    "DirectoryBusy",
    "DirectoryError",
    "DomainExists",
    "DomainInUse",
    "UnknownAccessRule",
    "UnknownAlias",
    "UnknownDomain",
    "UnknownUser",
    "UserExists",
]
