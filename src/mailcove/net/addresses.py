"""Listener addresses: parsing `HOST:PORT`, choosing standard or unprivileged ports, and turning
the settings plus `--listen` overrides into one plan per listener name.

Nothing here binds; listeners.py does that, all at once, before anything is served."""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from mailcove.config import ConfigError, Settings
from mailcove.config.settings import IMPLICIT_TLS_LISTENERS, LISTENER_NAMES, LISTENER_PORTS

CAP_NET_BIND_SERVICE = 10


@dataclass(frozen=True, slots=True)
class ListenAddress:
    """One `HOST:PORT`. host None means every address, IPv4 and IPv6 (the seed's `listen = *`)."""

    host: str | None
    port: int

    def __str__(self) -> str:
        if self.host is None:
            return f"*:{self.port}"
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


def parse_address(text: str, default_port: int | None = None) -> ListenAddress:
    """Parse `HOST:PORT`, `[v6]:PORT`, `*:PORT`, or a bare port. Raises ValueError with a reason."""
    text = text.strip()
    if not text:
        raise ValueError("empty address")
    host: str | None
    if text.isdigit():
        host, port_text = None, text
    elif text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"{text!r}: missing ']'")
        host, rest = text[1:end], text[end + 1 :]
        if not rest.startswith(":"):
            if rest or default_port is None:
                raise ValueError(f"{text!r}: expected [ADDRESS]:PORT")
            rest = f":{default_port}"
        port_text = rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{text!r}: {host!r} is not an IPv6 address") from None
    else:
        if text.count(":") > 1:
            raise ValueError(f"{text!r}: write IPv6 addresses in brackets, as [::1]:143")
        if ":" in text:
            host, port_text = text.rsplit(":", 1)
        elif default_port is not None:
            host, port_text = text, str(default_port)
        else:
            raise ValueError(f"{text!r}: expected HOST:PORT")
        if host in ("*", ""):
            host = None
    if not port_text.isdigit():
        raise ValueError(f"{text!r}: port {port_text!r} is not a number")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"{text!r}: port {port} out of range")
    return ListenAddress(host, port)


def can_bind_privileged() -> bool:
    """True when binding ports below 1024 will work: root, CAP_NET_BIND_SERVICE (systemd's
    AmbientCapabilities), or a lowered net.ipv4.ip_unprivileged_port_start."""
    if os.geteuid() == 0:
        return True
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                if int(line.split()[1], 16) & (1 << CAP_NET_BIND_SERVICE):
                    return True
                break
    except (OSError, ValueError):
        pass
    try:
        start = int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text().strip())
    except (OSError, ValueError):
        return False
    # The sysctl covers every standard port we use only when it is at or below the lowest (25).
    return start <= min(std for std, _ in LISTENER_PORTS.values())


def default_port(name: str, privileged: bool | None = None) -> int:
    if privileged is None:
        privileged = can_bind_privileged()
    standard, unprivileged = LISTENER_PORTS[name]
    return standard if privileged else unprivileged


@dataclass(frozen=True, slots=True)
class ListenerPlan:
    name: str
    addresses: tuple[ListenAddress, ...]  # empty: switched off
    source: str  # where the addresses came from, for error messages
    reason_off: str = ""  # why it is off when addresses is empty


def parse_overrides(values: list[str] | tuple[str, ...]) -> dict[str, list[str]]:
    """`--listen NAME=HOST:PORT` (repeatable; `NAME=` switches the listener off). Raises
    ConfigError naming `--listen`."""
    out: dict[str, list[str]] = {}
    for value in values:
        name, sep, addr = value.partition("=")
        name = name.strip()
        if not sep:
            raise ConfigError("--listen", name, "expected NAME=HOST:PORT (or NAME= to switch it off)")
        if name not in LISTENER_NAMES:
            raise ConfigError("--listen", name, f"unknown listener (known: {', '.join(LISTENER_NAMES)})")
        items = out.setdefault(name, [])
        # Commas allow several addresses in one option: --listen imap=127.0.0.1:143,[::1]:143
        items.extend(a for a in (s.strip() for s in addr.split(",")) if a)
    return out


def plan_listeners(
    settings: Settings, overrides: dict[str, list[str]] | None = None, *, privileged: bool | None = None
) -> list[ListenerPlan]:
    """One plan per listener name, in LISTENER_NAMES order. Raises ConfigError naming
    `listen.<name>` (or `--listen` for a bad override)."""
    overrides = overrides or {}
    plans: list[ListenerPlan] = []
    listen = settings.listen.by_listener()
    for name in LISTENER_NAMES:
        configured = listen[name]
        if name in overrides:
            raw, source, explicit = overrides[name], "--listen", True
        elif configured is not None:
            raw, source, explicit = configured, settings.source, True
        else:
            raw, source, explicit = None, settings.source, False
        if name in IMPLICIT_TLS_LISTENERS and not settings.tls.enabled:
            if explicit and raw:
                raise ConfigError(source, f"listen.{name}", "an implicit-TLS listener needs [tls] enabled = true")
            plans.append(ListenerPlan(name, (), source, "off: [tls] enabled = false"))
            continue
        if raw is None:
            plans.append(ListenerPlan(name, (ListenAddress(None, default_port(name, privileged)),), source))
            continue
        addrs: list[ListenAddress] = []
        for item in raw:
            try:
                addrs.append(parse_address(item, default_port(name, privileged)))
            except ValueError as exc:
                raise ConfigError(source, f"listen.{name}", str(exc)) from None
        plans.append(ListenerPlan(name, tuple(dict.fromkeys(addrs)), source, "" if addrs else "off"))
    return plans


def resolve_bind_targets(addr: ListenAddress) -> list[tuple[int, tuple[str, int]]]:
    """(family, sockaddr) pairs to bind for one address. `*` is 0.0.0.0 plus :: (IPV6_V6ONLY),
    the latter only when the host has IPv6."""
    if addr.host is None:
        targets: list[tuple[int, tuple[str, int]]] = [(socket.AF_INET, ("0.0.0.0", addr.port))]
        if socket.has_ipv6 and _ipv6_available():
            targets.append((socket.AF_INET6, ("::", addr.port)))
        return targets
    infos = socket.getaddrinfo(addr.host, addr.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    seen: dict[tuple[int, tuple[str, int]], None] = {}
    for family, _type, _proto, _canon, sockaddr in infos:
        seen[(family, (str(sockaddr[0]), int(sockaddr[1])))] = None
    return list(seen)


def _ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False
