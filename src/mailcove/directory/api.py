"""The directory interface: who may log in, where an address goes, and who may relay.

Two verbs carry the weight, as in Stalwart's directory: `authenticate` and `resolve`. The access
checks (Sendmail's /etc/mail/access) sit beside them. Everything is async because a backend may
need I/O (SQLite in a thread, PostgreSQL, PAM, DNS for host-name rules); callers never
block the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from mailcove.directory.throttle import LoginThrottle


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated user. `user` is the canonical address key and the store's account name."""

    user: str
    address: str
    login: str = ""  # what the client typed, for logs


@dataclass(frozen=True, slots=True)
class Local:
    """Deliver to a local account. `detail` is the plus-address tag (`a+tag@` -> "tag"), kept so
    delivery may file by it; `mailbox` None means INBOX."""

    user: str
    mailbox: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Remote:
    """Not ours: relay to this address (if the client may relay)."""

    address: str


@dataclass(frozen=True, slots=True)
class Alias:
    """The address is an alias, already fully expanded: every final target once, loops cut."""

    targets: tuple[Local | Remote, ...]


@dataclass(frozen=True, slots=True)
class Invalid:
    """A local domain but no such recipient, or a syntax error; SMTP answers 550 5.1.1."""

    reason: str


Resolution = Local | Alias | Remote | Invalid


class Action(StrEnum):
    """Sendmail access-map right-hand sides."""

    RELAY = "RELAY"  # allow relaying (and accept, like OK)
    OK = "OK"  # accept even where another check would refuse; does NOT allow relaying
    REJECT = "REJECT"  # refuse: 550 5.7.1, or the rule's own reply (Sendmail's ERROR:)
    DISCARD = "DISCARD"  # accept and silently drop


class Tag(StrEnum):
    CONNECT = "Connect"
    FROM = "From"
    TO = "To"
    ANY = ""  # an untagged Sendmail entry: applies to Connect, From and To alike


@dataclass(frozen=True, slots=True)
class AccessRule:
    """One access entry. `key` is the normalised form used for identity (10.0.0 and
    10.0.0.0/255.255.255.0 are the same rule); `pattern` is how it was written."""

    tag: Tag
    key: str
    pattern: str
    action: Action
    reply_code: int | None = None
    reply_enhanced: str | None = None
    reply_text: str | None = None

    def reply(self) -> tuple[int, str, str]:
        """The SMTP reply for a REJECT: Sendmail's default unless the rule carries its own."""
        return (
            self.reply_code or 550,
            self.reply_enhanced or ("5.7.1" if (self.reply_code or 550) >= 500 else "4.7.1"),
            self.reply_text or "Access denied",
        )

    @property
    def display(self) -> str:
        """The rule as an access-file line, e.g. "Connect:10.0.0  RELAY"."""
        lhs = f"{self.tag.value}:{self.pattern}" if self.tag is not Tag.ANY else self.pattern
        if self.reply_code is not None:
            enh = f"{self.reply_enhanced}:" if self.reply_enhanced else ""
            rhs = f"ERROR:{enh}{self.reply_code} {self.reply_text or ''}".rstrip()
        else:
            rhs = self.action.value
        return f"{lhs}\t{rhs}"


@dataclass(frozen=True, slots=True)
class DomainInfo:
    name: str
    alias_of: str | None = None


@dataclass(frozen=True, slots=True)
class UserInfo:
    address: str
    disabled: bool = False
    created: float = 0.0


@dataclass(frozen=True, slots=True)
class AliasInfo:
    source: str
    targets: tuple[str, ...] = field(default_factory=tuple)


class Directory(Protocol):
    """What protocol sessions may ask of the directory. Implementations: database.DatabaseDirectory
    (sql.SqliteDirectory, postgres.PostgresDirectory), system.SystemDirectory."""

    throttle: LoginThrottle

    async def start(self) -> None: ...
    async def close(self) -> None: ...

    async def authenticate(self, username: str, password: str, *, client_ip: str | None = None) -> Principal | None:
        """None for a wrong password, an unknown or disabled user, or a throttled client IP.
        With `client_ip`, failures count towards the shared throttle and are answered after its
        delay. Raises DirectoryBusy when too many verifications are already queued."""

    async def resolve(self, address: str) -> Resolution: ...

    async def expand_forwards(self, res: Resolution, address: str) -> Resolution:
        """Delivery's second step after `resolve`: the recipients' own forwarding (~/.forward of
        system users); `res` itself where there is none."""

    async def is_local_domain(self, domain: str) -> bool: ...

    async def match_connect(self, ip: str, hostname: str | None = None) -> AccessRule | None:
        """The access rule for a client (by IP, or its forward-confirmed host name), with its
        action and its reply for REJECT; None when no rule matches."""
    async def match_from(self, address: str) -> AccessRule | None: ...
    async def match_to(self, address: str) -> AccessRule | None: ...

    async def relay_allowed(
        self, ip: str, recipient: str, *, sender: str | None = None, hostname: str | None = None
    ) -> bool:
        """May an unauthenticated client at `ip` send to `recipient`? Always true for local
        domains; otherwise a RELAY rule for the client (Connect), the recipient (To) or the
        sender (From) is needed. Authenticated clients relay by SMTP policy, not here."""
