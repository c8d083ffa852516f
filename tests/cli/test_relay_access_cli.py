from __future__ import annotations

import asyncio
import json
from pathlib import Path

from mailcove.config import load_settings
from mailcove.directory import Action, SqliteDirectory

from .conftest import Cli

# The seed's /etc/mail/access, verbatim.
SEED_ACCESS = """\
Connect:10.0.0                    RELAY
Connect:10.0.0.0/255.255.255.0    RELAY
Connect:hamap.local               RELAY
Connect:mx1.hamap.local           RELAY
Connect:rocky9-3                  RELAY
"""


def _check(cli: Cli, ip: str, hostname: str | None = None) -> Action | None:
    async def main() -> Action | None:
        async with SqliteDirectory.from_settings(load_settings(cli.config, data_dir=str(cli.data))) as d:
            rule = await d.match_connect(ip, hostname)
            return rule.action if rule else None

    return asyncio.run(main())


def _relay(cli: Cli, ip: str, rcpt: str) -> bool:
    async def main() -> bool:
        async with SqliteDirectory.from_settings(load_settings(cli.config, data_dir=str(cli.data))) as d:
            d.relay_from_localhost = False
            return await d.relay_allowed(ip, rcpt)

    return asyncio.run(main())


def test_relay_allow_forms(cli: Cli) -> None:
    for args in (
        ("127.0.0.2",),
        ("10.1.0",),
        ("10.2.0.0/24",),
        ("10.3.0.0/255.255.255.0",),
        ("2001:db8::/32",),
        ("hamap.local",),
        ("--to", "partner.example"),
        ("--from", "boss@partner.example"),
    ):
        r = cli("relay", "allow", *args)
        assert r.exit_code == 0 and r.stdout.startswith("added:"), (args, r.output)
    assert cli("relay", "deny", "127.0.0.3").exit_code == 0
    assert cli("relay", "add", "Connect:1.2.3.4", "DISCARD").exit_code == 0
    assert cli("relay", "add", "127.0.0.5", "OK").exit_code == 0
    assert cli("relay", "add", "--from", "spam@bad.example", "ERROR:5.7.1:550 go away").exit_code == 0
    rules = json.loads(cli("relay", "list", "--json").stdout)
    by = {(r["tag"], r["pattern"]): r for r in rules}
    assert by[("Connect", "10.1.0")]["key"] == "10.1.0.0/24"
    assert by[("Connect", "127.0.0.3")]["action"] == "REJECT"
    assert by[("To", "partner.example")]["action"] == "RELAY"
    assert by[("From", "spam@bad.example")]["reply"] == "550 5.7.1 go away"
    assert _check(cli, "127.0.0.2") is Action.RELAY
    assert _check(cli, "10.3.0.9") is Action.RELAY
    assert _check(cli, "2001:db8::7") is Action.RELAY
    assert _check(cli, "127.0.0.3") is Action.REJECT
    assert _check(cli, "1.2.3.4") is Action.DISCARD
    assert _relay(cli, "127.0.0.2", "x@remote.example")
    assert not _relay(cli, "127.0.0.3", "x@remote.example")
    assert not _relay(cli, "127.0.0.5", "x@remote.example")  # OK is not RELAY
    assert _relay(cli, "127.0.0.9", "x@partner.example")
    assert "10.1.0" in cli("relay", "list").stdout


def test_relay_update_and_del(cli: Cli) -> None:
    cli("relay", "allow", "10.0.0")
    r = cli("relay", "deny", "10.0.0.0/24")
    assert r.stdout.startswith("updated:")
    assert len(json.loads(cli("relay", "list", "--json").stdout)) == 1
    assert cli("relay", "del", "10.0.0.0/255.255.255.0").exit_code == 0
    assert json.loads(cli("relay", "list", "--json").stdout) == []
    r = cli("relay", "del", "10.0.0")
    assert r.exit_code == 1 and "no access rule for Connect:10.0.0" in r.stderr
    cli("relay", "allow", "--to", "partner.example")
    assert cli("relay", "del", "partner.example").exit_code == 1  # that would be a Connect: rule
    assert cli("relay", "del", "--to", "partner.example").exit_code == 0


def test_relay_errors(cli: Cli) -> None:
    for args in (("allow", "10.0.0.0/40"), ("allow", "999.1.1"), ("add", "1.2.3.4", "MAYBE"),
                 ("add", "Spam:abuse@", "FRIEND"), ("allow", "--to", "--from", "x.example")):
        r = cli("relay", *args)
        assert r.exit_code == 2 and r.stderr.startswith("mailcove: ") and len(r.stderr.splitlines()) == 1, args


def test_access_import_seed(cli: Cli, tmp_path: Path) -> None:
    f = tmp_path / "access"
    f.write_text(SEED_ACCESS)
    r = cli("access", "import", str(f))
    assert r.exit_code == 0, r.output
    assert "imported 5 rule(s) (4 new, 1 updated)" in r.stdout  # 10.0.0 and its netmask form are one network
    rules = json.loads(cli("relay", "list", "--json").stdout)
    assert {(x["tag"], x["key"], x["action"]) for x in rules} == {
        ("Connect", "10.0.0.0/24", "RELAY"),
        ("Connect", "hamap.local", "RELAY"),
        ("Connect", "mx1.hamap.local", "RELAY"),
        ("Connect", "rocky9-3", "RELAY"),
    }
    assert _check(cli, "10.0.0.13") is Action.RELAY
    assert _relay(cli, "10.0.0.200", "x@remote.example")
    assert not _relay(cli, "10.0.1.1", "x@remote.example")


def test_access_import_reports_unmappable(cli: Cli, tmp_path: Path) -> None:
    f = tmp_path / "access"
    f.write_text(
        "# a Sendmail access file\n"
        "Connect:127.0.0.2   RELAY\n"
        "\n"
        "From:spammer@bad.example   ERROR:\"550 go away\"\n"
        "Spam:abuse@   FRIEND\n"
        "To:partner.example RELAY\n"
        "Connect:1.2.3.4   QUARANTINE:held for review\n"
        "bad.example   REJECT\n"
    )
    r = cli("access", "import", "--dry-run", str(f))
    assert r.exit_code == 1 and json.loads(cli("relay", "list", "--json").stdout) == []
    r = cli("access", "import", str(f))
    assert r.exit_code == 1
    problems = r.stderr.strip().splitlines()
    assert len(problems) == 2
    assert problems[0].startswith(f"mailcove: not imported: {f}:5: unsupported tag Spam:")
    assert problems[1].startswith(f"mailcove: not imported: {f}:7: unsupported action 'QUARANTINE'")
    assert "imported 4 rule(s)" in r.stdout and "2 line(s) could not be mapped" in r.stdout
    rules = json.loads(cli("relay", "list", "--json").stdout)
    assert {(x["tag"], x["key"]) for x in rules} == {
        ("Connect", "127.0.0.2/32"), ("From", "spammer@bad.example"), ("To", "partner.example"), (None, "bad.example")
    }
    # --replace starts from a clean table.
    g = tmp_path / "access2"
    g.write_text("Connect:127.0.0.9 OK\n")
    assert cli("access", "import", "--replace", str(g)).exit_code == 0
    assert [x["key"] for x in json.loads(cli("relay", "list", "--json").stdout)] == ["127.0.0.9/32"]
    r = cli("access", "import", str(tmp_path / "missing"))
    assert r.exit_code == 1 and "cannot read" in r.stderr
