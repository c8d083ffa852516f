"""System users end to end: `directory = "system"`, real Unix accounts (useradd + chpasswd), a real
`mailcove serve`, and the stdlib's real clients (imaplib, poplib, smtplib).

- a root server: the Unix password logs in over IMAP, POP3 and SMTP AUTH (PAM and shadow modes);
  a wrong password and an account below UID_MIN are refused; mail to <user>@hamap.local lands in
  that user's mailbox; a ~/.forward to another local user is followed, a group-writable one is not;
- an unprivileged server (a user made for the test, in the `shadow` group, started with runuser):
  PAM and shadow authentication both work; without the group, logins fail and the log says why.

Root only (accounts are created); skipped on a developer machine, never skipped under CI=true.
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import poplib
import shutil
import smtplib
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mailcove_testing import REPO, ServerProcess, workers_args
from system_users_testing import IN_CI, UnixUsers, unix_users_fixture

# Runs under the lock every test worker shares (mailcove_testing.host_state_lock): this module
# creates Unix accounts (useradd locks /etc/passwd).
pytestmark = pytest.mark.host_state

PW = "It1-Unix"
LAB = '[auth]\nallow_plaintext = true\n[tls]\nenabled = false\n'


@pytest.fixture
def unix_users() -> Iterator[UnixUsers]:
    yield from unix_users_fixture()


def config(mode: str) -> str:
    # PAM (the default check) through the shorthand `directory = "system"`, shadow through the
    # table. [server] user = "root": this is the root case, so the server must not drop privileges.
    head = 'hostname = "mx1.hamap.local"\n'
    if mode == "pam":
        head += 'directory = "system"\n'
    else:
        head += f'[directory]\nusers = "system"\nsystem_auth = "{mode}"\n'
    return head + '[server]\nuser = "root"\n' + LAB


def cli(srv: ServerProcess, *args: str, wrap: tuple[str, ...] = (), python: str = sys.executable) -> None:
    cmd = [*wrap, python, "-s", "-m", "mailcove", "--config", str(srv.config_path), "--data", str(srv.data_dir),
           "--create", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, env=srv.env, cwd=REPO, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


_sources = iter(range(2, 250))


def source() -> str:
    """A fresh loopback client address per failing login: the shared throttle delays a client's
    failures more and more (the point of it), so each refusal comes from "another client"."""
    return f"127.0.9.{next(_sources)}"


class _IMAP(imaplib.IMAP4):
    def __init__(self, host: str, port: int, src: str) -> None:
        self._src = src
        super().__init__(host, port, timeout=30)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout, source_address=(self._src, 0))


class _POP3(poplib.POP3):
    def __init__(self, host: str, port: int, src: str) -> None:
        self._src = src
        super().__init__(host, port, timeout=30)

    def _create_socket(self, timeout: float) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout, source_address=(self._src, 0))


def imap_login(srv: ServerProcess, user: str, password: str, src: str = "127.0.0.1") -> imaplib.IMAP4 | None:
    m = _IMAP(*srv.address("imap"), src)
    try:
        m.login(user, password)
    except imaplib.IMAP4.error:
        m.logout()
        return None
    return m


def pop3_login(srv: ServerProcess, user: str, password: str, src: str = "127.0.0.1") -> bool:
    p = _POP3(*srv.address("pop3"), src)
    try:
        p.user(user)
        p.pass_(password)
    except poplib.error_proto:
        return False
    finally:
        with contextlib.suppress(Exception):
            p.quit()
    return True


def smtp_auth(srv: ServerProcess, user: str, password: str, src: str = "127.0.0.1") -> smtplib.SMTP | None:
    s = smtplib.SMTP(*srv.address("submission"), timeout=30, source_address=(src, 0))
    s.ehlo("client.example")
    try:
        s.login(user, password)
    except smtplib.SMTPAuthenticationError:
        s.quit()
        return None
    return s


def subjects(m: imaplib.IMAP4) -> list[str]:
    m.select("INBOX")
    _, data = m.search(None, "ALL")
    out = []
    for num in data[0].split():
        _, parts = m.fetch(num, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        raw = parts[0][1] if isinstance(parts[0], tuple) else b""
        out.append(raw.decode().strip().removeprefix("Subject: "))
    return out


def wait_for(fn: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn():
            return True
        time.sleep(0.1)
    return fn()


def mail(sender: str, to: str, subject: str) -> bytes:
    return f"From: <{sender}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\r\nbody\r\n".encode()


@pytest.mark.parametrize("mode", ["pam", "shadow"])
def test_unix_password_logs_in_everywhere_and_mail_arrives(
    unix_users: UnixUsers, serve_factory: Callable[..., ServerProcess], mode: str
) -> None:
    unix_users.add("a")
    unix_users.add("b", crypt_method="SHA512")  # $6$ as well as Debian's default $y$
    unix_users.add("svc", system=True)  # below UID_MIN: not a mail user
    a, b, svc = unix_users.name("a"), unix_users.name("b"), unix_users.name("svc")
    srv = serve_factory(config(mode), start=False)
    cli(srv, "domain", "add", "hamap.local")
    srv.start()

    m = imap_login(srv, a, PW)
    assert m is not None, srv.logs()
    assert imap_login(srv, f"{a}@hamap.local", "wrong", src=source()) is None
    assert imap_login(srv, svc, PW, src=source()) is None
    assert imap_login(srv, "root", PW, src=source()) is None
    assert pop3_login(srv, f"{b}@hamap.local", PW)
    assert not pop3_login(srv, b, "wrong", src=source())
    assert not pop3_login(srv, svc, PW, src=source())

    # SMTP AUTH with the Unix password, then a@ sends to b@: b reads it over IMAP.
    s = smtp_auth(srv, a, PW)
    assert s is not None
    s.sendmail(f"{a}@hamap.local", [f"{b}@hamap.local"], mail(f"{a}@hamap.local", f"{b}@hamap.local", "a-to-b"))
    s.quit()
    assert smtp_auth(srv, a, "wrong", src=source()) is None
    assert smtp_auth(srv, svc, PW, src=source()) is None

    # Mail from outside over port 25 to a@ lands in a's mailbox; unknown and system accounts are refused.
    with smtplib.SMTP(*srv.address("smtp"), timeout=30) as s25:
        s25.sendmail("x@remote.example", [f"{a}@hamap.local"], mail("x@remote.example", a, "to-a"))
        for bad in (svc, unix_users.name("nosuch"), "root"):
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                s25.sendmail("x@remote.example", [f"{bad}@hamap.local"], mail("x@remote.example", bad, "no"))
    assert wait_for(lambda: "to-a" in subjects(m))
    m.logout()
    mb = imap_login(srv, b, PW)
    assert mb is not None
    assert wait_for(lambda: "a-to-b" in subjects(mb))
    mb.logout()
    srv.stop()
    assert "Traceback" not in srv.logs()


def test_forward_file(unix_users: UnixUsers, serve_factory: Callable[..., ServerProcess]) -> None:
    unix_users.add("a")
    unix_users.add("b")
    unix_users.add("c")
    a, b, c = unix_users.name("a"), unix_users.name("b"), unix_users.name("c")
    unix_users.write_forward("a", f"# a is away\n{b}\n")
    unix_users.write_forward("c", f"{b}\n", mode=0o664)  # group-writable: ignored
    srv = serve_factory(config("pam"), start=False)
    cli(srv, "domain", "add", "hamap.local")
    srv.start()
    with smtplib.SMTP(*srv.address("smtp"), timeout=30) as s:
        s.sendmail("x@remote.example", [f"{a}@hamap.local"], mail("x@remote.example", a, "for-a"))
        s.sendmail("x@remote.example", [f"{c}@hamap.local"], mail("x@remote.example", c, "for-c"))
    mb, ma, mc = imap_login(srv, b, PW), imap_login(srv, a, PW), imap_login(srv, c, PW)
    assert mb is not None and ma is not None and mc is not None
    assert wait_for(lambda: "for-a" in subjects(mb))
    assert wait_for(lambda: "for-c" in subjects(mc))
    assert "for-a" not in subjects(ma) and "for-c" not in subjects(mb)
    for m in (ma, mb, mc):
        m.logout()
    # a forwards its mail away but still owns its address: it may send as a@.
    s = smtp_auth(srv, a, PW)
    assert s is not None
    s.sendmail(f"{a}@hamap.local", [f"{c}@hamap.local"], mail(f"{a}@hamap.local", c, "from-a"))
    s.quit()
    srv.stop()
    assert "is not safe (group- or world-writable)" in srv.logs()


# --- an unprivileged server ----------------------------------------------------------------------


def python_for(user: str) -> tuple[str, str]:
    """An interpreter `user` can run mailcove with, and its PYTHONPATH. The test's own may live
    where only root can reach (a pyenv under /root): then the system python of the same version,
    pointed at this environment's site-packages (same ABI)."""
    site = sysconfig.get_paths()["purelib"]
    exe = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    for python, path in ((sys.executable, str(REPO / "src")), (exe, f"{REPO / 'src'}{os.pathsep}{site}")):
        r = subprocess.run(
            ["runuser", "-u", user, "--", "env", f"PYTHONPATH={path}", "HOME=/", python, "-s", "-c",
             "import mailcove.app, argon2, click"],
            capture_output=True, text=True, cwd="/",
        )
        if r.returncode == 0:
            return python, path
    msg = f"no Python interpreter that user {user} may run mailcove with (tried {sys.executable}, {exe})"
    if IN_CI:
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture
def private_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="mailcove-sysusers-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def unprivileged_server(run_as: str, base: Path, mode: str) -> ServerProcess:
    """`mailcove serve` started as `run_as` (runuser), in a dir that user owns."""
    import pwd

    pw = pwd.getpwnam(run_as)
    os.chown(base, pw.pw_uid, pw.pw_gid)
    base.chmod(0o700)
    cfg = base / "mailcove.toml"
    cfg.write_text(f'hostname = "mx1.hamap.local"\n[directory]\nusers = "system"\nsystem_auth = "{mode}"\n{LAB}')
    os.chown(cfg, pw.pw_uid, pw.pw_gid)
    data = base / "data"
    python, path = python_for(run_as)
    wrap = ("runuser", "-u", run_as, "--", "env", f"PYTHONPATH={path}", "HOME=/")
    args = ["--config", str(cfg), "--data", str(data), "serve", *workers_args()]
    for name in ("smtp", "submission", "imap", "pop3"):
        args += ["--listen", f"{name}=127.0.0.1:0"]
    for name in ("submissions", "imaps", "pop3s", "http"):
        args += ["--listen", f"{name}="]
    env = dict(os.environ)
    env.pop("MAILCOVE_CONFIG", None)
    srv = ServerProcess(data, cfg, [*wrap, python, "-s", "-m", "mailcove", *args],
                        base / "stdout.txt", base / "stderr.txt", env)
    cli(srv, "domain", "add", "hamap.local", wrap=wrap, python=python)
    return srv.start()


