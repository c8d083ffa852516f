"""A private Dovecot (installed from Debian) on loopback, for the differential test, bench/imap and
bench/pop3 (`protocol="pop3"`).

    with PrivateDovecot(users={"a@hamap.local": "secret"}) as dc:
        imap = imaplib.IMAP4(dc.host, dc.port)

Started as `dovecot -F -c CONF` with its own config in a temp dir: listen 127.0.0.1 on free ports,
plaintext PLAIN allowed, passwd-file users, one static userdb uid (nobody), Maildir under the temp
dir. base_dir/state_dir/logs live in the temp dir too, so nothing touches /etc/dovecot or /var/run,
and several can run at once. The Debian package is installed with its own daemon disabled (CI
installs with a policy-rc.d that forbids starting services).

The temp dir is made world-traversable (0755) because Dovecot drops to the mail uid (nobody) and to
its internal users (dovecot, dovenull) before it opens the Maildir, the passwd-file and its sockets.
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
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

MAIL_USER = "nobody"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def dovecot_binary() -> str | None:
    return shutil.which("dovecot") or (
        "/usr/sbin/dovecot" if os.access("/usr/sbin/dovecot", os.X_OK) else None
    )


def make_self_signed(directory: Path, name: str = "localhost") -> tuple[Path, Path]:
    """A throwaway certificate for Dovecot's TLS listener (cryptography is a mailcove dependency)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


