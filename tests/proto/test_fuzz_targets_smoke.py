"""The fuzz targets of `make fuzz` (fuzz/, docs/fuzzing.md) run briefly in the normal suite, so they
cannot rot: each target's seed sessions and a few hundred libFuzzer-style mutations of them go
through the same `one_input` that atheris drives, by the replay path (no atheris needed, so this
never skips). Every input must finish without a finding and within the fuzzer's hang limit."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, where fuzz/ lives

from fuzz import targets
from fuzz.common import libfuzzer_dict, split
from fuzz.replay import HANG_SECONDS, mutations, run

MUTATIONS = 300


@pytest.mark.parametrize("name", targets.NAMES)
def test_target_takes_its_seeds_and_their_mutations(name: str) -> None:
    spec = targets.load(name)
    inputs = [*spec.SEEDS, *mutations(spec.SEEDS, spec.TOKENS, MUTATIONS, random.Random(f"smoke {name}"))]
    out = run(spec.one_input, inputs)
    assert not out.crashes, f"{out.crashes[0][0][:300]!r}\n{out.crashes[0][1]}"
    assert not out.hangs, out.hangs[0]
    assert out.inputs == len(inputs) and out.slowest < HANG_SECONDS


@pytest.mark.parametrize("name", targets.NAMES)
def test_target_names_existing_parser_modules(name: str) -> None:
    spec = targets.load(name)
    root = Path(__file__).resolve().parents[2]
    assert spec.MODULES and all((root / m).is_file() for m in spec.MODULES)
    assert spec.INSTRUMENT and spec.TOKENS and len(spec.SEEDS) >= 5


def test_input_layout_and_dictionary() -> None:
    policy, reads = split(bytes([5, 3]) + b"abcdefg")
    assert policy == 5 and list(reads) == [b"abc", b"def", b"g"]
    assert list(split(b"\x01\x00xyz")[1]) == [b"xyz"]
    assert libfuzzer_dict([b'a"b\\', b"\r\n"]) == 'kw0="a\\x22b\\x5C"\nkw1="\\x0D\\x0A"\n'
