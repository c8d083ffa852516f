"""A small ctypes binding to Linux-PAM: pam_start, pam_authenticate, pam_acct_mgmt, pam_end.

Why not python-pam (the usual choice): measured on this machine (docs/system-users.md), a wrong
password through python-pam 2.1 takes 2.11 s (here: 0.23 s, as long as a right password),
because pam_unix asks libpam for a 2-second failure delay and libpam sleeps in the calling thread.
In a mail server that thread is one of the directory's few verify-pool threads, so a handful of
wrong passwords stall every login. Linux-PAM
lets the application take the delay over (the PAM_FAIL_DELAY item): here it is a no-op, and the
directory's shared login throttle (directory/throttle.py) does the delaying on the event loop,
without holding a thread. python-pam also sets no PAM_RHOST (modules such as pam_faillock and
pam_access want the client address), sets PAM_TTY from the process's stdin, calls pam_setcred
(for a session a mail login never opens), and keeps per-call state on a shared object. The binding
is ~100 lines; each call has its own handle and conversation, so calls run in parallel threads.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from dataclasses import dataclass, field
from typing import Any

from mailcove.directory.system_shadow import password_bytes

PAM_SUCCESS = 0
PAM_PROMPT_ECHO_OFF = 1
PAM_PROMPT_ECHO_ON = 2
PAM_ERROR_MSG = 3
PAM_TEXT_INFO = 4
PAM_SERVICE = 1
PAM_USER = 2
PAM_TTY = 3
PAM_RHOST = 4
PAM_FAIL_DELAY = 10
PAM_DISALLOW_NULL_AUTHTOK = 0x0001
PAM_SILENT = 0x8000
PAM_CONV_ERR = 19
PAM_BUF_ERR = 5


class PamUnavailable(Exception):
    pass


class _Message(ctypes.Structure):
    _fields_ = [("msg_style", ctypes.c_int), ("msg", ctypes.c_char_p)]


class _Response(ctypes.Structure):
    _fields_ = [("resp", ctypes.c_void_p), ("resp_retcode", ctypes.c_int)]


_CONV = ctypes.CFUNCTYPE(
    ctypes.c_int,
    ctypes.c_int,
    ctypes.POINTER(ctypes.POINTER(_Message)),
    ctypes.POINTER(ctypes.POINTER(_Response)),
    ctypes.c_void_p,
)
_DELAY = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_uint, ctypes.c_void_p)


class _Conv(ctypes.Structure):
    _fields_ = [("conv", _CONV), ("appdata_ptr", ctypes.c_void_p)]


@_DELAY
def _no_delay(_retval: int, _usec: int, _appdata: int | None) -> None:
    # The login throttle delays failures; a sleeping pool thread would block other logins.
    return None


@dataclass
class PamResult:
    ok: bool
    code: int
    reason: str  # pam_strerror of the failing step, "" on success
    step: str = ""  # "start", "authenticate" or "acct_mgmt"
    messages: list[str] = field(default_factory=list)


class _Lib:
    def __init__(self) -> None:
        name = ctypes.util.find_library("pam") or "libpam.so.0"
        try:
            pam = ctypes.CDLL(name, use_errno=True)
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        except OSError as exc:
            raise PamUnavailable(f"libpam is needed for [directory] system_auth = \"pam\": {exc}") from None
        h = ctypes.c_void_p
        self.start = pam.pam_start
        self.start.restype = ctypes.c_int
        self.start.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(_Conv), ctypes.POINTER(h)]
        self.set_item = pam.pam_set_item
        self.set_item.restype = ctypes.c_int
        self.set_item.argtypes = [h, ctypes.c_int, ctypes.c_void_p]
        self.authenticate = pam.pam_authenticate
        self.authenticate.restype = ctypes.c_int
        self.authenticate.argtypes = [h, ctypes.c_int]
        self.acct_mgmt = pam.pam_acct_mgmt
        self.acct_mgmt.restype = ctypes.c_int
        self.acct_mgmt.argtypes = [h, ctypes.c_int]
        self.end = pam.pam_end
        self.end.restype = ctypes.c_int
        self.end.argtypes = [h, ctypes.c_int]
        self.strerror = pam.pam_strerror
        self.strerror.restype = ctypes.c_char_p
        self.strerror.argtypes = [h, ctypes.c_int]
        # PAM frees the responses with free(): they must come from the C heap.
        self.calloc = libc.calloc
        self.calloc.restype = ctypes.c_void_p
        self.calloc.argtypes = [ctypes.c_size_t, ctypes.c_size_t]
        self.strdup = libc.strdup
        self.strdup.restype = ctypes.c_void_p
        self.strdup.argtypes = [ctypes.c_char_p]


_lib: _Lib | None = None
_lib_lock = threading.Lock()


def _get() -> _Lib:
    global _lib
    with _lib_lock:
        if _lib is None:
            _lib = _Lib()
        return _lib


def pam_check(service: str, user: str, password: str, rhost: str | None = None) -> PamResult:
    """Authenticate `user` with `password` through the PAM `service`, then check the account
    (expired, locked, access rules). Blocking: run it in a worker thread."""
    lib = _get()
    pw = password_bytes(password)
    name = password_bytes(user)
    svc = service.encode("utf-8")
    if b"\0" in pw or b"\0" in name or b"\0" in svc:
        return PamResult(False, PAM_CONV_ERR, "NUL in input", "start")
    messages: list[str] = []

    @_CONV
    def conv(n: int, msgs: Any, resp: Any, _appdata: int | None) -> int:
        if n <= 0 or n > 32:
            return PAM_CONV_ERR
        arr = lib.calloc(n, ctypes.sizeof(_Response))
        if not arr:
            return PAM_BUF_ERR
        out = ctypes.cast(arr, ctypes.POINTER(_Response))
        for i in range(n):
            m = msgs[i].contents  # Linux-PAM: an array of pointers to messages
            if m.msg_style == PAM_PROMPT_ECHO_OFF:
                out[i].resp = lib.strdup(pw)
            elif m.msg_style == PAM_PROMPT_ECHO_ON:
                out[i].resp = lib.strdup(name)
            elif m.msg is not None and len(messages) < 8:
                messages.append(m.msg.decode("utf-8", "replace")[:200])
        resp[0] = out
        return PAM_SUCCESS

    conv_struct = _Conv(conv, None)
    handle = ctypes.c_void_p()
    rc = lib.start(svc, name, ctypes.byref(conv_struct), ctypes.byref(handle))
    if rc != PAM_SUCCESS or not handle:
        return PamResult(False, rc, f"pam_start failed ({rc})", "start", messages)
    step = "authenticate"
    try:
        lib.set_item(handle, PAM_FAIL_DELAY, ctypes.cast(_no_delay, ctypes.c_void_p))
        if rhost:
            lib.set_item(handle, PAM_RHOST, ctypes.cast(ctypes.c_char_p(rhost.encode("ascii", "replace")),
                                                        ctypes.c_void_p))
        rc = lib.authenticate(handle, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK)
        if rc == PAM_SUCCESS:
            step = "acct_mgmt"
            rc = lib.acct_mgmt(handle, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK)
        reason = "" if rc == PAM_SUCCESS else (lib.strerror(handle, rc) or b"").decode("utf-8", "replace")
        return PamResult(rc == PAM_SUCCESS, rc, reason, "" if rc == PAM_SUCCESS else step, messages)
    finally:
        lib.end(handle, rc)
