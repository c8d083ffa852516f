"""Who holds a TCP port, for the one line a start refused with EADDRINUSE prints.

`mailcove serve` next to the Sendmail, Postfix or Dovecot it replaces fails to bind 25, 110 or
143; naming the program that listens there (as `ss -ltnp` would) turns "Address already in use"
into something the admin can act on. Read from /proc: the listening socket's inode in
/proc/net/tcp{,6}, then the process with that inode among its descriptors. Only the processes
this one may inspect are found (all of them as root); an empty answer is not an error."""

from __future__ import annotations

import os
from pathlib import Path

PROC = Path("/proc")
TCP_LISTEN = "0A"  # the st column of /proc/net/tcp


def _listening_inodes(port: int) -> set[str]:
    found: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            rows = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) < 10 or fields[3] != TCP_LISTEN:
                continue
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                found.add(f"socket:[{fields[9]}]")
    return found


def port_holders(port: int) -> list[tuple[str, int]]:
    """(program name, pid) of every process with a socket listening on TCP `port`."""
    inodes = _listening_inodes(port)
    if not inodes:
        return []
    holders: list[tuple[str, int]] = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
            if not any(os.readlink(fd) in inodes for fd in fds):
                continue
            name = (entry / "comm").read_text().strip()
        except OSError:
            continue  # gone, or not ours to inspect
        holders.append((name, int(entry.name)))
    return sorted(holders, key=lambda h: h[1])


def port_in_use_hint(listener: str, port: int) -> str:
    """What to say after "Address already in use": who holds the port, and the ways out."""
    holders = port_holders(port)
    who = ", ".join(f"{name} (pid {pid})" for name, pid in holders[:3])
    held = f"held by {who}" if who else "held by another program (`ss -ltnp` names it, as root)"
    other = f"*:{2000 + port}" if port < 1024 else "HOST:PORT"
    return (f"{held}: stop it, or move this listener with `mailcove serve --listen {listener}={other}` "
            f"(`make serve ARGS='--listen {listener}={other}'`; `--listen {listener}=` switches it off)")
