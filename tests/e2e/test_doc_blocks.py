"""Every shell block of README.md and docs/*.md works as pasted (issue 16 part 2).

The blocks are read from the Markdown at test time (tests/e2e/doc_blocks.py), so a new block is
run without anyone listing it. Each doc gets its own private machine (a mount, PID and network
namespace, as root: real paths such as /etc/mailcove and /var/lib/mailcove, the standard ports,
`useradd`; nothing of it reaches this machine) and its blocks run in order in one shell session,
as a reader pastes them one after another. The reader is root on a Debian machine with this
checkout as the working directory; the lab's names (hamap.local, mx1.hamap.local, ...) resolve to
127.0.0.1 through /etc/hosts, as the lab's hosts file makes them resolve to the server.

What a doc expects to have been done before is done first, from the doc that says how
(PREREQUISITES): most docs expect an installation, which is docs/deploy.md's `make install` and
`mailcove setup` (without its systemctl lines). A machine no doc makes is laid out by a test's
script named there instead: docs/import.md starts on the seed's old Sendmail + Dovecot server
(tests/e2e/seed_machine.sh), with mailcove installed but not set up.
A block that cannot run here is listed in NOT_RUNNABLE by doc and first line, with the reason;
at most five, and only for a real systemd, real DNS, public ports or another OS."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from doc_blocks import Block, BlockFailed, Machine, all_fences, script_block, shell_blocks

from mailcove_testing import REPO, require_tool, unavailable

DOCS = ["README.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md"))]

# (doc, first command of the block without its comment): why it cannot run here. At most five.
NOT_RUNNABLE: dict[tuple[str, str], str] = {
    ("docs/deploy.md", "systemctl daemon-reload"): "needs a real systemd as PID 1 (the unit itself is checked by "
                                                   "tests/deploy/test_systemd_files.py)",
    ("docs/deploy.md", "systemctl disable --now mailcove"): "needs a real systemd as PID 1",
    ("docs/deploy.md", "dnf install -y python3.11 make"): "another OS: Rocky Linux / RHEL 9",
    ("docs/seed-lab.md", "firewall-cmd --permanent --add-port={25,587,110,143,80}/tcp"):
        "another OS: firewalld on Rocky Linux 9, run by systemd",
    ("docs/scaling.md", "mailcove db migrate"): "real DNS and a PostgreSQL server: the database host "
                                                   "db.example.net",
}
MAX_NOT_RUNNABLE = 5

# What a reader of the doc has done before (other docs' blocks, run first in the same machine).
INSTALL = "docs/deploy.md#debian-12--ubuntu-2404"
SEED_MACHINE = "tests/e2e/seed_machine.sh"
PREREQUISITES: dict[str, tuple[str, ...]] = {
    "README.md": (),
    "docs/deploy.md": (),
    "docs/seed-lab.md": (),
    "docs/autoconfig.md": ("docs/seed-lab.md",),
    # the seed's old Sendmail + Dovecot machine, then mailcove installed on it (not set up: the
    # import is what configures it)
    "docs/import.md": (SEED_MACHINE, INSTALL),
    # developers' pages: they work in the checkout (make, .venv), not on an installation
    "docs/fuzzing.md": (),
    "docs/imap.md": (),
    "docs/security.md": (),
}
CONFIGURE = "docs/deploy.md#configure-and-start-the-service"
DEFAULT_PREREQUISITES = (INSTALL, CONFIGURE)

# The lab's hosts line (docs/seed-lab.md), with the server at 127.0.0.1: tests use loopback only.
LAB_HOSTS = "127.0.0.1 hamap.local mx1.hamap.local autoconfig.hamap.local autodiscover.hamap.local " \
            "mta-sts.hamap.local"
BLOCK_TIMEOUT = 120.0


def runnable(block: Block) -> bool:
    return (block.doc, block.key) not in NOT_RUNNABLE


def blocks_of(ref: str) -> list[Block]:
    """A doc's blocks, or only those of one section for `doc#section`; a test's script (`.sh`)
    is one block."""
    if ref.endswith(".sh"):
        return [script_block(REPO, ref)]
    doc, _, section = ref.partition("#")
    blocks = shell_blocks(REPO, doc)
    if not section:
        return blocks
    text = (REPO / doc).read_text().splitlines()
    start = next(i for i, ln in enumerate(text) if ln.startswith("#") and _anchor(ln) == section)
    level = len(text[start]) - len(text[start].lstrip("#"))
    end = next((i for i, ln in enumerate(text) if i > start and ln.startswith("#")
                and len(ln) - len(ln.lstrip("#")) <= level), len(text))
    return [b for b in blocks if start < b.line <= end]


def _anchor(heading: str) -> str:
    words = heading.lstrip("#").strip().lower()
    return "".join(c for c in words.replace(" ", "-") if c.isalnum() or c in "-_")


# --- what the test needs -----------------------------------------------------------------------


def _wheelhouse() -> Path:
    """Wheels of mailcove's dependencies (and the build backend), for pip inside the namespace.
    Kept between runs, keyed by the dependency list."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    extras = project["project"]["optional-dependencies"]
    # `make install` needs the fast extra; `make serve`, `make fuzz` (pip install -e) the test and fuzz ones
    wanted = [*project["build-system"]["requires"], *project["project"]["dependencies"],
              *extras["fast"], *extras["test"], *extras["fuzz"]]
    key = hashlib.sha256("\n".join(wanted).encode()).hexdigest()[:12]
    house = Path(tempfile.gettempdir()) / f"mailcove-doc-wheels-{key}"
    if not (house / "done").exists():
        tmp = Path(tempfile.mkdtemp(prefix="mailcove-doc-wheels-", dir=house.parent))
        r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(tmp), *wanted],
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            pytest.fail(f"pip wheel for the namespace's wheelhouse failed:\n{r.stderr[-3000:]}")
        (tmp / "done").touch()
        try:
            tmp.rename(house)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # another worker made it meanwhile
    return house