@pytest.mark.parametrize("mode", ["pam", "shadow"])
def test_unprivileged_server_in_the_shadow_group(unix_users: UnixUsers, private_dir: Path, mode: str) -> None:
    unix_users.add("a")
    unix_users.add("run", password=None, system=True, home=False, groups=("shadow",))
    srv = unprivileged_server(unix_users.name("run"), private_dir, mode)
    try:
        assert srv.state["pid"] != os.getpid()
        status = Path(f"/proc/{srv.pid}/status").read_text()
        assert f"Uid:\t{os.stat(private_dir).st_uid}" in status  # really unprivileged
        m = imap_login(srv, unix_users.name("a"), PW)
        assert m is not None, srv.logs()
        m.logout()
        assert imap_login(srv, unix_users.name("a"), "wrong", src=source()) is None
        assert pop3_login(srv, unix_users.name("a"), PW)
        assert "cannot read /etc/shadow" not in srv.logs()
    finally:
        srv.kill()


@pytest.mark.parametrize("mode", ["pam", "shadow"])
def test_unprivileged_server_without_shadow_says_why(unix_users: UnixUsers, private_dir: Path, mode: str) -> None:
    unix_users.add("a")
    unix_users.add("run", password=None, system=True, home=False)
    srv = unprivileged_server(unix_users.name("run"), private_dir, mode)
    try:
        assert imap_login(srv, unix_users.name("a"), PW) is None
        logs = srv.logs()
        # Once at start, and again on the failed login.
        assert logs.count("cannot read /etc/shadow") >= 2, logs
        assert "SupplementaryGroups=shadow" in logs
    finally:
        srv.kill()
