"""Running as an unprivileged user: the drop after binding, and data dir ownership.

`mailcove serve` started as root binds every listener (ports below 1024), reads the TLS key and
creates the control socket as root, then becomes `[server] user` for good (setgroups, setgid,
setuid: no way back, so a bug in a protocol parser cannot act as root). Supplementary groups
come from the user's entry in the group database (`initgroups`), so membership of `shadow` for
`directory = "system"` keeps working after the drop.

Under systemd with `User=mailcove` the process never is root and nothing here runs: the unit
grants CAP_NET_BIND_SERVICE instead (contrib/systemd/mailcove.service).

Everything the unprivileged server writes later must belong to it: the data dir (created or
chowned when root made it now), the self-signed TLS pair, the control socket, a log file created
by this start. A data dir that belongs to someone else and that the user cannot write stops the
start with one line saying which `chown` fixes it.

Admin commands run by root against a data dir owned by the service user become that owner
before they open a database (`adopt_data_dir_owner`), so they never leave root-owned SQLite
`-wal`/`-shm` files, blob directories or keys behind that the server could not open."""

from __future__ import annotations

import atexit
import contextlib
import grp
import logging
import os
import pwd
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from mailcove.config import ConfigError, Settings

log = logging.getLogger("mailcove.privileges")

# The account the packaging creates (contrib/sysusers.d/mailcove.conf). `[server] user` unset
# means: this one when it exists, else stay root with a warning (a fresh clone's `make serve`).
DEFAULT_USER = "mailcove"
# `[server] user = "root"` keeps root on purpose (containers that map users, some tests).
NO_DROP = "root"
# Names only a mailcove data dir holds: a root-owned dir without any of them is not handed over.
MAILCOVE_FILES = frozenset({"mail.db", "directory.db", "blobs", "tls", "dkim", "control.sock", "serve.json"})


@dataclass(frozen=True, slots=True)
class Target:
    user: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str


def resolve_target(settings: Settings, user_override: str | None = None) -> tuple[Target | None, str]:
    """The user to become, or None to stay as we are, plus a note for the banner.

    Raises ConfigError for a named user or group that does not exist."""
    name = user_override if user_override is not None else settings.server.user
    if os.geteuid() != 0:
        try:
            me = pwd.getpwuid(os.geteuid()).pw_name
        except KeyError:
            me = str(os.geteuid())
        return None, me
    key = "server.user" if user_override is None else "--user"
    if name == NO_DROP:
        return None, "root (user \"root\": privileges are not dropped)"
    explicit = bool(name)
    name = name or DEFAULT_USER
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        if explicit:
            raise ConfigError(settings.source, key, f"no such user {name!r} (create it, e.g. "
                              "systemd-sysusers contrib/sysusers.d/mailcove.conf)") from None
        return None, (f"root (WARNING: no {DEFAULT_USER!r} user to drop to; create it with "
                      f"`useradd --system --home-dir /var/lib/mailcove --shell /usr/sbin/nologin {DEFAULT_USER}` "
                      f"or set [server] user)")
    if pw.pw_uid == 0:
        return None, f"{name} (uid 0: privileges are not dropped)"
    gid = pw.pw_gid
    if settings.server.group:
        try:
            gid = grp.getgrnam(settings.server.group).gr_gid
        except KeyError:
            raise ConfigError(settings.source, "server.group", f"no such group {settings.server.group!r}") from None
    groups = tuple(dict.fromkeys([gid, *os.getgrouplist(name, gid)]))
    target = Target(name, pw.pw_uid, gid, groups, pw.pw_dir)
    return target, f"{name} (dropped from root after binding)"


def serve_target(settings: Settings, user_override: str | None = None) -> tuple[Target | None, str]:
    """`resolve_target` for `mailcove serve`, which also keeps root when nobody named the user and
    that user could not read this Python.

    That is `make serve` in a checkout whose Python lives under /root (pyenv, mode 0700) once the
    packaging's account exists: a development start that did not ask to drop keeps working, with
    a warning in the banner. A user named by `[server] user` or `--user` is refused in
    preflight() instead, and admin commands still hand their files to the default user."""
    target, note = resolve_target(settings, user_override)
    named = user_override if user_override is not None else settings.server.user
    unreadable = None if target is None or named else python_unreadable(target)
    if target is None or unreadable is None:
        return target, note
    code, blocked = unreadable
    return None, (f"root (WARNING: {target.user} cannot read the Python code in {code}, {blocked} has mode "
                  f"{stat.S_IMODE(blocked.stat().st_mode):o}: not dropping privileges; install mailcove "
                  f"outside {blocked} (docs/deploy.md) to serve as {target.user})")


