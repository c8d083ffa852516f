"""The shell blocks of the Markdown docs, and a private machine to paste them into.

`shell_blocks(path)` reads a doc's fenced blocks tagged sh/bash/shell/console, in order. A block
whose lines start with `$ ` is a transcript: its `$ ` lines are the commands, the rest is output.

`Machine` is what a reader's root shell on a fresh server looks like, without touching this one:
a private mount, PID and network namespace (its own loopback, so the standard ports are free) in which
/etc, /opt, /usr, /root, /home, /srv, /run, /mnt, /media, /var and the checkout's parent are
overlays whose changes vanish with it, and /tmp is empty. Blocks run one after another as in one terminal
session: exported variables and the working directory carry over from one block to the next.
Each runs under `set -e -o pipefail` on a terminal (a pty), so a command asking for a password
gets `It1` typed in, as the docs' lab does, and a command waiting for other input hangs until
the block's time runs out. A line that starts a server in the foreground (`mailcove ... serve`,
`make serve`) is left running as in another terminal until it prints `ready`; the next such
line, or the end of the doc, stops it as Ctrl-C would.

The namespace has no network: pip inside it installs from a wheelhouse filled beforehand (outside
it) from the package registry pip is configured with."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import select
import shlex
import signal
import subprocess
import termios
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

SHELL_TAGS = frozenset({"sh", "bash", "shell", "console"})
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<tag>[^\s`]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
PASSWORD = "It1"
PROMPT = re.compile(r"(?i)(password|passphrase|again|confirm)[^\n]*:\s*$")
ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Every place a block may write (/bin, /sbin and /lib are links into /usr on Debian 12).
OVERLAID = ("/etc", "/opt", "/usr", "/root", "/home", "/srv", "/run", "/mnt", "/media")
STATE = "/run/doc-blocks"  # inside the namespace: the session's exported variables and directory


@dataclass(frozen=True)
class Block:
    doc: str  # relative to the repository, e.g. docs/deploy.md
    line: int  # of the opening fence
    tag: str
    text: str

    @property
    def first_line(self) -> str:
        return next((ln.strip() for ln in self.text.splitlines() if ln.strip()), "")

    @property
    def key(self) -> str:
        """The first command without its comment, spaces collapsed: how lists name a block."""
        return " ".join(re.sub(r"(^|\s)#.*$", "", self.first_line).split())

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line} ({self.first_line[:60]})"

    def commands(self) -> str:
        """What a reader pastes: a transcript's `$ ` lines (with their continuations), else all."""
        lines = self.text.splitlines()
        if not any(ln.startswith("$ ") for ln in lines):
            return self.text
        out: list[str] = []
        more = False
        for ln in lines:
            if ln.startswith("$ ") or more:
                cmd = ln[2:] if ln.startswith("$ ") and not more else ln
                out.append(cmd)
                more = cmd.rstrip().endswith("\\")
        return "\n".join(out) + "\n"


def shell_blocks(repo: Path, doc: str) -> list[Block]:
    text = (repo / doc).read_text()
    blocks = []
    for m in FENCE.finditer(text):
        if m.group("tag") in SHELL_TAGS:
            indent = len(m.group("indent"))
            body = "".join(ln[indent:] if ln[:indent].isspace() else ln
                           for ln in m.group("body").splitlines(keepends=True))
            blocks.append(Block(doc, text.count("\n", 0, m.start()) + 1, m.group("tag"), body))
    return blocks


def script_block(repo: Path, script: str) -> Block:
    """A test-provided script (e.g. tests/e2e/seed_machine.sh, the machine a doc starts from) as a
    block of its own, run like a doc's blocks: in the session, as root, before the doc's blocks."""
    return Block(script, 0, "sh", f"bash {shlex.quote(str(repo / script))}\n")


def all_fences(repo: Path, doc: str) -> list[tuple[int, str, str]]:
    """(line, tag, first line) of every fenced block of a doc."""
    text = (repo / doc).read_text()
    return [(text.count("\n", 0, m.start()) + 1, m.group("tag"),
             next((ln.strip() for ln in m.group("body").splitlines() if ln.strip()), ""))
            for m in FENCE.finditer(text)]


