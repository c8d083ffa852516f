"""The servers under test. Each one listens on a loopback port, delivers to one local mailbox,
and can say how many messages that mailbox holds ("stored": durable in the final place a
reader would fetch it from, not merely queued)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import pwd
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from bench.common import REPO, Cleanup, bench_tmp, ensure_apt, ensure_pip, free_port, wait_port

sys.path.insert(0, str(REPO / "tests"))  # the private-Postfix config shared with the tests

from interop.postfix_conf import private_master_cf

T = TypeVar("T")

POSTFIX_USER = "mcbench"  # the Unix user Postfix delivers to (local(8) needs a passwd entry)
POSTFIX_PRESEED = ("postfix postfix/main_mailer_type select No configuration",)
TUNED = {"in_flow_delay": "0", "local_destination_concurrency_limit": "20"}
LISTENERS_OFF = ("submission", "submissions", "imap", "imaps", "pop3", "pop3s", "http")


class Peer:
    name: str
    recipient: str
    port: int
    pid: int

    def start(self) -> None:
        raise NotImplementedError

    def stored(self) -> int:
        raise NotImplementedError

    def reset(self) -> None:
        """Between runs: make the next run start from an empty mailbox where that is cheap."""

    def settled(self) -> bool:
        """Whether the work a server defers past storing (mailcove's full-text index) is done:
        the run waits for it, so it is counted in the run's CPU and never runs into the next
        server's turn."""
        return True

    def describe(self) -> str:
        return self.name


def count_files(directory: Path) -> int:
    try:
        with os.scandir(directory) as it:
            return sum(1 for _ in it)
    except FileNotFoundError:
        return 0


def empty_dir(directory: Path) -> None:
    with contextlib.suppress(FileNotFoundError), os.scandir(directory) as it:
        for entry in it:
            os.unlink(entry.path)


# --- mailcove ----------------------------------------------------------------------------------


class _LoopThread:
    """An event loop in a thread, so the synchronous driver can keep one store open."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(60)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def mailcove_available() -> bool:
    return importlib.util.find_spec("mailcove.smtp.server") is not None


class MailcovePeer(Peer):
    name = "mailcove"
    recipient = "u@bench.test"

    def __init__(self, cleanup: Cleanup, log_level: str = "info", workers: int = 0) -> None:
        self.cleanup = cleanup
        self.workers = workers  # [server] workers: SMTP stays in the first; the others serve IMAP/POP3
        self.base = bench_tmp("mcbench-mailcove-")
        cleanup.add("mailcove dir", lambda: shutil.rmtree(self.base, ignore_errors=True))
        self.data = self.base / "data"
        self.config = self.base / "mailcove.toml"
        self.log_level = log_level
        self.store: Any = None
        self.loop: _LoopThread | None = None

    def cli(self, *args: str, stdin: str | None = None) -> None:
        cmd = [sys.executable, "-m", "mailcove", "--config", str(self.config), "--data", str(self.data), *args]
        subprocess.run(cmd, input=stdin, text=True, check=True, cwd=REPO, stdout=subprocess.DEVNULL)

    def start(self) -> None:
        self.config.write_text(
            f'hostname = "mx.bench.test"\n\n[log]\nlevel = "{self.log_level}"\nfile = "{self.base / "serve.log"}"\n'
            f"\n[server]\nworkers = {self.workers}\n"
        )
        self.data.mkdir(mode=0o700, exist_ok=True)  # admin commands never create a data dir
        self.cli("domain", "add", "bench.test")
        self.cli("user", "add", self.recipient, "--password-stdin", stdin="bench-password\n")
        self.port = free_port()
        argv = [sys.executable, "-m", "mailcove", "--config", str(self.config), "--data", str(self.data), "serve"]
        argv += ["--user", "root"]  # the data dir is root's, under a 0700 dir the mailcove account cannot reach
        argv += ["--listen", f"smtp=127.0.0.1:{self.port}"]
        argv += [f"--listen={name}=" for name in LISTENERS_OFF]
        out = open(self.base / "serve.out", "wb")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        out.close()
        self.cleanup.process(self.proc, "mailcove serve")
        deadline = time.monotonic() + 60
        while not (self.data / "serve.json").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mailcove serve did not start:\n{(self.base / 'serve.out').read_text()}")
            time.sleep(0.05)
        self.pid = int(json.loads((self.data / "serve.json").read_text())["pid"])
        wait_port("127.0.0.1", self.port, banner=b"220")
        self._open_store()

    def _open_store(self) -> None:
        from mailcove.config import load_settings
        from mailcove.store.factory import open_store

        self.loop = _LoopThread()
        self.store = open_store(load_settings(self.config, data_dir=str(self.data)), watch_changes=False)
        self.loop.call(self.store.start())

        def close() -> None:
            assert self.loop is not None
            self.loop.call(self.store.close())
            self.loop.close()

        self.cleanup.add("bench's store handle", close)

    def stored(self) -> int:
        async def count() -> int:
            return int((await self.store.get_mailbox(self.recipient, "INBOX")).messages)

        assert self.loop is not None
        return self.loop.call(count())

    def settled(self) -> bool:
        async def waiting() -> int:
            return (await self.store.index_progress())[0]

        assert self.loop is not None
        return self.loop.call(waiting()) == 0

    def describe(self) -> str:
        workers = f"{self.workers} workers" if self.workers else "one worker per core"
        return f"mailcove serve (git {git_head()}, {workers})"


def git_head() -> str:
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    return r.stdout.strip() or "?"


# --- Postfix -----------------------------------------------------------------------------------


def postfix_version() -> str:
    r = subprocess.run(["postconf", "-d", "-h", "mail_version"], capture_output=True, text=True)
    return r.stdout.strip()


class PostfixPeer(Peer):
    """A private Postfix instance (`postfix -c DIR`): its own main.cf, master.cf, queue and data
    directories, smtpd on a loopback port, local(8) delivery to ~mcbench/<Maildir>/.

    main.cf holds Debian's shipped settings (/usr/share/postfix/main.cf.debian) plus what a
    private loopback instance needs; master.cf is Debian's with chroot switched off (a chroot
    would need a copy of /etc files inside the temporary queue directory) and the smtp service
    moved to the bench port. `tuned` adds the two settings from issue 3."""

    recipient = f"{POSTFIX_USER}@bench.test"

    def __init__(self, cleanup: Cleanup, *, tuned: bool, home: Path) -> None:
        self.cleanup = cleanup
        self.tuned = tuned
        self.name = "postfix-tuned" if tuned else "postfix-default"
        self.base = bench_tmp(f"mcbench-{self.name}-")
        cleanup.add(f"{self.name} dir", lambda: shutil.rmtree(self.base, ignore_errors=True))
        self.maildir_name = f"Maildir-{self.name}"
        self.maildir_new = home / self.maildir_name / "new"

    def start(self) -> None:
        etc, spool, lib = self.base / "etc", self.base / "spool", self.base / "lib"
        for d in (etc, spool, lib):
            d.mkdir()
        shutil.chown(lib, "postfix")
        self.port = free_port()
        debian = Path("/usr/share/postfix/main.cf.debian").read_text()
        main = [line for line in debian.splitlines() if line.strip() and not line.startswith("#")]
        main += [
            "myhostname = bench.test",
            "mydestination = bench.test, localhost",
            "inet_interfaces = loopback-only",
            "inet_protocols = ipv4",
            "mynetworks = 127.0.0.0/8",
            "relayhost =",
            # No /etc/aliases.db in a minimal install; mcbench needs no alias anyway.
            "alias_maps =",
            "alias_database =",
            f"home_mailbox = {self.maildir_name}/",
            "mailbox_size_limit = 0",
            "message_size_limit = 67108864",
            "recipient_delimiter = +",
            f"queue_directory = {spool}",
            f"data_directory = {lib}",
            # No syslog daemon on a build machine; postlogd writes this file (Postfix >= 3.4).
            f"maillog_file = {self.base / 'maillog'}",
        ]
        if self.tuned:
            main += [f"{k} = {v}" for k, v in TUNED.items()]
        (etc / "main.cf").write_text("\n".join(main) + "\n")
        (etc / "master.cf").write_text(private_master_cf(self.port))
        self.ctl = ["postfix", "-c", str(etc)]
        subprocess.run([*self.ctl, "check"], check=True, capture_output=True)
        r = subprocess.run([*self.ctl, "start"], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"postfix start failed: {r.stderr}\n{self.maillog_tail()}")
        self.cleanup.add(self.name, self.stop)
        wait_port("127.0.0.1", self.port, banner=b"220")
        self.pid = int((spool / "pid" / "master.pid").read_text().split()[0])

    def stop(self) -> None:
        subprocess.run([*self.ctl, "stop"], capture_output=True)
        # postfix stop returns before every daemon has gone; the queue dir is removed after.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if subprocess.run([*self.ctl, "status"], capture_output=True).returncode != 0:
                break
            time.sleep(0.1)

    def maillog_tail(self, lines: int = 20) -> str:
        path = self.base / "maillog"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stored(self) -> int:
        return count_files(self.maildir_new)

    def reset(self) -> None:
        empty_dir(self.maildir_new)

    def describe(self) -> str:
        extra = ", " + ", ".join(f"{k} = {v}" for k, v in TUNED.items()) if self.tuned else ""
        return f"Postfix {postfix_version()} (Debian main.cf{extra})"


def ensure_postfix_user(cleanup: Cleanup) -> Path:
    """The local recipient for Postfix, with a home under a bench directory. Created for the
    run and removed afterwards."""
    home_base = bench_tmp("mcbench-home-")
    cleanup.add("postfix home", lambda: shutil.rmtree(home_base, ignore_errors=True))
    home = home_base / POSTFIX_USER
    try:
        pwd.getpwnam(POSTFIX_USER)
        subprocess.run(["usermod", "-d", str(home), POSTFIX_USER], check=True)
    except KeyError:
        subprocess.run(["useradd", "-r", "-M", "-d", str(home), "-s", "/usr/sbin/nologin", POSTFIX_USER], check=True)
        cleanup.add("postfix user", lambda: subprocess.run(["userdel", POSTFIX_USER], check=False))
    home.mkdir()
    shutil.chown(home, POSTFIX_USER)
    return home


def ensure_postfix() -> None:
    ensure_apt("smtp-source", "postfix", POSTFIX_PRESEED)


# --- aiosmtpd ----------------------------------------------------------------------------------


class AiosmtpdPeer(Peer):
    name = "aiosmtpd"
    recipient = "u@bench.test"

    def __init__(self, cleanup: Cleanup) -> None:
        self.cleanup = cleanup
        self.base = bench_tmp("mcbench-aiosmtpd-")
        cleanup.add("aiosmtpd dir", lambda: shutil.rmtree(self.base, ignore_errors=True))
        self.maildir = self.base / "Maildir"

    def start(self) -> None:
        self.port = free_port()
        argv = [sys.executable, "-m", "bench.smtp.aiosmtpd_peer", "--port", str(self.port)]
        argv += ["--maildir", str(self.maildir)]
        out = open(self.base / "server.out", "wb")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        out.close()
        self.cleanup.process(self.proc, "aiosmtpd")
        self.pid = self.proc.pid
        wait_port("127.0.0.1", self.port, banner=b"220")

    def stored(self) -> int:
        return count_files(self.maildir / "new")

    def reset(self) -> None:
        empty_dir(self.maildir / "new")

    def describe(self) -> str:
        from importlib.metadata import version

        return f"aiosmtpd {version('aiosmtpd')} + durable Maildir handler (bench/smtp/aiosmtpd_peer.py)"


def ensure_aiosmtpd() -> None:
    ensure_pip("aiosmtpd", "aiosmtpd>=1.4")


# --- the harness's own ceiling -----------------------------------------------------------------


class SinkPeer(Peer):
    """Postfix's smtp-sink: accepts and discards (nothing stored, nothing synced). It is not a
    competitor: it shows how fast smtp-source itself can go on this machine, so that no figure
    above it is read as a server's limit."""

    name = "smtp-sink"
    recipient = "u@bench.test"

    def __init__(self, cleanup: Cleanup) -> None:
        self.cleanup = cleanup

    def start(self) -> None:
        self.port = free_port()
        binary = ensure_apt("smtp-sink", "postfix", POSTFIX_PRESEED)
        argv = [binary, "-u", "nobody", f"127.0.0.1:{self.port}", "512"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.cleanup.process(self.proc, "smtp-sink")
        self.pid = self.proc.pid
        wait_port("127.0.0.1", self.port, banner=b"220")

    def stored(self) -> int:
        return 1 << 62  # everything "arrives" the moment it is accepted

    def describe(self) -> str:
        return f"smtp-sink from Postfix {postfix_version()}, discarding (the load generator's ceiling)"
