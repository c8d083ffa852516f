"""System users ([directory] users = "system") against REAL Unix accounts made with useradd.

Root only (they create accounts); skipped on a developer machine, never skipped under CI=true.
The server-level tests (IMAP, POP3, SMTP AUTH, an unprivileged server) are in
tests/e2e/test_system_users.py; the pure parts (.forward parsing, login.defs) in
test_system_users_pure.py.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mailcove.core.clock import FakeClock
from mailcove.delivery import resolve as delivery_resolve
from mailcove.directory import Alias, DirectoryError, Invalid, Local, Remote, UnknownUser
from mailcove.directory.system import SystemAccounts, SystemDirectory, login_defs_range
from mailcove.store.sqlite.store import SqliteStore
from system_users_testing import UnixUsers, unix_users_fixture

from .conftest import FAST

# Runs under the lock every test worker shares (mailcove_testing.host_state_lock): this module
# creates Unix accounts (useradd locks /etc/passwd).
pytestmark = pytest.mark.host_state

PW = "It1-Unix"
LO, HI = login_defs_range()

@pytest.fixture
def unix_users() -> Iterator[UnixUsers]:
    yield from unix_users_fixture()


@pytest.fixture
async def make_system(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    made: list[SystemDirectory] = []

    async def make(**kw: Any) -> SystemDirectory:
        allow = kw.pop("allow", ())
        kw.setdefault("accounts", SystemAccounts(LO, HI, tuple(allow), ttl=0))
        kw.setdefault("auth", FAST)
        d = SystemDirectory(tmp_path / f"directory{len(made)}.db", **kw)
        await d.start()
        made.append(d)
        if not await d.list_domains():
            await d.add_domain("hamap.local")
            await d.add_domain("rocky9-3", alias_of="hamap.local")
            await d.add_domain("other.example")
        return d

    yield make
    for d in made:
        await d.close()


@pytest.mark.parametrize("mode", ["pam", "shadow"])
async def test_login_with_the_unix_password(unix_users: UnixUsers, make_system: Any, mode: str) -> None:
    unix_users.add("a")
    a = unix_users.name("a")
    d = await make_system(system_auth=mode)
    for login in (a, f"{a}@hamap.local", f"{a}@rocky9-3", f"{a}@other.example", a.upper()):
        p = await d.authenticate(login, PW)
        assert p is not None, login
        assert p.user == a  # one store account for every local domain
    assert (await d.authenticate(f"{a}@other.example", PW)).address == f"{a}@other.example"  # type: ignore[union-attr]
    assert (await d.authenticate(a, PW)).address == f"{a}@hamap.local"  # type: ignore[union-attr]
    assert await d.authenticate(a, "it1-unix") is None
    assert await d.authenticate(a, "") is None
    assert await d.authenticate(a, PW + "x" * 5000) is None
    assert await d.authenticate(f"{a}@elsewhere.example", PW) is None  # not a local domain
    assert await d.authenticate(unix_users.name("nobody"), PW) is None


@pytest.mark.parametrize("mode", ["pam", "shadow"])
async def test_non_ascii_password(unix_users: UnixUsers, make_system: Any, mode: str) -> None:
    unix_users.add("u", password="Pässwörd-ü")
    d = await make_system(system_auth=mode)
    assert await d.authenticate(unix_users.name("u"), "Pässwörd-ü") is not None
    assert await d.authenticate(unix_users.name("u"), "Passwort-u") is None
    assert await d.authenticate(unix_users.name("u"), "P\udcc3\udca4sswörd-ü") is not None  # raw bytes kept
    assert await d.authenticate(unix_users.name("u"), "\ud800") is None  # a lone surrogate: no error


async def test_shadow_mode_checks_sha512_too(unix_users: UnixUsers, make_system: Any) -> None:
    unix_users.add("s", crypt_method="SHA512")
    assert Path("/etc/shadow").read_text().count(f"{unix_users.name('s')}:$6$") == 1
    d = await make_system(system_auth="shadow")
    assert await d.authenticate(unix_users.name("s"), PW) is not None
    assert await d.authenticate(unix_users.name("s"), "wrong") is None


@pytest.mark.parametrize("mode", ["pam", "shadow"])
async def test_system_accounts_and_root_are_not_mail_users(
    unix_users: UnixUsers, make_system: Any, mode: str
) -> None:
    pw = unix_users.add("svc", system=True)
    assert pw.pw_uid < LO
    svc = unix_users.name("svc")
    d = await make_system(system_auth=mode)
    assert await d.authenticate(svc, PW) is None
    assert isinstance(await d.resolve(f"{svc}@hamap.local"), Invalid)
    # Listed in system_users_allow, it is one; root never is, even listed.
    d2 = await make_system(system_auth=mode, allow=(svc, "root"))
    assert (await d2.authenticate(svc, PW)) is not None
    assert await d2.resolve(f"{svc}@hamap.local") == Local(svc)
    assert isinstance(await d2.resolve("root@hamap.local"), Invalid)
    assert await d2.authenticate("root", PW) is None


@pytest.mark.parametrize("mode", ["pam", "shadow"])
async def test_locked_and_expired_accounts_cannot_log_in(
    unix_users: UnixUsers, make_system: Any, mode: str
) -> None:
    unix_users.add("l")
    unix_users.add("e")
    lname, ename = unix_users.name("l"), unix_users.name("e")
    d = await make_system(system_auth=mode)
    assert await d.authenticate(lname, PW) is not None  # a success is now in the verify cache
    unix_users.run("usermod", "-L", lname)
    assert await d.authenticate(lname, PW) is None  # the lock ends the cached login at once
    unix_users.run("usermod", "-U", lname)
    assert await d.authenticate(lname, PW) is not None
    unix_users.run("chage", "-E", "1970-01-02", ename)
    assert await d.authenticate(ename, PW) is None
    # Mail to them is still accepted, as Sendmail does for a locked account.
    assert await d.resolve(f"{lname}@hamap.local") == Local(lname)


@pytest.fixture
def slow_pam_service(unix_users: UnixUsers, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A PAM service whose auth stack first waits (pam_exec) until the test creates a file: a PAM
    stack stuck on a slow LDAP server, released at a moment the test chooses (at most 30 s)."""
    gate = tmp_path / "release"
    script = tmp_path / "wait.sh"
    script.write_text(f"#!/bin/sh\nfor i in $(seq 600); do [ -e {gate} ] && exit 0; sleep 0.05; done\nexit 0\n")
    script.chmod(0o755)
    name = f"{unix_users.prefix}-slow"
    path = Path("/etc/pam.d") / name
    path.write_text(f"auth required pam_exec.so quiet {script}\n@include common-auth\n@include common-account\n")
    try:
        yield name, gate
    finally:
        path.unlink(missing_ok=True)


