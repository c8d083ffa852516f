"""Configuration for a private Postfix instance (`postfix -c DIR`) on loopback, shared by
tests/interop/test_postfix_peer.py, bench/smtp and bench/queue."""

from __future__ import annotations

from pathlib import Path


def private_master_cf(port: int, debian: Path = Path("/etc/postfix/master.cf")) -> str:
    """Debian's master.cf with smtpd on 127.0.0.1:`port` and chroot off for every service: the
    private queue directory holds no copy of /etc for a chrooted daemon."""
    out = []
    for line in debian.read_text().splitlines():
        fields = line.split()
        if line and not line[0].isspace() and not line.startswith("#") and len(fields) >= 8:
            if fields[0] == "smtp" and fields[1] == "inet":
                fields[0] = f"127.0.0.1:{port}"
            fields[4] = "n"
            line = "  ".join(fields)
        out.append(line)
    return "\n".join(out) + "\n"
