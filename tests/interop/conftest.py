"""Fixtures shared by the interop test modules: one lab-mode and one default (TLS) mailcove for
the whole run, so each IMAP client test does not pay a server start (tests/interop/imap_servers.py)."""

from interop.imap_servers import imap_lab, imap_strict, user

__all__ = ["imap_lab", "imap_strict", "user"]
