"""Fixtures for every test folder; the code lives in mailcove_testing.py."""

from mailcove_testing import mailcove_server, serve_factory

__all__ = ["mailcove_server", "serve_factory"]
