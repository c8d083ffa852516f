"""Fixtures for the IMAP session tests; the code lives in imap_lab.py."""

from imap_lab import imap, imap_factory, imap_module

__all__ = ["imap", "imap_factory", "imap_module"]
