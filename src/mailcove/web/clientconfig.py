"""What a mail client should be told: host, port, TLS mode and login for each protocol.

The answer comes from what the server runs, not from a second copy of the configuration: the
listeners bound by this `mailcove serve` (its `<data_dir>/serve.json`, which also knows ports
chosen at bind time) and the live settings ([tls] enabled, [auth] allow_plaintext). Listeners
that are off are never offered, and a plaintext listener is offered only where a password may
be sent over it (lab mode)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mailcove.config import Settings
from mailcove.net.addresses import plan_listeners

SocketType = Literal["SSL", "STARTTLS", "plain"]
Kind = Literal["imap", "pop3", "smtp"]

STATE_FILE = "serve.json"

# (listener, protocol kind, implicit TLS), in the order clients should prefer them: implicit TLS
# first (RFC 8314 section 3), then STARTTLS. Port 25 is for servers; it is offered for sending
# only when no submission listener runs (the seed's lab sends on 25).
INCOMING: tuple[tuple[str, Kind, bool], ...] = (
    ("imaps", "imap", True), ("imap", "imap", False), ("pop3s", "pop3", True), ("pop3", "pop3", False),
)
OUTGOING: tuple[tuple[str, Kind, bool], ...] = (
    ("submissions", "smtp", True), ("submission", "smtp", False),
)
OUTGOING_FALLBACK: tuple[str, Kind, bool] = ("smtp", "smtp", False)


@dataclass(frozen=True, slots=True)
class Endpoint:
    listener: str
    kind: Kind
    host: str
    port: int
    socket_type: SocketType

    @property
    def uses_tls(self) -> bool:
        return self.socket_type != "plain"


def public_hostname(settings: Settings) -> str:
    return (settings.web.public_hostname or settings.hostname).rstrip(".").lower()


class ListenerState:
    """The listeners the running server bound, from its serve.json, re-read when the file
    changes (a restart with other ports). Without the file (no server running: `mailcove dns`,
    `check` on a stopped server) the configured plan stands in."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._cache: tuple[tuple[int, int], dict[str, list[int]]] | None = None

    @property
    def path(self) -> Path:
        return self.settings.data_dir / STATE_FILE

    def ports(self) -> dict[str, list[int]]:
        """listener name -> the ports it is bound on (sorted, distinct)."""
        try:
            st = os.stat(self.path)
        except OSError:
            return planned_ports(self.settings)
        stamp = (st.st_mtime_ns, st.st_ino)
        if self._cache is not None and self._cache[0] == stamp:
            return self._cache[1]
        try:
            state = json.loads(self.path.read_text())
            ports = {name: _ports_of(addrs) for name, addrs in state.get("listeners", {}).items()}
        except (OSError, ValueError, AttributeError):
            return planned_ports(self.settings)
        self._cache = (stamp, ports)
        return ports


def planned_ports(settings: Settings) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for plan in plan_listeners(settings):
        if plan.addresses:
            out[plan.name] = sorted({a.port for a in plan.addresses})
    return out


def _ports_of(addresses: list[str]) -> list[int]:
    ports = set()
    for text in addresses:
        _host, _, port = str(text).rpartition(":")
        if port.isdigit():
            ports.add(int(port))
    return sorted(ports)


def endpoints(settings: Settings, ports: dict[str, list[int]]) -> list[Endpoint]:
    """Every endpoint a client may use, best first within each kind."""
    host = public_hostname(settings)
    out: list[Endpoint] = []

    def add(listener: str, kind: Kind, implicit: bool) -> bool:
        if not ports.get(listener):
            return False
        if implicit:
            socket_type: SocketType = "SSL"
        elif settings.tls.enabled:
            socket_type = "STARTTLS"
        elif settings.auth.allow_plaintext:
            socket_type = "plain"  # lab mode: the only way in, and the admin chose it
        else:
            return False  # no TLS and no plaintext passwords: nobody could log in there
        out.append(Endpoint(listener, kind, host, ports[listener][0], socket_type))
        return True

    for listener, kind, implicit in INCOMING:
        add(listener, kind, implicit)
    sending = [add(listener, kind, implicit) for listener, kind, implicit in OUTGOING]
    if not any(sending):
        add(*OUTGOING_FALLBACK)
    return out
