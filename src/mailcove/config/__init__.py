"""Typed settings and the TOML loader."""

from mailcove.config.loader import ConfigError, load_settings
from mailcove.config.settings import LISTENER_NAMES, Settings

__all__ = ["LISTENER_NAMES", "ConfigError", "Settings", "load_settings"]
