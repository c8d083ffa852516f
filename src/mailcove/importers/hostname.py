"""The machine's own name, for `hostname` when an import found none in the old server's files.

Without it mailcove's default is socket.getfqdn(), which gives `localhost` on machines whose
/etc/hosts lists the host name after `localhost` (the seed's Rocky install, many containers), and
the imported server then greets as `localhost`."""

from __future__ import annotations

import socket

from mailcove.importers.plan import ConfigSet, Source


def machine_hostname() -> tuple[str, str]:
    """(name, how it was found): the canonical name of gethostname() as the system resolver
    gives it (nsswitch: /etc/hosts, then DNS), else gethostname() itself."""
    host = socket.gethostname()
    try:
        infos = socket.getaddrinfo(host, None, flags=socket.AI_CANONNAME)
        canonical = next((ai[3] for ai in infos if ai[3]), "")
    except OSError:
        canonical = ""
    for name in (canonical, host):
        name = name.rstrip(".").lower()
        if "." in name and name.split(".", 1)[0] != "localhost":
            return name, "the machine's FQDN"
    return host.lower(), "the machine's host name, not fully qualified: set hostname by hand"


def hostname_change() -> ConfigSet:
    name, how = machine_hostname()
    return ConfigSet(("hostname",), name, Source("this machine"), f"{how}; no host name in the imported files")