async def test_a_slow_pam_stack_does_not_block_the_server(
    unix_users: UnixUsers, make_system: Any, slow_pam_service: tuple[str, Path]
) -> None:
    service, gate = slow_pam_service
    unix_users.add("a")
    a = unix_users.name("a")
    d = await make_system(pam_service=service)
    login = asyncio.ensure_future(d.authenticate(a, PW))
    await asyncio.sleep(0.05)  # the login is now waiting in PAM, in a verify-pool thread
    # Meanwhile the event loop answers other work: a recipient lookup and a refused login.
    assert await d.resolve(f"{a}@hamap.local") == Local(a)
    assert await d.authenticate("root", PW) is None
    assert not login.done()
    gate.touch()
    assert (await login) is not None


async def test_password_change_ends_a_cached_login(unix_users: UnixUsers, make_system: Any) -> None:
    unix_users.add("c")
    c = unix_users.name("c")
    d = await make_system(system_auth="pam")
    assert await d.authenticate(c, PW) is not None
    unix_users.set_password("c", "New-Pass-2")
    assert await d.authenticate(c, PW) is None
    assert await d.authenticate(c, "New-Pass-2") is not None


async def test_failures_count_towards_the_shared_throttle(unix_users: UnixUsers, make_system: Any) -> None:
    unix_users.add("t")
    t = unix_users.name("t")
    clock = FakeClock()
    d = await make_system(system_auth="pam", clock=clock)
    d.throttle.max_failures = 3
    # Each failure is answered after the shared throttle's delay, on the directory's clock (PAM's
    # own 2 s failure delay is taken over: pam_auth.py).
    for delay in (0.5, 1.0, 5.0):
        login = asyncio.create_task(d.authenticate(t, "wrong", client_ip="127.0.0.9"))
        await clock.waiting(delay)
        assert not login.done()
        await clock.advance(delay)
        assert await login is None
    assert not d.throttle.check("127.0.0.9").allowed
    # Throttled: even the right password is refused from that address, without asking PAM.
    assert await d.authenticate(t, PW, client_ip="127.0.0.9") is None
    assert await d.authenticate(t, PW, client_ip="127.0.0.10") is not None


