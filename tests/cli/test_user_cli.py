from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from mailcove.config import load_settings
from mailcove.directory import SqliteDirectory
from mailcove.store.api import DEFAULT_MAILBOXES

from .conftest import Cli


def _login(cli: Cli, user: str, password: str) -> bool:
    async def main() -> bool:
        settings = load_settings(cli.config, data_dir=str(cli.data))
        async with SqliteDirectory.from_settings(settings) as d:
            return await d.authenticate(user, password) is not None

    return asyncio.run(main())


def _mailboxes(cli: Cli, user: str) -> list[str]:
    async def main() -> list[str]:
        from mailcove.admin.context import _open_store

        store = _open_store(load_settings(cli.config, data_dir=str(cli.data)))
        await store.start()
        try:
            return [m.name for m in await store.list_mailboxes(user)]
        finally:
            await store.close()

    return asyncio.run(main())


def test_user_add_creates_login_and_mailboxes(lab: Cli) -> None:
    assert _login(lab, "a", "It1") and _login(lab, "b@rocky9-3", "It1")
    assert not _login(lab, "a", "wrong")
    assert sorted(_mailboxes(lab, "a@hamap.local")) == sorted(n for n, _ in DEFAULT_MAILBOXES)


def test_password_never_echoed_or_stored(cli: Cli) -> None:
    cli("domain", "add", "hamap.local")
    r = cli("user", "add", "a@hamap.local", "--password-stdin", input="S3cret-Pass\n")
    assert r.exit_code == 0 and "S3cret-Pass" not in r.output
    for f in cli.data.rglob("*"):
        if f.is_file():
            assert b"S3cret-Pass" not in f.read_bytes(), f


def test_user_add_prompt_twice(cli: Cli) -> None:
    cli("domain", "add", "hamap.local")
    r = cli("user", "add", "a@hamap.local", input="pw1\npw1\n")
    assert r.exit_code == 0, r.output
    assert "pw1" not in r.output
    assert _login(cli, "a@hamap.local", "pw1")
    r = cli("user", "add", "b@hamap.local", input="pw1\npw2\npw3\npw3\n")  # mismatch, then asked again
    assert r.exit_code == 0 and _login(cli, "b@hamap.local", "pw3")


def test_password_file_and_passwd(lab: Cli, tmp_path: Path) -> None:
    pwfile = tmp_path / "pw"
    pwfile.write_text("FromFile9\n")
    r = lab("user", "add", "c@hamap.local", "--password-file", str(pwfile))
    assert r.exit_code == 0 and _login(lab, "c", "FromFile9")
    r = lab("user", "passwd", "c@rocky9-3", "--password-stdin", input="Changed1\n")
    assert r.exit_code == 0 and "c@hamap.local" in r.stdout
    assert _login(lab, "c", "Changed1") and not _login(lab, "c", "FromFile9")
    r = lab("user", "passwd", "nobody@hamap.local", "--password-stdin", input="x\n")
    assert r.exit_code == 1 and "unknown user: nobody@hamap.local" in r.stderr
    r = lab("user", "add", "d@hamap.local", "--password-file", str(tmp_path / "missing"))
    assert r.exit_code == 1 and "cannot read the password file" in r.stderr


def test_user_list_json_with_quota(lab: Cli) -> None:
    args = ("q@hamap.local", "--password-stdin", "--quota", "100M", "--quota-messages", "50")
    r = lab("user", "add", *args, input="x\n")
    assert r.exit_code == 0, r.output
    rows = {u["address"]: u for u in json.loads(lab("user", "list", "--json").stdout)}
    assert set(rows) == {"a@hamap.local", "b@hamap.local", "q@hamap.local"}
    assert rows["q@hamap.local"]["quota_bytes"] == 100 * 1024 * 1024
    assert rows["q@hamap.local"]["quota_messages"] == 50
    assert rows["a@hamap.local"]["used_bytes"] == 0 and rows["a@hamap.local"]["disabled"] is False
    table = lab("user", "list").stdout
    assert "q@hamap.local" in table and "100M" in table
    r = lab("user", "quota", "q@hamap.local", "--bytes", "1G")
    assert r.exit_code == 0 and "1G" in r.stdout
    assert lab("user", "add", "z@hamap.local", "--password-stdin", "--quota", "lots", input="x\n").exit_code == 2


def test_disable_enable(lab: Cli) -> None:
    assert lab("user", "disable", "a@rocky9-3").stdout.strip() == "disabled a@hamap.local"
    assert not _login(lab, "a", "It1")
    rows = {u["address"]: u for u in json.loads(lab("user", "list", "--json").stdout)}
    assert rows["a@hamap.local"]["disabled"] is True
    assert lab("user", "enable", "a@hamap.local").exit_code == 0
    assert _login(lab, "a", "It1")


def test_user_del_removes_login_and_mail(lab: Cli) -> None:
    assert lab("user", "del", "b@hamap.local").exit_code == 0
    assert not _login(lab, "b", "It1")
    assert _mailboxes(lab, "b@hamap.local") == []
    r = lab("user", "del", "b@hamap.local")
    assert r.exit_code == 1 and "unknown user" in r.stderr


def test_user_errors(lab: Cli) -> None:
    r = lab("user", "add", "a@hamap.local", "--password-stdin", input="x\n")
    assert r.exit_code == 1 and r.stderr.strip() == "mailcove: user already exists: a@hamap.local"
    r = lab("user", "add", "x@nowhere.example", "--password-stdin", input="x\n")
    assert r.exit_code == 1 and "unknown domain: nowhere.example" in r.stderr
    r = lab("user", "add", "no-at-sign", "--password-stdin", input="x\n")
    assert r.exit_code == 1 and "bad address syntax" in r.stderr
    r = lab("user", "add", "e@hamap.local", "--password-stdin", input="\n")
    assert r.exit_code == 1 and "must not be empty" in r.stderr
    r = lab("user", "add", "e@hamap.local", "--password-stdin", "--password-file", "f")
    assert r.exit_code == 2


def test_real_process_python_m_mailcove(lab: Cli) -> None:
    """The whole path, as a script would run it."""
    base = [sys.executable, "-m", "mailcove", "--config", str(lab.config), "--data", str(lab.data)]
    p = subprocess.run([*base, "user", "add", "s@hamap.local", "--password-stdin"], input="Pw1\n",
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    p = subprocess.run([*base, "user", "list", "--json"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "s@hamap.local" in [u["address"] for u in json.loads(p.stdout)]
    p = subprocess.run([*base, "user", "add", "s@hamap.local", "--password-stdin"], input="Pw1\n",
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and p.stderr.strip() == "mailcove: user already exists: s@hamap.local"
    assert "Traceback" not in p.stderr
