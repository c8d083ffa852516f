"""Issue 13 part 2, the functional side of the fairness rule: every attack of bench/fairness.py,
at reduced sizes (`--small`: 5,000 messages for SORT/THREAD/SEARCH/STORE/POP3, 500 deep messages,
1,000 mailboxes, 200 IDLE sessions, 8 MB DATA and APPEND), runs against one real `mailcove serve`
while a probe process times the SMTP banner, an IMAP NOOP and a POP3 STAT served by the same
process. Each attack must leave every probe under 2 s, so a gross stall of the event loop fails
here.

The 250 ms p99 figure itself is measured by the bench only (`make fairness`, docs/fairness.md):
performance is measured in bench/, never in timed tests on a shared CI machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from bench.fairness import ATTACK_NAMES  # noqa: E402

pytestmark = pytest.mark.timeout(1200)  # the module's one run of the harness counts against its first test

WORST_PROBE = 2.0  # seconds; the bench's own bound is 1 s, with 250 ms of added p99
PROBES = 25  # of each kind per attack


@pytest.fixture(scope="module")
def fairness_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("fairness")
    result = out / "result.json"
    path = os.pathsep.join([str(REPO), str(REPO / "src"), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    proc = subprocess.run(
        [sys.executable, "-m", "bench.fairness", "--small", "--probes", str(PROBES), "--no-p99",
         "--max-worst", str(WORST_PROBE), "--max-phase", "120", "--dir", str(out / "work"), "--json", str(result)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )
    if not result.exists():
        pytest.fail(f"bench/fairness produced no result ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-5000:]}")
    data = json.loads(result.read_text())
    data["log"] = proc.stdout + proc.stderr[-5000:]
    return data


def test_the_server_survived(fairness_run: dict[str, Any]) -> None:
    assert fairness_run["server_exit"] is None, fairness_run["log"]
    assert [r["attack"] for r in fairness_run["rows"]] == list(ATTACK_NAMES)


@pytest.mark.parametrize("attack", ATTACK_NAMES)
def test_no_attack_stalls_the_other_clients(fairness_run: dict[str, Any], attack: str) -> None:
    row = next(r for r in fairness_run["rows"] if r["attack"] == attack)
    assert row["reps"] >= 1 and not any(n.startswith(("failed", "attack failed")) for n in row["notes"]), row
    assert row["worst"] < WORST_PROBE, (
        f"{attack} ({row['command']}): a {row['worst_kind']} probe took {row['worst']:.2f} s "
        f"(load {row['load']:.2f}); per kind: {row['per_kind']}"
    )
    assert row["ok"], row