async def test_resolve(unix_users: UnixUsers, make_system: Any) -> None:
    unix_users.add("a")
    unix_users.add("b")
    a, b = unix_users.name("a"), unix_users.name("b")
    d = await make_system()
    assert await d.resolve(f"{a}@hamap.local") == Local(a)
    assert await d.resolve(f"{a}@rocky9-3") == Local(a)
    assert await d.resolve(f"{a}@other.example") == Local(a)
    assert await d.resolve(f"{a.upper()}@HAMAP.LOCAL") == Local(a)
    assert await d.resolve(f"{a}+lists@hamap.local") == Local(a, detail="lists")
    assert isinstance(await d.resolve(f"{unix_users.name('zz')}@hamap.local"), Invalid)
    assert await d.resolve("x@remote.example") == Remote("x@remote.example")
    # The mailcove directory's aliases still apply, and point at system users.
    await d.add_alias("team@hamap.local", [f"{a}@hamap.local", f"{b}@other.example", "x@remote.example"])
    await asyncio.sleep(0)
    res = await d.resolve("team@hamap.local")
    assert isinstance(res, Alias) and set(res.targets) == {Local(a), Local(b), Remote("x@remote.example")}


async def test_user_admin_commands_point_at_useradd(unix_users: UnixUsers, make_system: Any) -> None:
    unix_users.add("a")
    unix_users.add("svc", system=True)
    a = unix_users.name("a")
    d = await make_system()
    names = [u.address for u in await d.list_users()]
    assert a in names and unix_users.name("svc") not in names and "root" not in names
    assert await d.user_key(f"{a}@rocky9-3") == a  # `mailcove user quota a@rocky9-3 ...` finds the account
    with pytest.raises(UnknownUser):
        await d.user_key(f"{unix_users.name('svc')}@hamap.local")
    with pytest.raises(DirectoryError, match="useradd"):
        await d.add_user("x@hamap.local", "pw")
    with pytest.raises(DirectoryError, match="passwd"):
        await d.set_password("x@hamap.local", "pw")


async def test_store_account_made_on_first_delivery_and_login(
    unix_users: UnixUsers, make_system: Any, tmp_path: Path
) -> None:
    unix_users.add("a")
    unix_users.add("b")
    a, b = unix_users.name("a"), unix_users.name("b")
    store = SqliteStore(tmp_path / "store")
    await store.start()
    try:
        d = await make_system(store=store)
        assert not await store.account_exists(a)
        assert await d.resolve(f"{a}@hamap.local") == Local(a)
        assert await store.account_exists(a)
        assert await d.authenticate(b, PW) is not None
        assert await store.account_exists(b)
        assert not await store.account_exists(unix_users.name("zz"))
    finally:
        await store.close()


# --- ~/.forward --------------------------------------------------------------------------------


async def test_forward_to_another_local_user(unix_users: UnixUsers, make_system: Any) -> None:
    unix_users.add("a")
    unix_users.add("b")
    a, b = unix_users.name("a"), unix_users.name("b")
    unix_users.write_forward("a", f"# to b now\n{b}\n")
    d = await make_system()
    assert await delivery_resolve(d, f"{a}@hamap.local") == Alias((Local(b),))
    # The directory itself still says a owns a@ (SMTP's MAIL FROM check): forwarding is delivery's.
    assert await d.resolve(f"{a}@hamap.local") == Local(a)
    # \a keeps a copy without forwarding again; a remote address is relayed (SRS by the queue).
    unix_users.write_forward("a", f"\\{a}, x@remote.example\n")
    res = await delivery_resolve(d, f"{a}@hamap.local")
    assert isinstance(res, Alias) and set(res.targets) == {Local(a), Remote("x@remote.example")}
    # The plain name of the owner keeps a copy too (Sendmail's self-reference), and b's own
    # .forward is followed.
    unix_users.write_forward("a", f"{a}, {b}@other.example\n")
    unix_users.write_forward("b", "y@remote.example\n")
    res = await delivery_resolve(d, f"{a}@hamap.local")
    assert isinstance(res, Alias) and set(res.targets) == {Local(a), Remote("y@remote.example")}