# --- what the user may do with a path -----------------------------------------------------------


def _allows(st: os.stat_result, target: Target, bits: int) -> bool:
    """Classic Unix permission check for `target` (bits: 4 read, 2 write, 1 search/execute).
    ACLs are not looked at: mailcove's own directories never carry any."""
    if st.st_uid == target.uid:
        return (st.st_mode >> 6) & bits == bits
    if st.st_gid in target.groups:
        return (st.st_mode >> 3) & bits == bits
    return st.st_mode & bits == bits


def unreachable_ancestor(path: Path, target: Target) -> Path | None:
    """The first directory above `path` that `target` cannot enter (needs search permission)."""
    for parent in reversed(path.resolve().parents):
        try:
            st = parent.stat()
        except FileNotFoundError:
            return None  # made by root's mkdir -p with mode 0755 from here down
        except OSError:
            return parent
        if not _allows(st, target, 1):
            return parent
    return None


def python_unreadable(target: Target) -> tuple[Path, Path] | None:
    """(code dir, blocking dir) when `target` could not import the standard library, mailcove,
    or the venv's packages. Python imports lazily, so after a drop such code would fail at the
    first message instead of at the start."""
    import mailcove

    for code in (Path(os.__file__).parent, Path(mailcove.__file__).parent, Path(sys.prefix)):
        blocked = unreachable_ancestor(code / "x", target)
        if blocked is not None:
            return code, blocked
    return None


def _owner_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _chown(path: Path, target: Target) -> None:
    os.chown(path, target.uid, target.gid, follow_symlinks=False)


def chown_tree(root: Path, target: Target, *, only_uid: int | None = 0) -> int:
    """Give `root` and everything below it to `target`; with `only_uid`, only entries owned by
    that uid (root), so files the admin gave to someone else on purpose stay theirs. Returns
    how many entries changed."""
    changed = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [".", *dirnames, *filenames]:
            p = Path(dirpath) / name if name != "." else Path(dirpath)
            try:
                st = p.lstat()
            except FileNotFoundError:
                continue
            if (st.st_uid, st.st_gid) == (target.uid, target.gid):
                continue
            if only_uid is not None and st.st_uid != only_uid:
                continue
            _chown(p, target)
            changed += 1
    return changed


# --- mailcove serve ---------------------------------------------------------------------------


def preflight(settings: Settings, target: Target) -> None:
    """Checks that need nothing bound or created yet, run before `App.prepare()` so a refused
    start leaves no trace (prepare() writes the TLS pair and the control socket)."""
    d = settings.data_dir
    src = settings.source
    if d.exists():
        st = d.stat()
        if st.st_uid == 0:
            entries = {p.name for p in d.iterdir()}
            if entries and not entries & MAILCOVE_FILES:
                # A misconfigured data_dir = "/var/lib" must not give the whole tree away.
                raise ConfigError(src, "data_dir", f"{d} belongs to root and does not look like a mailcove data dir: "
                                  f"give it to {target.user} yourself (chown -R {target.user}: {d}) or fix data_dir")
        elif st.st_uid != target.uid and not _allows(st, target, 3):
            raise ConfigError(src, "data_dir", f"{d} belongs to {_owner_name(st.st_uid)} and {target.user} cannot "
                              f"write it: run `chown -R {target.user}: {d}` or set [server] user")
    _check_reachable(d, target, src)
    # Python imports modules lazily: code it cannot read after the drop would fail at the first
    # message instead of now (a venv or pyenv under /root, mode 0700, is the usual case).
    unreadable = python_unreadable(target)
    if unreadable is not None:
        code, blocked = unreadable
        raise ConfigError(src, "server.user", f"{target.user} cannot read the Python code in {code} ({blocked} "
                          f"has mode {stat.S_IMODE(blocked.stat().st_mode):o}): install mailcove where "
                          f"{target.user} can read it (docs/deploy.md), or stay root: [server] user = \"root\" "
                          "or `mailcove serve --user root`")


def _check_reachable(d: Path, target: Target, src: str) -> None:
    blocked = unreachable_ancestor(d, target)
    if blocked is not None:
        raise ConfigError(src, "data_dir", f"{target.user} cannot reach {d}: {blocked} has mode "
                          f"{stat.S_IMODE(blocked.stat().st_mode):o} and owner {_owner_name(blocked.stat().st_uid)}")


