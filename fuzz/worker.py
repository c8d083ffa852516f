"""One target under atheris: ``python -m fuzz.worker TARGET [libFuzzer flags] CORPUS_DIR [SEED_DIR]``.

libFuzzer owns the process from here on: it stops after -runs, on the first crash (an exception
out of the target: atheris prints the traceback and writes crash-<sha1> under -artifact_prefix),
or on a hang (-timeout seconds for one input: timeout-<sha1>). `fuzz.__main__` starts this once per
target and reads its output."""

from __future__ import annotations

import sys


def main(argv: list[str]) -> None:
    import atheris

    from fuzz import targets

    name = argv[1]
    # Feed str/bytes startswith and endswith back to libFuzzer as comparisons to solve (they run
    # in C and are not instrumented). Not atheris's "RegEx" hook: its proxy takes no pos/endpos,
    # which the parsers pass to Pattern.match everywhere.
    atheris.enabled_hooks.add("str")
    spec = targets.load(name)  # the target module itself is not instrumented, only the parser's
    with atheris.instrument_imports(include=spec.INSTRUMENT):
        import importlib

        # Re-import the parser's modules under instrumentation: the target imported them first.
        for mod in [m for m in list(sys.modules) if any(m == p or m.startswith(p + ".") for p in spec.INSTRUMENT)]:
            del sys.modules[mod]
        importlib.reload(spec)
    atheris.Setup([argv[0], *argv[2:]], spec.one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
