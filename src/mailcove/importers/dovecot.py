"""Dovecot's configuration as a Plan: the settings mailcove has an equivalent for.

Syntax handled (Dovecot 2.3's config-parser.c, and 2.4's renamed keys):
- `key = value`, with `#` starting a comment outside quotes and a trailing `\\` continuing a line;
- `name [arg] {` ... `}` sections, nested;
- `!include PATTERN` and `!include_try PATTERN` (globs allowed, relative to the including file's
  directory; `!include` of a missing plain file is reported, `!include_try` is not);
- `$key` in a value stands for the key's earlier value (`protocols = $protocols imap`).

Mapped: protocols, listen, the imap-login/pop3-login inet_listener ports and addresses, ssl,
ssl_cert/ssl_key (`<file`), ssl_min_protocol, disable_plaintext_auth (and 2.4's
auth_allow_cleartext), pop3_deleted_flag. mail_location has no config key: it is kept as a fact and turned into the
`mailcove import mail` command to run, together with the POP3 settings that decided the UIDLs
the old server gave (pop3_uidl_format, pop3_reuse_xuidl, mbox_md5, pop3_deleted_flag; top level
or `protocol pop3 { }`, which wins), so the import keeps them (importers/dovecot_uidl.py).
Every other setting that is set is listed as not imported.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from mailcove.importers import dovecot_uidl
from mailcove.importers.files import FileProblem, Files
from mailcove.importers.plan import DEFAULT, ConfigSet, Plan, Source

MAX_INCLUDE_DEPTH = 16
MAX_FILES = 1000
MAX_LOGICAL_LINE = 64 * 1024

# Dovecot's built-in defaults for the keys we map, used when the configuration does not set them.
DEFAULT_PROTOCOLS = "imap pop3 lmtp"
DEFAULT_LISTEN = "*, ::"

# (protocol, listener name, Dovecot's standard port) for the listeners mailcove has.
LISTENERS = (("imap", "imap", 143), ("imap", "imaps", 993), ("pop3", "pop3", 110), ("pop3", "pop3s", 995))
TLS_LISTENERS = frozenset({"imaps", "pop3s"})

# Why common settings are not imported; anything else set gets the generic reason.
REASONS = {
    "auth_mechanisms": "mailcove offers PLAIN and LOGIN (after TLS, or always with auth.allow_plaintext)",
    "mbox_write_locks": "mailcove stores mail in its own store; mbox locking does not apply",
    "mail_privileged_group": "mailcove stores mail in its own store; no mail group is needed",
    "first_valid_uid": "for Unix users see [directory] system_min_uid",
    "last_valid_uid": "for Unix users see [directory] system_max_uid",
    "ssl_cipher_list": "mailcove's ciphers are fixed: forward-secret AEAD suites only",
    "ssl_cipher_suites": "mailcove's ciphers are fixed: forward-secret AEAD suites only",
    "ssl_dh": "mailcove uses ECDHE; no DH parameter file is needed",
    "ssl_prefer_server_ciphers": "mailcove's ciphers are fixed",
    "login_greeting": "mailcove's greetings are fixed",
    "auth_username_format": "mailcove logs users in by their address (or their Unix name in system mode)",
    "postmaster_address": "see [directory] postmaster",
    "dict": "Dovecot dictionaries have no mailcove equivalent",
}
SECTION_REASONS = {
    "passdb": "mailcove's directory (or `directory = \"system\"` for Unix users) checks passwords",
    "userdb": "mailcove's directory (or `directory = \"system\"` for Unix users) knows the users",
    "namespace": "mailcove's mailboxes and special-use folders are its own",
    "service": "only the imap-login and pop3-login inet_listener ports and addresses are imported",
    "protocol": "per-protocol overrides are not imported",
    "plugin": "Dovecot plugins have no mailcove equivalent",
    "dict": "Dovecot dictionaries have no mailcove equivalent",
    "local": "per-address overrides are not imported",
    "remote": "per-client overrides are not imported",
}


@dataclass
class Setting:
    key: str
    value: str
    file: str
    line: int
    raw: str

    @property
    def source(self) -> Source:
        return Source(self.file, self.line)


@dataclass
class Section:
    name: str
    arg: str
    file: str
    line: int
    raw: str
    settings: list[Setting] = field(default_factory=list)
    children: list[Section] = field(default_factory=list)
    end_line: int = 0
    # Top-level settings whose value a later `key = $key ...` line took over (so not superseded).
    absorbed: dict[int, Setting] = field(default_factory=dict)

    def child(self, name: str, arg: str) -> Section | None:
        for c in self.children:
            if c.name == name and c.arg == arg:
                return c
        return None

    def count(self) -> int:
        return len(self.settings) + sum(c.count() for c in self.children)


def _strip_comment(line: str) -> str:
    quote = ""
    for i, c in enumerate(line):
        if quote:
            if c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c == "#":
            return line[:i]
    return line


def _unquote(value: str) -> str:
    v = value.strip()
    if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
        return v[1:-1]
    return v


_SECTION = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+)(?:\s+(?P<arg>[^{]*?))?\s*\{$")
_SETTING = re.compile(r"^(?P<key>[A-Za-z0-9_.\-/]+)\s*=\s*(?P<value>.*)$")


class DovecotParser:
    def __init__(self, files: Files, plan: Plan, root_prefix: str | None = None) -> None:
        self.files = files
        # A copy of another machine's /etc: absolute include paths are looked up under it.
        self.root_prefix = root_prefix
        self.plan = plan
        self.root = Section("", "", "", 0, "")
        self.values: dict[str, str] = {}
        self.nfiles = 0
        self.open_files: list[str] = []  # the include chain being read, to catch loops
        self.last: dict[str, Setting] = {}

    def _expand(self, key: str, into: Setting) -> str:
        prev = self.last.get(key)
        if prev is not None:
            self.root.absorbed[id(prev)] = into
        return self.values.get(key, "")

    def parse_file(self, path: str, stack: list[Section], depth: int = 0, *, required: bool = True) -> None:
        if path in self.open_files:
            self.plan.skip(path, 0, "", f"includes itself (through {' -> '.join(self.open_files)}): not read again")
            return
        if depth > MAX_INCLUDE_DEPTH:
            self.plan.skip(path, 0, "", f"includes nested more than {MAX_INCLUDE_DEPTH} deep (a loop?): not read")
            return
        self.nfiles += 1
        if self.nfiles > MAX_FILES:
            self.plan.skip(path, 0, "", f"more than {MAX_FILES} files included: not read")
            return
        try:
            text = self.files.read(path)
        except FileProblem as exc:
            self.plan.skip(path, 0, "", str(exc))
            return
        if text is None:
            if required:
                self.plan.skip(path, 0, "", "file not found")
            return
        self.plan.files.append(path)
        self.open_files.append(path)
        try:
            self._parse_text(path, text, stack, depth)
        finally:
            self.open_files.pop()

    def _parse_text(self, path: str, text: str, stack: list[Section], depth: int) -> None:
        base = os.path.dirname(path)
        start_depth = len(stack)
        pending = ""
        pending_line = 0
        for lineno, raw in enumerate(text.splitlines(), 1):
            if pending:
                line = pending + raw.strip()
                first = pending_line
            else:
                line = raw.strip()
                first = lineno
            if line.endswith("\\") and not line.lstrip().startswith("#"):
                pending = line[:-1]
                pending_line = first
                if len(pending) > MAX_LOGICAL_LINE:
                    self.plan.skip(path, first, pending[:80], "line too long: not read")
                    pending = ""
                continue
            pending = ""
            line = _strip_comment(line).strip()
            if not line:
                continue
            self._line(path, first, raw if first == lineno else line, line, base, stack, depth)
        while len(stack) > start_depth:
            sec = stack.pop()
            self.plan.skip(path, sec.line, sec.raw, "section not closed with } in this file")

    def _line(self, path: str, lineno: int, raw: str, line: str, base: str, stack: list[Section], depth: int) -> None:
        if line.startswith("!include"):
            word, _, pattern = line.partition(" ")
            pattern = _unquote(pattern)
            if word not in ("!include", "!include_try") or not pattern:
                self.plan.skip(path, lineno, raw, "cannot read this include")
                return
            if os.path.isabs(pattern):
                full = os.path.join(self.root_prefix, pattern.lstrip("/")) if self.root_prefix else pattern
            else:
                full = os.path.join(base, pattern)
            try_only = word == "!include_try"
            if any(c in pattern for c in "*?["):
                for match in self.files.glob(full):
                    self.parse_file(os.path.normpath(match), stack, depth + 1)
            else:
                self.parse_file(os.path.normpath(full), stack, depth + 1, required=not try_only)
            return
        if line == "}":
            if len(stack) <= 1:
                self.plan.skip(path, lineno, raw, "a } with no section open")
                return
            stack.pop().end_line = lineno
            return
        m = _SECTION.match(line)
        if m:
            sec = Section(m["name"], _unquote(m["arg"] or ""), path, lineno, raw.strip())
            stack[-1].children.append(sec)
            stack.append(sec)
            return
        m = _SETTING.match(line)
        if m:
            key = m["key"]
            value = _unquote(m["value"])
            setting = Setting(key, value, path, lineno, raw.strip())
            quoted = value != m["value"].strip()  # Dovecot expands no $key inside quotes
            if len(stack) == 1 and not quoted:
                # An unset $key is empty, as doveconf shows it (Debian's protocols.d files start
                # from `protocols = $protocols imap` with nothing set before).
                setting.value = re.sub(r"\$([A-Za-z0-9_]+)", lambda v: self._expand(v[1], setting), value).strip()
            if len(stack) == 1:
                self.values[key] = setting.value
                self.last[key] = setting
            stack[-1].settings.append(setting)
            return
        self.plan.skip(path, lineno, raw, "not a setting, a section or an include")


def parse_dovecot(config_path: str, files: Files, plan: Plan, root_prefix: str | None = None) -> Section:
    parser = DovecotParser(files, plan, root_prefix)
    parser.parse_file(os.path.normpath(config_path), [parser.root])
    return parser.root


# --- mapping -----------------------------------------------------------------------------------


def _last(root: Section, key: str) -> Setting | None:
    found = None
    for s in root.settings:
        if s.key == key:
            found = s
    return found


def _bool(value: str) -> bool | None:
    v = value.strip().lower()
    if v in ("yes", "true", "1"):
        return True
    if v in ("no", "false", "0"):
        return False
    return None


def _fmt_listen(addr: str, port: int) -> str:
    if addr == "*":
        return f"*:{port}"
    if ":" in addr:
        return f"[{addr.strip('[]')}]:{port}"
    return f"{addr}:{port}"


def _listener_value(addresses: list[str], port: int, standard: int) -> object:
    """DEFAULT when it is mailcove's own default (every address, the standard port), else a list."""
    wild = {"*", "::", "[::]"}
    if not addresses:
        return []
    if all(a in wild for a in addresses):
        return DEFAULT if port == standard else [f"*:{port}"]
    out = [_fmt_listen(a, port) for a in addresses if a not in wild]
    if any(a in wild for a in addresses):
        out.insert(0, f"*:{port}")
    return out


