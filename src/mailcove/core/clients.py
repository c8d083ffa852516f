"""Which network client an address stands for, for every per-client count (the login throttle,
the connection caps).

An IPv6 client is counted per /64, because one host or site typically owns a whole /64 and
could otherwise rotate through 2**64 addresses; an IPv4-mapped IPv6 address (a dual-stack
listener) is the IPv4 client it maps."""

from __future__ import annotations

import ipaddress


def client_key(ip: str) -> str:
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0].strip("[]"))
    except ValueError:
        return ip  # not an IP (a unix socket peer, say): count it by its text
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.ip_network(f"{addr}/64", strict=False))
    return str(addr)