def prepare_for_drop(settings: Settings, target: Target, *, data_dir_created: bool,
                     log_file_created: bool) -> None:
    """Give the unprivileged server what it will need; raise ConfigError (one line) when the
    submit socket's directory or a data dir made just now cannot be used. Called as root, after
    binding and after `preflight()`, before `drop()`."""
    d = settings.data_dir
    src = settings.source
    st = d.stat()
    if data_dir_created or st.st_uid == 0 or any(p.lstat().st_uid == 0 for p in d.iterdir()):
        # Made by root now, or by an earlier root start (before privileges were dropped), or
        # holding root-owned files from commands run as root (SQLite would fail on them at the
        # first write): hand over what root owns in it. Entries of other users stay theirs.
        n = chown_tree(d, target)
        if n and not data_dir_created:
            log.info("gave %d root-owned entries in %s to %s", n, d, target.user)
    _check_reachable(d, target, src)  # again: the dir may have been created just now
    control = settings.control_socket_path
    with contextlib.suppress(FileNotFoundError):
        # The socket is bound (root made it); the server accepts on it, `mailcove deliver` run
        # as the service user connects to it, and the server removes it at exit.
        _chown(control, target)
    if settings.log.file is not None and log_file_created:
        with contextlib.suppress(FileNotFoundError):
            _chown(settings.log.file, target)
    elif settings.log.file is not None and settings.log.file.exists():
        lst = settings.log.file.stat()
        if lst.st_uid != target.uid and not _allows(lst, target, 2):
            # Writes keep working through the file root opened; a start under systemd as the
            # user (or a log rotation that reopens) would not.
            log.warning("log file %s belongs to %s: %s can only write it through the file opened as root; "
                        "`chown %s %s` for starts as %s", settings.log.file, _owner_name(lst.st_uid), target.user,
                        target.user, settings.log.file, target.user)
    submit = settings.smtp.submit_socket
    if submit is not None:
        parent = Path(submit).parent
        if not parent.exists():
            parent.mkdir(mode=0o755, parents=True)
            _chown(parent, target)
        pst = parent.stat()
        if not _allows(pst, target, 3):
            raise ConfigError(src, "smtp.submit_socket", f"{target.user} cannot create sockets in {parent}: use a "
                              f"directory it owns, e.g. /run/mailcove/submit.sock (systemd RuntimeDirectory=)")


def drop(target: Target) -> None:
    """Become `target` for good. Verifies that root cannot be regained."""
    os.setgroups(list(target.groups))
    os.setgid(target.gid)
    os.setuid(target.uid)
    try:
        os.setuid(0)
    except PermissionError:
        pass
    else:  # pragma: no cover - only a broken kernel or libc gets here
        raise RuntimeError("setuid(0) succeeded after dropping privileges")
    # Child processes (none today; a future helper) and libraries reading $HOME see the user's.
    os.environ["HOME"] = target.home
    os.environ["USER"] = os.environ["LOGNAME"] = target.user


# --- admin commands ---------------------------------------------------------------------------

# Commands that must stay root: serve drops by itself after binding; import reads other users'
# mail spools and files; backup and restore read and write outside the data dir and fix the
# ownership of what they create themselves; sendmail and mailq talk to the server's sockets, which
# learn the caller from the kernel (root's cron mail must stay root's).
KEEP_ROOT_COMMANDS = frozenset({"serve", "import", "backup", "restore", "sendmail", "mailq"})


def adopt_data_dir_owner(settings: Settings, command: str | None) -> Target | None:
    """Root running an admin command on a data dir owned by another user (the service user)
    becomes that user for the rest of the process, so every file the command creates (SQLite
    `-wal`/`-shm`, blob directories, keys) belongs to the server that must open it."""
    if os.geteuid() != 0 or command in ("serve", "sendmail", "mailq"):
        return None  # serve drops itself; sendmail/mailq only talk to the server's sockets
    try:
        st = settings.data_dir.stat()
    except OSError:
        return None
    if st.st_uid == 0:
        return None
    try:
        pw = pwd.getpwuid(st.st_uid)
        groups = tuple(dict.fromkeys([pw.pw_gid, *os.getgrouplist(pw.pw_name, pw.pw_gid)]))
        target = Target(pw.pw_name, pw.pw_uid, pw.pw_gid, groups, pw.pw_dir)
    except KeyError:
        # An owner without an account (a uid from a container image): keep the dir's group.
        target = Target(str(st.st_uid), st.st_uid, st.st_gid, (st.st_gid,), "/")
    if command in KEEP_ROOT_COMMANDS or python_unreadable(target) is not None:
        # Needs root (or the owner could not even import the rest of mailcove): stay root and
        # hand over what this command created in the data dir when it exits. A server running
        # meanwhile may meet root-owned files until then; `import` is the command that writes.
        atexit.register(chown_tree, settings.data_dir, target)
        return None
    drop(target)
    return target