def _mail_location(root: Section) -> tuple[str, Setting] | None:
    loc = _last(root, "mail_location")
    if loc is not None and loc.value:
        return loc.value, loc
    # Dovecot 2.4 split mail_location into mail_driver, mail_path and mail_inbox_path.
    driver, path, inbox = _last(root, "mail_driver"), _last(root, "mail_path"), _last(root, "mail_inbox_path")
    if driver is not None and driver.value:
        text = f"{driver.value}:{path.value if path else ''}"
        if inbox is not None and inbox.value:
            text += f":INBOX={inbox.value}"
        return text, driver
    return None


MAPPED_KEYS = frozenset({
    "protocols", "listen", "ssl", "ssl_cert", "ssl_key", "ssl_server_cert_file", "ssl_server_key_file",
    "ssl_min_protocol", "disable_plaintext_auth", "auth_allow_cleartext", "mail_location", "mail_driver",
    "mail_path", "mail_inbox_path", "pop3_uidl_format", "pop3_reuse_xuidl", "pop3_save_uidl", "mbox_md5",
    "pop3_deleted_flag", "pop3_uidl_duplicates",
})


def plan_dovecot(
    config_dir: str, files: Files, *, config_file: str | None = None, root_prefix: str | None = None
) -> Plan:
    plan = Plan("dovecot")
    path = config_file or os.path.join(config_dir, "dovecot.conf")
    root = parse_dovecot(path, files, plan, root_prefix)
    if not plan.files:
        return plan
    used: set[int] = set()

    def use(s: Setting | None) -> Setting | None:
        if s is not None:
            used.add(id(s))
        return s

    # ssl decides what the certificate settings and the TLS listeners mean, so it comes first.
    ssl = use(_last(root, "ssl"))
    tls_on = True
    if ssl is not None:
        v = ssl.value.strip().lower()
        if v == "no":
            tls_on = False
            plan.config.append(ConfigSet(("tls", "enabled"), False, ssl.source, "ssl = no"))
        elif v in ("yes", "required"):
            plan.config.append(ConfigSet(("tls", "enabled"), True, ssl.source))
            if v == "required":
                plan.config.append(ConfigSet(("auth", "allow_plaintext"), False, ssl.source,
                                             "ssl = required: no password login without TLS"))
        else:
            plan.skip(ssl.file, ssl.line, ssl.raw, "expected yes, no or required")
    for old, new, key in (("ssl_cert", "ssl_server_cert_file", "cert"), ("ssl_key", "ssl_server_key_file", "key")):
        s = use(_last(root, old)) or use(_last(root, new))
        if s is None:
            continue
        if not tls_on:
            plan.skip(s.file, s.line, s.raw, "ssl = no: TLS is off, so no certificate is imported")
            continue
        value = s.value
        if s.key == old:
            if not value.startswith("<"):
                plan.skip(s.file, s.line, s.raw, "an inline PEM value: save it to a file and set [tls] "
                          f"{key} to that file")
                continue
            value = value[1:].strip()
        if not value:
            continue
        plan.config.append(ConfigSet(("tls", key), value, s.source))
    smp = use(_last(root, "ssl_min_protocol"))
    if smp is not None:
        v = smp.value.strip()
        if v in ("TLSv1.2", "TLSv1.3"):
            plan.config.append(ConfigSet(("tls", "min_version"), v, smp.source))
        else:
            plan.config.append(ConfigSet(("tls", "min_version"), "TLSv1.2", smp.source,
                                         f"{v}: mailcove never offers anything older than TLS 1.2"))

    dpa = use(_last(root, "disable_plaintext_auth"))
    aac = use(_last(root, "auth_allow_cleartext"))
    for s, invert in ((dpa, True), (aac, False)):
        if s is None:
            continue
        b = _bool(s.value)
        if b is None:
            plan.skip(s.file, s.line, s.raw, "expected yes or no")
        elif ssl is not None and ssl.value.strip().lower() == "required":
            plan.skip(s.file, s.line, s.raw, "ssl = required: mailcove refuses password login without TLS")
        else:
            plan.config.append(ConfigSet(("auth", "allow_plaintext"), (not b) if invert else b, s.source))

    _plan_listeners(plan, root, use, tls_on)

    loc = _mail_location(root)
    for k in ("mail_location", "mail_driver", "mail_path", "mail_inbox_path"):
        use(_last(root, k))
    pop3_options = _plan_pop3_uidls(plan, root, use)
    if loc is not None:
        text, s = loc
        plan.facts["mail_location"] = text
        plan.facts["mail_location_source"] = str(s.source)
        options = "".join(f" {o}" for o in pop3_options)
        plan.next_steps.append(
            f"mailcove import mail USER --location {_shell_quote(text)}{options}"
            "   (once per user; mail_location has no config key)"
        )

    def taken(s: Setting) -> bool:
        """Used, or taken over by a later `key = $key ...` line that is itself taken."""
        while id(s) not in used:
            nxt = root.absorbed.get(id(s))
            if nxt is None:
                return False
            s = nxt
        return True

    for s in root.settings:
        if taken(s):
            continue
        if s.key in MAPPED_KEYS:
            plan.skip(s.file, s.line, s.raw, "set again later: the later value is the one imported")
            continue
        plan.skip(s.file, s.line, s.raw, REASONS.get(s.key, "no mailcove equivalent"))
    for sec in root.children:
        _report_section(plan, sec, used)
    return plan


