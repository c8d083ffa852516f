"""Shared value types. Stdlib only; every other layer may import this."""
