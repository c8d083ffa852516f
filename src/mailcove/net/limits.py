"""Connection caps and request deadlines, the limits every protocol shares.

One `ConnectionCounter` per protocol (SMTP's three listeners share one, IMAP's two, POP3's two,
HTTP one) caps connections in total and per client IP, so a few addresses cannot take every
slot. A client is an IPv4 address or an IPv6 /64 (core/clients.py, as the login throttle counts
them): one IPv6 host owns a whole /64 and would otherwise get the per-IP cap 2**64 times.
`RequestDeadline` turns "timeout" into a deadline: the time a request may take is fixed
when it starts (plus an allowance for the bytes it brings, so an honest slow upload of a big
message still finishes), and a client trickling one byte at a time cannot extend it.

Both are plain objects used from the event loop only; the refusal a client gets is written by
its protocol's own core."""

from __future__ import annotations

from dataclasses import dataclass

from mailcove.config import Settings
from mailcove.core.clients import client_key


class ConnectionCounter:
    """Connections in total and per client (an IPv4 address, an IPv6 /64). 0 means no limit."""

    __slots__ = ("per_ip", "per_ip_limit", "total", "total_limit")

    def __init__(self, total: int, per_ip: int) -> None:
        self.total_limit = total
        self.per_ip_limit = per_ip
        self.total = 0
        self.per_ip: dict[str, int] = {}

    def try_add(self, ip: str) -> bool:
        """Count one more connection from `ip`, or return False (and count nothing) when that
        would pass either limit."""
        ip = client_key(ip)
        n = self.per_ip.get(ip, 0)
        if (self.total_limit and self.total >= self.total_limit) or (self.per_ip_limit and n >= self.per_ip_limit):
            return False
        self.total += 1
        self.per_ip[ip] = n + 1
        return True

    def remove(self, ip: str) -> None:
        ip = client_key(ip)
        self.total -= 1
        n = self.per_ip.get(ip, 0) - 1
        if n > 0:
            self.per_ip[ip] = n
        else:
            self.per_ip.pop(ip, None)

    def describe(self, ip: str) -> str:
        ip = client_key(ip)
        return f"{self.total} in total (limit {self.total_limit}), {self.per_ip.get(ip, 0)} from {ip} " \
               f"(limit {self.per_ip_limit})"


@dataclass
class ConnectionCaps:
    """The process's counters, one per protocol, built once from the settings."""

    smtp: ConnectionCounter
    imap: ConnectionCounter
    pop3: ConnectionCounter
    http: ConnectionCounter

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionCaps:
        return cls(
            smtp=ConnectionCounter(settings.smtp.max_connections, settings.smtp.max_connections_per_ip),
            imap=ConnectionCounter(settings.imap.max_connections, settings.imap.max_connections_per_ip),
            pop3=ConnectionCounter(settings.pop3.max_connections, settings.pop3.max_connections_per_ip),
            http=ConnectionCounter(settings.web.max_connections, settings.web.max_connections_per_ip),
        )


class RequestDeadline:
    """When the request in progress must be complete: `timeout` seconds after it began, plus one
    second for every `min_rate` bytes it has brought so far (Postfix 3.7's
    smtpd_per_request_deadline with smtpd_min_data_rate). min_rate 0: no allowance."""

    __slots__ = ("min_rate", "received", "started", "timeout")

    def __init__(self, timeout: float, min_rate: float = 0.0) -> None:
        self.timeout = timeout
        self.min_rate = min_rate
        self.started = 0.0
        self.received = 0

    def begin(self, now: float, timeout: float | None = None) -> None:
        self.started = now
        self.received = 0
        if timeout is not None:
            self.timeout = timeout

    def add(self, n: int) -> None:
        self.received += n

    @property
    def at(self) -> float:
        allowance = self.received / self.min_rate if self.min_rate > 0 else 0.0
        return self.started + self.timeout + allowance

    def remaining(self, now: float) -> float:
        return self.at - now

    def expired(self, now: float) -> bool:
        return now >= self.at