def is_server_line(line: str) -> bool:
    """A command that serves in the foreground until stopped."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError:
        return False
    if words[:2] == ["make", "serve"]:
        return True
    return bool(words) and os.path.basename(words[0]) == "mailcove" and "serve" in words[1:]


def segments(block: Block) -> list[tuple[str, str]]:
    """("run", script) and ("serve", line) parts of a block, in order."""
    out: list[tuple[str, str]] = []
    chunk: list[str] = []
    for ln in block.commands().splitlines():
        if is_server_line(ln):
            if any(c.strip() for c in chunk):
                out.append(("run", "\n".join(chunk) + "\n"))
            chunk = []
            out.append(("serve", ln.strip()))
        else:
            chunk.append(ln)
    if any(c.strip() and not c.strip().startswith("#") for c in chunk):
        out.append(("run", "\n".join(chunk) + "\n"))
    return out


@dataclass
class Server:
    where: str
    proc: subprocess.Popen[bytes]
    output: bytearray = field(default_factory=bytearray)

    def pump(self) -> None:
        assert self.proc.stdout is not None
        for chunk in iter(lambda: self.proc.stdout.read1(65536), b""):  # type: ignore[union-attr]
            self.output += chunk

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")


class BlockFailed(AssertionError):
    pass


class Machine:
    def __init__(self, repo: Path, scratch: Path, wheelhouse: Path, hosts_line: str, cwd: Path) -> None:
        self.repo = repo
        self.servers: list[Server] = []
        self.transcript: list[str] = []
        layers = [*OVERLAID, str(repo.parent)]  # the checkout and what lies next to it (../shared)
        mounts = [f"mount -t tmpfs -o mode=0700 tmpfs {scratch}"]
        for i in range(len(layers) + 1):
            mounts.append(f"mkdir -p {scratch}/{i}.u {scratch}/{i}.w")
        for i, d in enumerate(layers):
            mounts.append(f"mount -t overlay overlay -o lowerdir={d},upperdir={scratch}/{i}.u,"
                          f"workdir={scratch}/{i}.w {d}")
        # /var last: the scratch tmpfs lies under it; the wheelhouse is bound in before /tmp is emptied
        n = len(layers)
        mounts += [
            "mkdir -p /opt/doc-blocks-wheels",
            f"mount --bind {wheelhouse} /opt/doc-blocks-wheels",
            f"mount -t overlay overlay -o lowerdir=/var,upperdir={scratch}/{n}.u,workdir={scratch}/{n}.w /var",
            "mount -t tmpfs -o mode=1777 tmpfs /tmp",
        ]
        env = {
            "PATH": ROOT_PATH, "HOME": "/root", "USER": "root", "LOGNAME": "root", "SHELL": "/bin/bash",
            "LANG": "C.UTF-8", "TERM": "dumb",
            # the namespace has no network: pip installs from the wheelhouse only
            "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "/opt/doc-blocks-wheels",
        }
        exports = "\n".join(f"export {k}={shlex.quote(v)}" for k, v in env.items())
        setup = "\n".join([
            "set -e",
            "ip link set lo up",
            *mounts,
            f"echo {shlex.quote(hosts_line)} >> /etc/hosts",
            # this checkout's .venv is the suite's own and up to date; with no network in here,
            # `make serve` must not try to refresh it
            f"if [ -d {repo}/.venv ]; then touch {repo}/.venv/.installed; fi",
            f"mkdir -p {STATE}",
            f"cat > {STATE}/env <<'EOF'\n{exports}\nEOF",
            f"echo {shlex.quote(str(cwd))} > {STATE}/cwd",
            "echo up",
            # PID 1 of the namespace: reaps the orphans it inherits, so no zombie of a stopped
            # server keeps its account `in use` (userdel)
            "exec 0</dev/null 1>/dev/null 2>&1",
            "while :; do sleep 5 & wait; done",
        ])
        # A PID namespace of its own (with its own /proc) too: `userdel mailcove` in one doc must not
        # see another doc's server running as that account's UID on the other worker.
        self.holder = subprocess.Popen(["unshare", "--mount", "--net", "--pid", "--fork", "--mount-proc",
                                        "--propagation", "private", "bash", "-c", setup],
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={"PATH": ROOT_PATH},
                                       cwd="/", start_new_session=True)
        assert self.holder.stdout is not None
        first = self.holder.stdout.readline()
        if first.strip() != b"up":
            rest = first + self.holder.stdout.read()
            raise RuntimeError(f"the namespace did not come up: {rest.decode(errors='replace')}")
        # nsenter joins the namespaces of the namespace's PID 1 (unshare itself stays outside the PID one)
        children = Path(f"/proc/{self.holder.pid}/task/{self.holder.pid}/children").read_text().split()
        self.init = int(children[0])

    # --- running -------------------------------------------------------------------------------

    def _argv(self, script: str) -> list[str]:
        return ["nsenter", "-t", str(self.init), "-m", "-n", "-p", "--", "bash", "-c", script]

    @staticmethod
    def _session(body: str) -> str:
        return (f". {STATE}/env\ncd \"$(cat {STATE}/cwd)\"\n"
                f"trap 'rc=$?; export -p > {STATE}/env; pwd > {STATE}/cwd; exit $rc' EXIT\n"
                f"set -e -o pipefail\n{body}")

    def run(self, block: Block, script: str, timeout: float) -> str:
        """Run `script` on a terminal; typed answers to password prompts. Raises BlockFailed."""
        master, slave = os.openpty()
        attrs = termios.tcgetattr(slave)
        attrs[1] &= ~termios.ONLCR  # keep \n as \n in what the test reads
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        proc = subprocess.Popen(self._argv(self._session(script)), stdin=slave, stdout=slave, stderr=slave,
                                start_new_session=True, cwd="/", env={"PATH": ROOT_PATH},
                                preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        os.close(slave)
        out = bytearray()
        answered = 0
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)
                    raise BlockFailed(f"{block.where}: no end after {timeout:.0f} s (waiting for input?)\n"
                                      f"{_tail(out)}")
                ready, _, _ = select.select([master], [], [], min(left, 0.5))
                if ready:
                    try:
                        chunk = os.read(master, 65536)
                    except OSError:
                        chunk = b""
                    if not chunk:
                        break
                    out += chunk
                    tail = out[answered:].decode(errors="replace")
                    if PROMPT.search(tail.rsplit("\n", 1)[-1]):
                        os.write(master, PASSWORD.encode() + b"\n")
                        answered = len(out)
                elif proc.poll() is not None:
                    break
        finally:
            os.close(master)
        rc = proc.wait(30)
        text = out.decode(errors="replace")
        self.transcript.append(f"--- {block.where}\n{text}")
        if rc != 0:
            raise BlockFailed(f"{block.where}: exit status {rc}\n{_tail(out)}")
        return text

    def serve(self, block: Block, line: str, timeout: float = 90) -> Server:
        """Start a foreground server as in a second terminal, after stopping the one before."""
        self.stop_servers()
        proc = subprocess.Popen(self._argv(self._session(f"exec {line}")), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd="/",
                                env={"PATH": ROOT_PATH}, start_new_session=True)
        server = Server(f"{block.where}: {line}", proc)
        threading.Thread(target=server.pump, daemon=True).start()
        self.servers.append(server)
        deadline = time.monotonic() + timeout
        while not re.search(r"(?m)^ready\r?$", server.text):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BlockFailed(f"{server.where}: not ready (exit {proc.poll()})\n{server.text[-3000:]}")
            time.sleep(0.1)
        return server

    def stop_servers(self) -> None:
        """Ctrl-C for each running server; one that had already ended on its own failed."""
        for server in self.servers:
            if server.proc.poll() is not None:
                raise BlockFailed(f"{server.where}: ended while it should serve (exit {server.proc.returncode})\n"
                                  f"{server.text[-3000:]}")
            os.killpg(server.proc.pid, signal.SIGINT)
            try:
                server.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(server.proc.pid, signal.SIGKILL)
                server.proc.wait(10)
                raise BlockFailed(f"{server.where}: did not stop within 60 s of Ctrl-C") from None
            self.transcript.append(f"--- {server.where}\n{server.text}")
        self.servers = []

    def run_block(self, block: Block, timeout: float) -> None:
        for kind, part in segments(block):
            if kind == "serve":
                self.serve(block, part)
            else:
                self.run(block, part, timeout)

    def close(self) -> None:
        for server in self.servers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.proc.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.holder.pid, signal.SIGKILL)
        self.holder.wait(10)


def _tail(out: bytes | bytearray, n: int = 60) -> str:
    return "\n".join(bytes(out).decode(errors="replace").splitlines()[-n:])