async def test_forward_to_someone_already_receiving(unix_users: UnixUsers, make_system: Any) -> None:
    unix_users.add("a")
    unix_users.add("b")
    a, b = unix_users.name("a"), unix_users.name("b")
    unix_users.write_forward("a", f"{b}\n")
    d = await make_system()
    await d.add_alias("team@hamap.local", [f"{b}@hamap.local", f"{a}@hamap.local"])
    # b is already a recipient; a's mail goes to b, so a's mailbox gets no copy and b gets one.
    assert await delivery_resolve(d, "team@hamap.local") == Alias((Local(b),))


async def test_forward_loops_end(unix_users: UnixUsers, make_system: Any) -> None:
    unix_users.add("a")
    unix_users.add("b")
    a, b = unix_users.name("a"), unix_users.name("b")
    unix_users.write_forward("a", f"{b}\n")
    unix_users.write_forward("b", f"{a}\n")
    d = await make_system()
    # a -> b -> a: the loop stops at a, whose mailbox gets the mail (Sendmail does the same).
    assert await delivery_resolve(d, f"{a}@hamap.local") == Local(a)
    assert await delivery_resolve(d, f"{b}@hamap.local") == Local(b)


@pytest.mark.parametrize("unsafe", ["group-writable", "world-writable", "foreign-owner", "symlink", "home-writable"])
async def test_unsafe_forward_is_ignored(unix_users: UnixUsers, make_system: Any, unsafe: str) -> None:
    unix_users.add("a")
    unix_users.add("b")
    unix_users.add("m")
    a, b = unix_users.name("a"), unix_users.name("b")
    path = unix_users.write_forward("a", f"{b}\n")
    if unsafe == "group-writable":
        path.chmod(0o664)
    elif unsafe == "world-writable":
        path.chmod(0o646)
    elif unsafe == "foreign-owner":
        m = unix_users.home("m")
        os.chown(path, os.stat(m).st_uid, -1)
    elif unsafe == "symlink":
        target = unix_users.home("a") / "fwd.txt"
        path.rename(target)
        path.symlink_to(target)
    else:
        unix_users.home("a").chmod(0o777)
    d = await make_system()
    assert await delivery_resolve(d, f"{a}@hamap.local") == Local(a)


async def test_program_and_file_entries_are_not_run(unix_users: UnixUsers, make_system: Any, tmp_path: Path) -> None:
    unix_users.add("a")
    unix_users.add("b")
    a, b = unix_users.name("a"), unix_users.name("b")
    marker = tmp_path / "ran"
    unix_users.write_forward("a", f'"|/usr/bin/touch {marker}"\n')
    d = await make_system()
    assert await delivery_resolve(d, f"{a}@hamap.local") == Local(a)  # nothing usable: the mailbox
    unix_users.write_forward("a", f"|/usr/bin/touch {marker}, /tmp/{a}.mbox, {b}\n")
    assert await delivery_resolve(d, f"{a}@hamap.local") == Alias((Local(b),))
    assert not marker.exists() and not Path(f"/tmp/{a}.mbox").exists()


async def test_forward_off(unix_users: UnixUsers, make_system: Any) -> None:
    unix_users.add("a")
    unix_users.add("b")
    unix_users.write_forward("a", f"{unix_users.name('b')}\n")
    d = await make_system(forward=False)
    assert await delivery_resolve(d, f"{unix_users.name('a')}@hamap.local") == Local(unix_users.name("a"))


def test_config_shorthand_builds_a_system_directory(tmp_path: Path) -> None:
    from mailcove.config import load_settings
    from mailcove.directory import open_directory

    cfg = tmp_path / "m.toml"
    cfg.write_text('directory = "system"\n')
    s = load_settings(cfg, data_dir=str(tmp_path / "d"))
    assert s.directory.users == "system"
    assert isinstance(open_directory(s), SystemDirectory)
    cfg.write_text('[directory]\nusers = "mailcove"\n')
    assert not isinstance(open_directory(load_settings(cfg)), SystemDirectory)


def test_pam_is_not_slowed_by_the_failure_delay(unix_users: UnixUsers) -> None:
    """pam_unix asks for a 2 s delay after a failure; our binding takes the delay over (the throttle
    delays instead), so a wrong password does not hold a verify-pool thread for seconds."""
    from mailcove.directory.pam_auth import pam_check

    unix_users.add("p")
    ok = pam_check("mailcove", unix_users.name("p"), PW, "127.0.0.1")
    bad = pam_check("mailcove", unix_users.name("p"), "wrong", "127.0.0.1")
    assert ok.ok and not bad.ok and bad.step == "authenticate"
