"""Admin use cases, called by cli/ (and later by an admin web UI): domains, users, aliases,
access rules. Each takes an AdminContext from `open_admin(settings)`."""

from mailcove.admin.access import delete_rule, import_access_file, list_rules, put_rule, rule_for
from mailcove.admin.aliases import add_alias, delete_alias, list_aliases
from mailcove.admin.context import AdminContext, open_admin
from mailcove.admin.domains import add_domain, delete_domain, list_domains
from mailcove.admin.units import parse_size
from mailcove.admin.users import (
    UserView,
    add_user,
    delete_user,
    disable_user,
    enable_user,
    list_users,
    set_password,
    set_quota,
)

__all__ = [
    "AdminContext",
    "UserView",
    "add_alias",
    "add_domain",
    "add_user",
    "delete_alias",
    "delete_domain",
    "delete_rule",
    "delete_user",
    "disable_user",
    "enable_user",
    "import_access_file",
    "list_aliases",
    "list_domains",
    "list_rules",
    "list_users",
    "open_admin",
    "parse_size",
    "put_rule",
    "rule_for",
    "set_password",
    "set_quota",
]
