"""Fixtures for every test folder; the code lives in mailcove_testing.py and pg_testing.py."""

from mailcove_testing import host_state_lock, mailcove_server, serve_factory
from pg_testing import pg_cluster, pg_dsn

__all__ = ["host_state_lock", "mailcove_server", "pg_cluster", "pg_dsn", "serve_factory"]
