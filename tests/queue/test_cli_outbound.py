"""`mailcove dkim generate`, `mailcove dns`, `mailcove queue list|show|retry|delete|flush`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import dkim
import pytest
from click.testing import CliRunner

from mailcove.cli.main import root
from mailcove.config import load_settings
from mailcove.queue.dkim import load_keys, sign
from mailcove.store.api import OutboundEnvelope, OutboundRecipient
from mailcove.store.factory import open_store


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    cfg = tmp_path / "m.toml"
    cfg.write_text('hostname = "mx.a.test"\n')
    (tmp_path / "data").mkdir(mode=0o700)  # only setup and serve create a missing data dir
    return cfg, tmp_path / "data"


def run(setup: tuple[Path, Path], *args: str, code: int = 0) -> str:
    cfg, data = setup
    r = CliRunner().invoke(root, ["--config", str(cfg), "--data", str(data), *args])
    assert r.exit_code == code, r.output
    return r.output


def txt_value(line: str) -> str:
    return "".join(re.findall(r'"([^"]*)"', line))


def test_dkim_generate_prints_split_records_that_verify(setup: tuple[Path, Path]) -> None:
    out = run(setup, "dkim", "generate", "a.test")
    lines = [ln for ln in out.splitlines() if not ln.startswith(";")]
    assert len(lines) == 2
    rsa, ed = lines
    assert rsa.startswith('mailcove._domainkey.a.test. IN TXT ( "v=DKIM1; k=rsa; p=')
    strings = re.findall(r'"([^"]*)"', rsa)
    assert len(strings) >= 2 and all(len(s) <= 255 for s in strings)  # RSA-2048 does not fit one string
    assert ed.startswith('mailcove-ed25519._domainkey.a.test. IN TXT "v=DKIM1; k=ed25519; p=')
    # generating again keeps the keys
    assert run(setup, "dkim", "generate", "a.test").splitlines()[-2:] == lines
    assert run(setup, "dkim", "show", "a.test").splitlines() == lines
    cfg, data = setup
    settings = load_settings(cfg, data_dir=str(data))
    records = {"mailcove._domainkey.a.test.": txt_value(rsa), "mailcove-ed25519._domainkey.a.test.": txt_value(ed)}
    msg = b"From: a@a.test\r\nTo: b@b.test\r\nSubject: hi\r\nDate: Sat, 28 Nov 2026 00:00:00 +0000\r\n\r\nbody\r\n"
    signed = sign(msg, "a.test", load_keys(settings, "a.test")) + msg
    assert signed.count(b"DKIM-Signature:") == 2

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        return records.get(name.decode(), "").encode()

    d = dkim.DKIM(signed)
    assert d.verify(idx=0, dnsfunc=dnsfunc) and d.verify(idx=1, dnsfunc=dnsfunc)
    with pytest.raises(dkim.ValidationError, match="body hash mismatch"):
        dkim.DKIM(signed.replace(b"body", b"bodz")).verify(dnsfunc=dnsfunc)


def test_dns_prints_every_record(setup: tuple[Path, Path]) -> None:
    run(setup, "dkim", "generate", "a.test")
    run(setup, "dns", "a.test", code=1)  # not a local domain yet
    run(setup, "domain", "add", "a.test")
    out = run(setup, "dns", "a.test", "--address", "192.0.2.7")
    assert "a.test. IN MX 10 mx.a.test." in out
    assert "mx.a.test. IN A 192.0.2.7" in out
    assert 'a.test. IN TXT "v=spf1 mx -all"' in out
    assert "mailcove._domainkey.a.test. IN TXT" in out and "k=ed25519" in out
    assert '_dmarc.a.test. IN TXT "v=DMARC1; p=none' in out
    assert "_submissions._tcp.a.test. IN SRV 0 1 465 mx.a.test." in out
    assert "_imaps._tcp.a.test. IN SRV 0 1 993 mx.a.test." in out


def test_queue_commands(setup: tuple[Path, Path]) -> None:
    import asyncio

    cfg, data = setup
    settings = load_settings(cfg, data_dir=str(data))

    async def fill() -> list[int]:
        store = open_store(settings, watch_changes=False)
        await store.start()
        try:
            ids = []
            for i in range(2):
                env = OutboundEnvelope("a@a.test", (OutboundRecipient(f"x{i}@remote.test"),), envid=f"E{i}")
                ids.append((await store.submit(b"Subject: q%d\r\n\r\nbody\r\n" % i, [], env)).queue_id)
            await store.queue_claim(9e12, 10.0, 1)  # the first is leased far into the future
            return ids
        finally:
            await store.close()

    ids = asyncio.run(fill())
    listing = json.loads(run(setup, "queue", "list", "--json"))
    assert [i["id"] for i in listing] == ids
    shown = run(setup, "queue", "show", str(ids[0]))
    assert "sender:    <a@a.test>" in shown and "<x0@remote.test> queued" in shown and "Subject: q0" in shown
    assert "body" not in shown
    assert json.loads(run(setup, "queue", "show", "--json", str(ids[1])))["envid"] == "E1"
    assert "1 recipient due now" in run(setup, "queue", "retry", str(ids[0]))
    assert "2 recipients due now" in run(setup, "queue", "flush")
    assert "deleted 1 entry" in run(setup, "queue", "delete", str(ids[0]))
    assert [i["id"] for i in json.loads(run(setup, "queue", "list", "--json"))] == ids[1:]
    assert "no queue entry" in run(setup, "queue", "show", str(ids[0]), code=1)