@pytest.fixture(scope="module")
def wheelhouse() -> Path:
    if os.geteuid() != 0:
        unavailable("root (each doc runs in a private mount, PID and network namespace)")
    for tool in ("unshare", "nsenter", "ip", "make"):
        require_tool(tool)
    return _wheelhouse()


@pytest.fixture
def machine(wheelhouse: Path) -> Iterator[Machine]:
    scratch = Path(tempfile.mkdtemp(prefix="mailcove-doc-blocks-", dir="/var/tmp"))
    m = Machine(REPO, scratch, wheelhouse, LAB_HOSTS, REPO)
    try:
        yield m
    finally:
        m.close()
        shutil.rmtree(scratch, ignore_errors=True)


# --- the tests ---------------------------------------------------------------------------------


def test_not_runnable_list_is_short_and_current() -> None:
    assert len(NOT_RUNNABLE) <= MAX_NOT_RUNNABLE, NOT_RUNNABLE
    present = {(b.doc, b.key) for doc in DOCS for b in shell_blocks(REPO, doc)}
    stale = [key for key in NOT_RUNNABLE if key not in present]
    assert not stale, f"NOT_RUNNABLE names blocks no doc has (any more): {stale}"


def test_every_block_says_what_it_is() -> None:
    """A fence without a tag could be a command nobody runs: pasteable commands are ```sh, the
    rest says what it is (```text for output and synopses, ```toml, ```ini, ...)."""
    untagged = [f"{doc}:{line} ({first[:60]})" for doc in DOCS for line, tag, first in all_fences(REPO, doc) if not tag]
    assert not untagged, "fenced blocks without a tag:\n" + "\n".join(untagged)


# Docs whose blocks drive a conformance program (Dovecot's imaptest): run with `make test-interop`.
INTEROP_DOCS = frozenset({"docs/imap.md"})


# The docs this module runs; test_doc_blocks_guides.py runs the others, so that xdist (one
# module per worker) runs the two halves side by side.
INSTALL_DOCS = ("README.md", "docs/deploy.md", "docs/seed-lab.md")


def doc_params(docs: list[str]) -> list[object]:
    return [pytest.param(d, marks=pytest.mark.interop) if d in INTEROP_DOCS else d for d in docs]


@pytest.mark.timeout(900)
@pytest.mark.parametrize("doc", doc_params([d for d in DOCS if d in INSTALL_DOCS]))
def test_doc_blocks_work_as_pasted(doc: str, machine: Machine) -> None:
    run_doc(doc, machine)


def run_doc(doc: str, machine: Machine) -> None:
    """A doc's prerequisites, then its own blocks, in one machine; then Ctrl-C for its servers."""
    own = [b for b in shell_blocks(REPO, doc) if runnable(b)]
    if not own:
        pytest.skip(f"{doc} has no shell block to run")
    before: list[Block] = []
    for ref in PREREQUISITES.get(doc, DEFAULT_PREREQUISITES):
        before += [b for b in blocks_of(ref) if runnable(b)]
    for block in before:
        try:
            machine.run_block(block, BLOCK_TIMEOUT)
        except BlockFailed as exc:
            pytest.fail(f"prerequisite of {doc} failed: {exc}", pytrace=False)
    try:
        for block in own:
            machine.run_block(block, BLOCK_TIMEOUT)
        machine.stop_servers()
    except BlockFailed as exc:
        pytest.fail(str(exc), pytrace=False)