def _shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _plan_pop3_uidls(
    plan: Plan, root: Section, use: Callable[[Setting | None], Setting | None]
) -> list[str]:
    """The old server's POP3 UIDL settings, as facts and as `mailcove import mail` options (only
    those that differ from Dovecot's defaults, which are the importer's)."""
    section = root.child("protocol", "pop3")

    def last(key: str) -> Setting | None:
        inner = use(_last(section, key)) if section is not None else None
        return inner or use(_last(root, key))

    options: list[str] = []
    fmt = last("pop3_uidl_format")
    value = fmt.value if fmt is not None else dovecot_uidl.DEFAULT_FORMAT
    try:
        dovecot_uidl.check_format(value)
    except dovecot_uidl.FormatError as exc:
        assert fmt is not None  # the default is valid
        plan.skip(fmt.file, fmt.line, fmt.raw, f"{exc}: the old server served no UIDLs; none can be kept")
        value = dovecot_uidl.DEFAULT_FORMAT
    plan.facts["pop3_uidl_format"] = value
    if value != dovecot_uidl.DEFAULT_FORMAT:
        options += ["--pop3-uidl-format", _shell_quote(value)]
    for key, option in (("pop3_reuse_xuidl", "--pop3-reuse-xuidl"), ("pop3_save_uidl", "")):
        s = last(key)
        b = _bool(s.value) if s is not None else False
        if b is None:
            assert s is not None
            plan.skip(s.file, s.line, s.raw, "expected yes or no")
            continue
        plan.facts[key] = "yes" if b else "no"
        if b and option:
            options.append(option)
    md5 = last("mbox_md5")
    if md5 is not None:
        if md5.value in dovecot_uidl.MD5_ALGORITHMS:
            plan.facts["mbox_md5"] = md5.value
            if md5.value != "apop3d":
                options += ["--mbox-md5", md5.value]
        else:
            plan.skip(md5.file, md5.line, md5.raw, "expected apop3d or all")
    flag = last("pop3_deleted_flag")
    if flag is not None and flag.value:
        plan.facts["pop3_deleted_flag"] = flag.value
        options += ["--pop3-deleted-flag", _shell_quote(flag.value)]
        plan.config.append(ConfigSet(("pop3", "deleted_flag"), flag.value, flag.source))
    dup = last("pop3_uidl_duplicates")
    if dup is not None and dup.value == "rename":
        plan.skip(dup.file, dup.line, dup.raw, "mailcove gives a later message with a duplicate UIDL its own "
                  "UIDL instead of a -2 suffix")
    return options


