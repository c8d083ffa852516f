"""A private Dovecot POP3 server (Debian's dovecot-pop3d) on loopback, for the benchmark.

Its own config, run dir, state, log and Maildirs in a temp dir; nothing touches /etc/dovecot.
Users are in a passwd-file ({PLAIN}), mail is owned by `nobody`. The temp dir is 0755 because
Dovecot drops to nobody (mail) and to dovecot/dovenull (auth, login) before opening things.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

MAIL_USER = "nobody"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dovecot_binary() -> str:
    path = shutil.which("dovecot") or "/usr/sbin/dovecot"
    if not os.access(path, os.X_OK) or not os.path.exists("/usr/lib/dovecot/pop3"):
        raise SystemExit(
            "bench/pop3 needs Dovecot's POP3 server: apt-get install -y dovecot-pop3d "
            "(its system daemon is not used; a private one runs on a loopback port)"
        )
    return path


class DovecotPop3:
    def __init__(self, users: Mapping[str, str], sessions: int = 50, base: str | None = None) -> None:
        self.users = dict(users)
        self.sessions = sessions
        self.dir = Path(tempfile.mkdtemp(prefix="bench-dovecot-pop3-", dir=base))
        self.host = "127.0.0.1"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def _config(self) -> str:
        d = self.dir
        nobody = pwd.getpwnam(MAIL_USER)
        n = self.sessions + 100
        return f"""# written by bench/pop3/dovecot.py
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
protocols = pop3
listen = 127.0.0.1
ssl = no
auth_mechanisms = plain
disable_plaintext_auth = no
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
userdb {{
  driver = static
  args = uid={nobody.pw_uid} gid={nobody.pw_gid} home={d}/home/%u
}}
first_valid_uid = 1
mail_location = maildir:{d}/mail/%u
mail_uid = {nobody.pw_uid}
mail_gid = {nobody.pw_gid}
default_client_limit = {n}
default_process_limit = {n}
mail_max_userip_connections = {n}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""

    def fill(self, messages: Sequence[bytes]) -> None:
        """The same messages in every user's Maildir: written once, hard-linked per user. The
        files keep the exact bytes (CRLF); S= and W= give Dovecot the sizes without reading."""
        src = self.dir / "messages"
        src.mkdir()
        names = []
        now = int(time.time())
        for i, m in enumerate(messages):
            name = f"{now}.M{i}P{os.getpid()}.bench,S={len(m)},W={len(m)}:2,"
            (src / name).write_bytes(m)
            names.append(name)
        nobody = pwd.getpwnam(MAIL_USER)
        for user in self.users:
            box = self.dir / "mail" / user
            for sub in ("cur", "new", "tmp"):
                (box / sub).mkdir(parents=True)
            for name in names:
                os.link(src / name, box / "cur" / name)
        for root, dirs, files in os.walk(self.dir / "mail"):
            os.chown(root, nobody.pw_uid, nobody.pw_gid)
            for f in dirs + files:
                os.chown(os.path.join(root, f), nobody.pw_uid, nobody.pw_gid)

    def start(self, timeout: float = 20.0) -> DovecotPop3:
        binary = dovecot_binary()
        self.dir.chmod(0o755)
        nobody = pwd.getpwnam(MAIL_USER)
        for sub in ("run", "state", "home", "mail"):
            (self.dir / sub).mkdir(exist_ok=True)
        for sub in ("home", "mail"):
            os.chown(self.dir / sub, nobody.pw_uid, nobody.pw_gid)
        passwd = self.dir / "passwd"
        passwd.write_text("".join(f"{u}:{{PLAIN}}{p}::::::\n" for u, p in self.users.items()))
        passwd.chmod(0o644)
        self.port = free_port()
        conf = self.dir / "dovecot.conf"
        conf.write_text(self._config())
        self.proc = subprocess.Popen(
            [binary, "-F", "-c", str(conf)],
            stdout=open(self.dir / "stdout.txt", "wb"),  # noqa: SIM115 - handed to the child
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dovecot exited with {self.proc.returncode}:\n{self.logs()}")
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=0.5):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dovecot did not listen within {timeout}s:\n{self.logs()}")

    def logs(self) -> str:
        out = []
        for name in ("stdout.txt", "dovecot.log"):
            p = self.dir / name
            if p.exists():
                out.append(f"--- {name} ---\n{p.read_text(errors='replace')[-4000:]}")
        return "\n".join(out)

    def version(self) -> str:
        try:
            return subprocess.run([dovecot_binary(), "--version"], capture_output=True, text=True).stdout.strip()
        except OSError:
            return "?"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.proc is not None:
            # Its children (pop3, auth, log) share the master's session.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
