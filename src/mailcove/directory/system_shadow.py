"""Password checks against /etc/shadow: the entry, the account's expiry, and crypt(3).

Why a ctypes binding to libcrypt.so.1: Python's `crypt` module is deprecated and removed in 3.13
(PEP 594), and its replacements on PyPI are either copies of that C extension (crypt-r: a compiled
wheel per Python version) or pure-Python reimplementations that lack yescrypt ($y$), Debian's
default since bookworm. libxcrypt's crypt_rn() is the function pam_unix itself calls: every hash
/etc/shadow can hold verifies exactly as at the console, it is thread-safe (the caller owns the
state buffer), and ctypes releases the GIL while it runs, so the verify pool's threads work in
parallel. `spwd` went away with `crypt`, so /etc/shadow is read here too (a few colon-separated
fields; re-read only when its mtime changes).

The expiry rules are pam_unix's (modules/pam_unix/passverify.c check_shadow_expiry), so the
`shadow` and `pam` modes refuse the same accounts: expired (sp_expire), inactive (password expired
longer than sp_inact days), or needing a new password (sp_lstchg = 0, or older than sp_max).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hmac
import os
import threading
import time
from dataclasses import dataclass

SHADOW = "/etc/shadow"
_CRYPT_DATA_SIZE = 32768  # >= sizeof(struct crypt_data) in libxcrypt (32,384 bytes)


class CryptUnavailable(Exception):
    pass


_lib: ctypes.CDLL | None = None
_lib_lock = threading.Lock()


def _libcrypt() -> ctypes.CDLL:
    global _lib
    with _lib_lock:
        if _lib is None:
            name = ctypes.util.find_library("crypt") or "libcrypt.so.1"
            try:
                lib = ctypes.CDLL(name, use_errno=True)
                fn = lib.crypt_rn
            except (OSError, AttributeError) as exc:
                raise CryptUnavailable(f"libcrypt (libxcrypt) with crypt_rn() is needed: {exc}") from None
            fn.restype = ctypes.c_char_p
            fn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]
            gensalt = lib.crypt_gensalt_rn
            gensalt.restype = ctypes.c_char_p
            gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int,
                                ctypes.c_char_p, ctypes.c_int]
            _lib = lib
        return _lib


def crypt(password: bytes, setting: bytes) -> bytes | None:
    """crypt_rn(password, setting): the hash, or None for an unknown/invalid setting."""
    if b"\0" in password or b"\0" in setting:
        return None
    buf = ctypes.create_string_buffer(_CRYPT_DATA_SIZE)
    out = _libcrypt().crypt_rn(password, setting, buf, _CRYPT_DATA_SIZE)
    if not out or out.startswith(b"*"):
        return None
    return bytes(out)


def password_bytes(password: str) -> bytes:
    """The bytes a client sent: protocol code keeps undecodable bytes as surrogate escapes, and
    the Unix password was set as bytes, so those must go back unchanged."""
    try:
        return password.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that is not an escape: never a real password
        return password.encode("utf-8", "surrogatepass")


def verify_hash(password: bytes, stored: str) -> bool:
    """True if `password` matches the crypt(3) hash `stored`. Locked (`!`, `*`) and empty hashes
    never match: mail logins never accept an empty password."""
    if not stored or stored[0] in "!*" or not password:
        return False
    setting = stored.encode("ascii", "replace")
    out = crypt(password, setting)
    return out is not None and hmac.compare_digest(out, setting)


def make_dummy_hash() -> str:
    """A hash in the system's default method (yescrypt on Debian), to spend the time a real check
    would for names that are not mail users."""
    lib = _libcrypt()
    out = ctypes.create_string_buffer(256)
    setting = lib.crypt_gensalt_rn(None, 0, None, 0, out, 256)
    if not setting:
        setting = b"$6$" + os.urandom(8).hex().encode()
    return (crypt(os.urandom(16).hex().encode(), bytes(setting)) or b"").decode("ascii")


@dataclass(frozen=True, slots=True)
class ShadowEntry:
    name: str
    hash: str
    lastchg: int | None  # days since 1970-01-01; 0: must change at next login
    max_days: int | None
    inactive: int | None
    expire: int | None

    def fingerprint(self) -> str:
        """Everything that decides a login, for the verify cache key: any change invalidates."""
        return f"{self.hash}:{self.lastchg}:{self.max_days}:{self.inactive}:{self.expire}"

    def refusal(self, today: int | None = None) -> str | None:
        """Why the account may not log in now (pam_unix's rules), or None."""
        if today is None:
            today = int(time.time() // 86400)
        if not self.hash or self.hash[0] in "!*":
            return "the account is locked or has no password"
        if self.expire is not None and today >= self.expire:
            return "the account has expired"
        if self.lastchg == 0:
            return "the password must be changed first (passwd)"
        if self.lastchg is not None and self.max_days is not None:
            age = today - self.lastchg
            if self.inactive is not None and age > self.max_days + self.inactive:
                return "the account is inactive (its password expired long ago)"
            if age > self.max_days:
                return "the password has expired (passwd)"
        return None


def _num(text: str) -> int | None:
    try:
        return int(text) if text.strip() else None
    except ValueError:
        return None


def parse_shadow_line(line: str) -> ShadowEntry | None:
    parts = line.rstrip("\n").split(":")
    if len(parts) < 8 or not parts[0]:
        return None
    return ShadowEntry(parts[0], parts[1], _num(parts[2]), _num(parts[4]), _num(parts[6]), _num(parts[7]))


class ShadowFile:
    """/etc/shadow, parsed, re-read when it changes. Thread-safe."""

    def __init__(self, path: str = SHADOW) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._key: tuple[int, int, int] | None = None
        self._entries: dict[str, ShadowEntry] = {}

    def readable(self) -> bool:
        return os.access(self.path, os.R_OK)

    def get(self, name: str) -> ShadowEntry | None:
        """The entry of `name`, None if it has none. Raises PermissionError without read access."""
        st = os.stat(self.path)
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        with self._lock:
            if key != self._key:
                with open(self.path, encoding="utf-8", errors="replace") as f:
                    entries = {}
                    for line in f:
                        e = parse_shadow_line(line)
                        if e is not None:
                            entries.setdefault(e.name, e)
                self._entries, self._key = entries, key
            return self._entries.get(name)