def _plan_listeners(
    plan: Plan, root: Section, mark: Callable[[Setting | None], Setting | None], tls_on: bool
) -> None:
    protos_s = mark(_last(root, "protocols"))
    protos_text = protos_s.value if protos_s is not None else DEFAULT_PROTOCOLS
    protocols = set(protos_text.replace(",", " ").split())
    listen_s = mark(_last(root, "listen"))
    listen_text = listen_s.value if listen_s is not None else DEFAULT_LISTEN
    addresses = [a for a in re.split(r"[\s,]+", listen_text.strip()) if a]
    if protos_s is not None:
        for extra in sorted(protocols - {"imap", "pop3", "none"}):
            why = {
                "lmtp": "mailcove stores mail itself; nothing delivers to it over LMTP",
                "submission": "mailcove has its own submission listener (port 587), on by default",
                "sieve": "no Sieve in mailcove",
            }.get(extra, "no such protocol in mailcove")
            plan.skip(protos_s.file, protos_s.line, f"protocols: {extra}", why)
    for proto, name, standard in LISTENERS:
        src = (protos_s or listen_s).source if (protos_s or listen_s) else Source(root.file or "dovecot.conf")
        if proto not in protocols:
            plan.config.append(ConfigSet(("listen", name), [], src, f"{proto} not in protocols"))
            continue
        if name in TLS_LISTENERS and not tls_on:
            # mailcove switches implicit-TLS listeners off by itself with [tls] enabled = false
            service = root.child("service", f"{proto}-login")
            listener = service.child("inet_listener", name) if service else None
            for s in listener.settings if listener else []:
                mark(s)
                plan.skip(s.file, s.line, s.raw, "ssl = no: mailcove has no implicit-TLS listeners without TLS")
            continue
        port, addrs, where = standard, addresses, src
        service = root.child("service", f"{proto}-login")
        listener = service.child("inet_listener", name) if service else None
        if listener is not None:
            p = mark(_last(listener, "port"))
            a = mark(_last(listener, "address"))
            mark(_last(listener, "ssl"))
            if p is not None:
                if not p.value.isdigit() or int(p.value) > 65535:
                    plan.skip(p.file, p.line, p.raw, "not a port number")
                else:
                    port, where = int(p.value), p.source
            if a is not None:
                addrs, where = [x for x in re.split(r"[\s,]+", a.value.strip()) if x], a.source
        if port == 0:
            plan.config.append(ConfigSet(("listen", name), [], where, "port = 0"))
            continue
        if listen_s is None and where is src and port == standard:
            continue  # nothing in the configuration about it: mailcove's default is Dovecot's
        plan.config.append(ConfigSet(("listen", name), _listener_value(addrs, port, standard), where))