class PrivateDovecot:
    """One Dovecot master plus its children, with a config of our own.

    `many_connections` raises the limits for the idle-connection benchmark: process_limit and
    mail_max_userip_connections (Dovecot's own knobs for this) and runs imap-login in its
    "high-performance" mode (service_count = 0), where a few login processes each proxy many
    TLS connections instead of one process per TLS connection.
    """

    def __init__(
        self,
        users: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        *,
        tls: bool = False,
        many_connections: int = 0,
        extra_config: str = "",
        base: str | os.PathLike[str] | None = None,
        protocol: str = "imap",
    ) -> None:
        if protocol not in ("imap", "pop3"):
            raise ValueError(f"protocol must be imap or pop3, not {protocol!r}")
        self.protocol = protocol
        self.users = dict(users)
        self.tls = tls
        self.many_connections = many_connections
        self.extra_config = extra_config
        self.host = "127.0.0.1"
        self.port = 0
        self.tls_port = 0
        self.dir = Path(tempfile.mkdtemp(prefix="mailcove-dovecot-", dir=base))
        self.proc: subprocess.Popen[bytes] | None = None
        self.cert: Path | None = None

    # --- setup --------------------------------------------------------------------------------

    def _config(self) -> str:
        d = self.dir
        nobody = pwd.getpwnam(MAIL_USER)
        n = self.many_connections
        limits = ""
        if n:
            limits = f"""
default_client_limit = {n + 1000}
default_process_limit = {n + 1000}
default_vsz_limit = 0
mail_max_userip_connections = {n + 1000}
service {self.protocol} {{
  process_limit = {n + 1000}
}}
service {self.protocol}-login {{
  service_count = 0
  process_min_avail = 2
  process_limit = 8
  client_limit = {n + 1000}
  vsz_limit = 0
}}
service anvil {{
  client_limit = {n + 2000}
}}
service auth {{
  client_limit = {n + 2000}
}}
service stats {{
  client_limit = {n + 2000}
}}
"""
        ssl = "ssl = no\n"
        plain, secure = ("imap", "imaps") if self.protocol == "imap" else ("pop3", "pop3s")
        tls_listener = f"  inet_listener {secure} {{\n    port = 0\n  }}\n"
        if self.tls:
            assert self.cert is not None
            ssl = f"ssl = yes\nssl_cert = <{self.cert}\nssl_key = <{self.dir / 'key.pem'}\n"
            tls_listener = (
                f"  inet_listener {secure} {{\n    address = 127.0.0.1\n"
                f"    port = {self.tls_port}\n    ssl = yes\n  }}\n"
            )
        other, other_secure = ("pop3", "pop3s") if self.protocol == "imap" else ("imap", "imaps")
        return f"""# written by tests/interop/dovecot.py
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
protocols = {self.protocol}
listen = 127.0.0.1
{ssl}
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
namespace inbox {{
  inbox = yes
  separator = /
  # the same start as a mailcove user: INBOX and the special-use mailboxes exist, subscribed
  mailbox INBOX {{
    auto = subscribe
  }}
  mailbox Drafts {{
    special_use = \\Drafts
    auto = subscribe
  }}
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = subscribe
  }}
  mailbox Junk {{
    special_use = \\Junk
    auto = subscribe
  }}
}}
service {self.protocol}-login {{
  inet_listener {plain} {{
    address = 127.0.0.1
    port = {self.port}
  }}
{tls_listener}}}
service {other}-login {{
  inet_listener {other} {{
    port = 0
  }}
  inet_listener {other_secure} {{
    port = 0
  }}
}}
{limits}
{self.extra_config}
"""

    def start(self, timeout: float = 20.0) -> PrivateDovecot:
        binary = dovecot_binary()
        if binary is None:
            raise RuntimeError(f"dovecot is not installed (Debian package dovecot-{self.protocol}d)")
        self.dir.chmod(0o755)
        for sub in ("run", "state", "home", "mail"):
            (self.dir / sub).mkdir(exist_ok=True)
        nobody = pwd.getpwnam(MAIL_USER)
        for sub in ("home", "mail"):
            os.chown(self.dir / sub, nobody.pw_uid, nobody.pw_gid)
        passwd = self.dir / "passwd"
        passwd.write_text("".join(f"{u}:{{PLAIN}}{p}::::::\n" for u, p in self.users.items()))
        passwd.chmod(0o644)  # read by the auth process, which runs as the dovecot user
        if self.tls:
            self.cert, _ = make_self_signed(self.dir)
        self.port = free_port()
        if self.tls:
            self.tls_port = free_port()
        conf = self.dir / "dovecot.conf"
        conf.write_text(self._config())
        self.conf = conf
        self.proc = subprocess.Popen(
            [binary, "-F", "-c", str(conf)],
            stdout=open(self.dir / "stdout.txt", "wb"),  # noqa: SIM115 - handed to the child
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        ports = [self.port] + ([self.tls_port] if self.tls else [])
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dovecot exited with {self.proc.returncode}:\n{self.logs()}")
            if all(_listening(self.host, p) for p in ports):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dovecot did not listen within {timeout}s:\n{self.logs()}")

    def logs(self) -> str:
        out = []
        for name in ("stdout.txt", "dovecot.log"):
            p = self.dir / name
            if p.exists():
                out.append(f"--- {name} ---\n{p.read_text(errors='replace')[-5000:]}")
        return "\n".join(out)

    def doveadm(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["doveadm", "-c", str(self.conf), *args], capture_output=True, text=True, timeout=120, check=True
        )

    def maildir(self, user: str) -> Path:
        return self.dir / "mail" / user

    def fill(self, messages: Sequence[bytes]) -> None:
        """The same messages in every user's Maildir INBOX, before start(): written once and
        hard-linked per user. The files keep the exact bytes (CRLF); S= and W= give Dovecot the
        sizes without reading the files."""
        src = self.dir / "messages"
        src.mkdir()
        names = []
        now = int(time.time())
        for i, m in enumerate(messages):
            name = f"{now}.M{i}P{os.getpid()}.fill,S={len(m)},W={len(m)}:2,"
            (src / name).write_bytes(m)
            names.append(name)
        nobody = pwd.getpwnam(MAIL_USER)
        for user in self.users:
            box = self.maildir(user)
            for sub in ("cur", "new", "tmp"):
                (box / sub).mkdir(parents=True)
            for name in names:
                os.link(src / name, box / "cur" / name)
        for root, dirs, files in os.walk(self.dir / "mail"):
            os.chown(root, nobody.pw_uid, nobody.pw_gid)
            for f in dirs + files:
                os.chown(os.path.join(root, f), nobody.pw_uid, nobody.pw_gid)

    def version(self) -> str:
        binary = dovecot_binary()
        if binary is None:
            return ""
        return subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()

    # --- looking at it ------------------------------------------------------------------------

    def pids(self) -> list[int]:
        """The master and every process in its session (children keep the master's session)."""
        assert self.proc is not None
        sid = self.proc.pid
        found = []
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                if os.getsid(int(entry.name)) == sid:
                    found.append(int(entry.name))
            except (ProcessLookupError, PermissionError):
                continue
        return found

    # --- teardown -----------------------------------------------------------------------------

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
        # Children (imap processes) may outlive the master by a moment; they share its session id.
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PrivateDovecot:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
