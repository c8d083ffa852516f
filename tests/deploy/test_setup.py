"""`mailcove setup`: the one-command set-up behind docs/seed-lab.md (the end-to-end run is
tests/e2e/test_seed_lab.py); here its config merge, re-runs and refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

from mailcove_testing import REPO


def _cli(*args: str, stdin: str = "", config: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    env.pop("MAILCOVE_CONFIG", None)
    if config is not None:
        env["MAILCOVE_CONFIG"] = str(config)
    return subprocess.run([sys.executable, "-m", "mailcove", *args], input=stdin, capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=120)


def test_setup_merges_into_an_existing_config_and_can_run_again(tmp_path: Path) -> None:
    cfg = tmp_path / "mailcove.toml"
    cfg.write_text('# mine\n[log]\nlevel = "debug"\n\n[listen]\nsmtp = ["127.0.0.1:0"]\n')
    data = tmp_path / "data"
    args = ("--data", str(data), "setup", "hamap.local", "--hostname", "mx1.hamap.local", "--users", "a,b",
            "--password-stdin", "--lan", "10.0.0", "--lan", "10.0.0.0/255.255.255.0", "--lab")
    r = _cli(*args, stdin="It1\n", config=cfg)
    assert r.returncode == 0, r.stderr
    assert "added: user a@hamap.local" in r.stdout and "LAB MODE" in r.stdout
    text = cfg.read_text()
    assert text.startswith("# mine\n")
    conf = tomllib.loads(text)
    assert conf["log"] == {"level": "debug"}
    assert conf["listen"] == {"smtp": ["127.0.0.1:0"], "http": ["*"]}
    assert conf["hostname"] == "mx1.hamap.local" and conf["data_dir"] == str(data)
    assert conf["auth"]["allow_plaintext"] is True and conf["tls"]["enabled"] is False

    r = _cli(*args, stdin="It2\n", config=cfg)  # again, with a new password
    assert r.returncode == 0, r.stderr
    assert "password of a@hamap.local" in r.stdout
    domains = json.loads(_cli("domain", "list", "--json", config=cfg).stdout)
    assert {(d["name"], d["alias_of"]) for d in domains} == {("hamap.local", None),
                                                            ("mx1.hamap.local", "hamap.local")}
    rules = _cli("relay", "list", "--json", config=cfg).stdout
    assert "10.0.0" in rules
    users = json.loads(_cli("user", "list", "--json", config=cfg).stdout)
    assert sorted(u["address"] for u in users) == ["a@hamap.local", "b@hamap.local"]


def test_setup_refusals(tmp_path: Path) -> None:
    r = _cli("setup", "hamap.local", "--users", "a", "--password-stdin", stdin="It1\n")
    assert r.returncode == 2 and "give the config file to write" in r.stderr, r.stderr
    cfg = tmp_path / "m.toml"
    r = _cli("setup", "hamap.local", "--lan", "not a network!", config=cfg)
    assert r.returncode == 2, r.stderr
    assert not cfg.exists()
    r = _cli("setup", "hamap.local", "--users", "a", "--password-stdin", stdin="\n", config=cfg)
    assert r.returncode == 1 and "must not be empty" in r.stderr, r.stderr