def _report_section(plan: Plan, sec: Section, used: set[int]) -> None:
    """A section whose settings were not (all) imported: one line for the section, naming how many
    settings it holds, so nothing set in it goes unmentioned."""
    if sec.name == "protocol" and sec.arg == "pop3" and any(id(s) in used for s in sec.settings):
        for s in sec.settings:
            if id(s) not in used:
                plan.skip(s.file, s.line, s.raw, SECTION_REASONS["protocol"])
        for child in sec.children:
            _report_section(plan, child, used)
        return
    if sec.name == "service" and sec.arg in ("imap-login", "pop3-login"):
        for s in sec.settings:
            plan.skip(s.file, s.line, s.raw, "login service tuning has no mailcove equivalent")
        for child in sec.children:
            if child.name == "inet_listener":
                for s in child.settings:
                    if id(s) not in used:
                        plan.skip(s.file, s.line, s.raw, "no mailcove equivalent for this listener setting")
            else:
                _report_section(plan, child, used)
        return
    n = sec.count()
    if n == 0:
        return
    reason = SECTION_REASONS.get(sec.name, "no mailcove equivalent")
    span = f" (lines {sec.line}-{sec.end_line}, {n} setting(s))" if sec.end_line else f" ({n} setting(s))"
    plan.skip(sec.file, sec.line, sec.raw, reason + span)
