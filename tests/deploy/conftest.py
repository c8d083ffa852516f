"""Fixtures of the deployment tests; the code lives in deploy_support.py."""

from deploy_support import reachable_dir, service_user

__all__ = ["reachable_dir", "service_user"]
