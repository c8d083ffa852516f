from __future__ import annotations

import json

from .conftest import Cli


def test_domain_add_list_del(cli: Cli) -> None:
    r = cli("domain", "list")
    assert r.exit_code == 0 and "no domains" in r.stdout
    assert cli("domain", "add", "Hamap.Local").stdout.strip() == "added domain hamap.local"
    r = cli("domain", "add", "rocky9-3", "--alias-of", "hamap.local")
    assert r.exit_code == 0 and "alias of hamap.local" in r.stdout
    r = cli("domain", "list", "--json")
    assert json.loads(r.stdout) == [
        {"name": "hamap.local", "alias_of": None},
        {"name": "rocky9-3", "alias_of": "hamap.local"},
    ]
    r = cli("domain", "list")
    assert "hamap.local" in r.stdout and "rocky9-3" in r.stdout
    assert cli("domain", "del", "rocky9-3").exit_code == 0
    assert [d["name"] for d in json.loads(cli("domain", "list", "--json").stdout)] == ["hamap.local"]
    assert (cli.data / "directory.db").exists()
    assert oct(cli.data.stat().st_mode & 0o777) == "0o700"


def test_domain_errors(cli: Cli) -> None:
    cli("domain", "add", "hamap.local")
    r = cli("domain", "add", "hamap.local")
    assert r.exit_code == 1 and r.stderr.strip() == "mailcove: domain already exists: hamap.local"
    r = cli("domain", "add", "x.example", "--alias-of", "nowhere.example")
    assert r.exit_code == 1 and "unknown domain: nowhere.example" in r.stderr
    r = cli("domain", "add", "bad..domain")
    assert r.exit_code == 1 and "bad domain" in r.stderr
    r = cli("domain", "del", "nowhere.example")
    assert r.exit_code == 1 and "unknown domain" in r.stderr
    assert cli("domain", "add").exit_code == 2  # usage error


def test_domain_in_use_cannot_be_deleted(lab: Cli) -> None:
    r = lab("domain", "del", "hamap.local")
    assert r.exit_code == 1
    assert "2 user(s)" in r.stderr and "rocky9-3" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_alias_add_list_del(lab: Cli) -> None:
    r = lab("alias", "add", "team@rocky9-3", "a@hamap.local", "b@hamap.local", "x@partner.example")
    assert r.exit_code == 0 and r.stdout.startswith("team@hamap.local -> a@hamap.local, b@hamap.local")
    assert lab("alias", "add", "@hamap.local", "a@hamap.local").exit_code == 0
    rows = json.loads(lab("alias", "list", "--json").stdout)
    assert rows == [
        {"source": "@hamap.local", "targets": ["a@hamap.local"]},
        {"source": "team@hamap.local", "targets": ["a@hamap.local", "b@hamap.local", "x@partner.example"]},
    ]
    assert "team@hamap.local" in lab("alias", "list").stdout
    r = lab("alias", "del", "team@hamap.local", "x@partner.example")
    assert r.exit_code == 0 and "x@partner.example" not in r.stdout
    assert lab("alias", "del", "@hamap.local").exit_code == 0
    r = lab("alias", "del", "@hamap.local")
    assert r.exit_code == 1 and "unknown alias: @hamap.local" in r.stderr
    r = lab("alias", "add", "x@nowhere.example", "a@hamap.local")
    assert r.exit_code == 1 and "unknown domain" in r.stderr
    r = lab("alias", "add", "x@hamap.local", "not-an-address")
    assert r.exit_code == 1 and "bad address syntax" in r.stderr
    assert lab("alias", "add", "x@hamap.local").exit_code == 2  # no targets
