"""Dovecot's imaptest against mailcove on loopback (issue 12): every scripted compliance group,
and the multi-client stress mode with its default states and checks, where the same run against
a private Dovecot from Debian is the control (it gives 0 errors). docs/imap.md says how to rerun
both by hand."""

from __future__ import annotations

import imaplib
from collections.abc import Iterator
from pathlib import Path

import pytest
from imaptest_run import OUT_OF_SCOPE, build_imaptest, run_scripted, run_stress, sample_mbox, totals

from interop.dovecot import PrivateDovecot, dovecot_binary
from interop.imap_servers import start_mailcove
from mailcove_testing import ServerProcess, require_tool

pytestmark = pytest.mark.interop  # `make test-interop`: runs Dovecot's imaptest

PASSWORD = "Imaptest-Pass-1"
SCRIPTED_USER = "it@hamap.local"
STRESS_USERS = {f"testuser{i}@hamap.local": PASSWORD for i in range(1, 6)}


@pytest.fixture(scope="module")
def imaptest() -> str:
    for tool in ("gcc", "make", "autoconf", "automake", "libtoolize", "pkg-config"):
        require_tool(tool)
    return build_imaptest()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = start_mailcove(tmp_path_factory.mktemp("imaptest"), {SCRIPTED_USER: PASSWORD, **STRESS_USERS})
    yield srv
    srv.stop()


def test_every_scripted_group_passes(imaptest: str, server: ServerProcess) -> None:
    result = run_scripted(imaptest, server.port("imap"), SCRIPTED_USER, PASSWORD)
    assert result.groups == 71, result.output[-3000:]
    assert result.failed == 0, f"{result.failed} imaptest groups failed:\n{result.failure_lines()}"
    assert result.skipped == 0, result.output[-3000:]


def test_groups_left_out_need_capabilities_mailcove_does_not_claim(server: ServerProcess) -> None:
    """imaptest passes a group whose capability is not advertised without running it: the only
    groups allowed to pass that way are the ones issue 12 leaves out, so mailcove must not
    advertise what they need (or they would run, and must pass)."""
    c = imaplib.IMAP4(*server.address("imap"))
    try:
        c.login(SCRIPTED_USER, PASSWORD)
        caps = {cap.upper() for cap in c.capabilities}
    finally:
        c.logout()
    claimed = sorted(set(OUT_OF_SCOPE.values()) & caps)
    assert not claimed, f"advertised but its imaptest groups are not held to pass: {claimed}"


def test_stress_gives_no_errors_and_dovecot_is_the_control(imaptest: str, server: ServerProcess,
                                                           tmp_path: Path) -> None:
    if dovecot_binary() is None:
        require_tool("dovecot")
    mbox = sample_mbox(tmp_path / "sample.mbox")
    errors, output = run_stress(imaptest, server.port("imap"), "testuser%d@hamap.local", PASSWORD, mbox)
    done = totals(output)
    # The run did real work on shared mailboxes: appends, fetches, stores and expunges.
    assert all(done.get(k, 0) > 100 for k in ("Sele", "Fetc", "Stor", "Expu", "Appe")), output[-2000:]
    assert not errors, f"{len(errors)} imaptest stress errors against mailcove:\n" + "\n".join(errors[:60])
    with PrivateDovecot(users=STRESS_USERS) as dc:
        dc_errors, dc_output = run_stress(imaptest, dc.port, "testuser%d@hamap.local", PASSWORD, mbox)
    assert not dc_errors, "the control (Dovecot) gave errors: the harness is wrong\n" + "\n".join(dc_errors[:20])
    assert totals(dc_output).get("Fetc", 0) > 100, dc_output[-2000:]


def test_stress_with_two_worker_processes_gives_no_errors(imaptest: str, tmp_path: Path) -> None:
    """The same stress run against `serve --workers 2` (net/workers.py): the kernel spreads
    imaptest's 10 clients over two processes, which must agree on flags, expunges, MODSEQ and
    \\Recent through the store alone."""
    srv = start_mailcove(tmp_path / "srv", STRESS_USERS, workers=2)
    try:
        assert len(srv.state["workers"]) == 2, srv.state
        mbox = sample_mbox(tmp_path / "sample.mbox")
        errors, output = run_stress(imaptest, srv.port("imap"), "testuser%d@hamap.local", PASSWORD, mbox)
        done = totals(output)
        trouble = _server_trouble(srv)
        assert all(done.get(k, 0) > 100 for k in ("Sele", "Fetc", "Stor", "Expu", "Appe")), (
            output[-2000:] + "\n" + "\n".join(errors[:20]) + "\nserver warnings and errors:\n" + trouble)
        assert not errors, (f"{len(errors)} imaptest stress errors with two workers:\n" + "\n".join(errors[:60])
                            + "\nserver warnings and errors:\n" + trouble)
    finally:
        srv.stop()


def _server_trouble(srv: ServerProcess) -> str:
    """The server's WARNING and ERROR lines and tracebacks (a failed run's first clue; once in
    test-interop logins slowed to seconds each and the run stalled, with nothing else to go on)."""
    lines = [ln for ln in srv.logs().splitlines()
             if " WARNING " in ln or " ERROR " in ln or ln.startswith(("Traceback", "  File", "    "))]
    return "\n".join(lines[-60:])
