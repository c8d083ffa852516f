"""sd_notify(3) without a dependency: one datagram to $NOTIFY_SOCKET.

With `Type=notify` (contrib/systemd/mailcove.service) systemd counts the service as started only
after READY=1, which `mailcove serve` sends once every listener accepts and the banner is out, so
`systemctl start mailcove && swaks ...` never races the start. The protocol is a few lines
(a datagram of KEY=VALUE lines to a Unix socket, `@` meaning the abstract namespace), which is
why this is hand-written instead of pulling in python-systemd (a C extension)."""

from __future__ import annotations

import os
import socket


def notify(state: str) -> bool:
    """Send `state` (e.g. "READY=1") if systemd asked for notifications. False when not under
    systemd or when the datagram could not be sent; never raises."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address or address[0] not in "/@":
        return False
    if address[0] == "@":
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError:
        return False
    return True
