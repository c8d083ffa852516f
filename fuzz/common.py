"""What every target shares: the input layout and the finding type.

An input is two control bytes and a stream: ``data[0]`` picks policy choices (which replies the
simulated server gives: accept or refuse), ``data[1]`` how the stream is cut into reads (0: one
read; n: reads of n bytes, so every "half a line arrived" path runs too). The seeds are realistic
sessions with both control bytes 0, and libFuzzer mutates the control bytes like any other."""

from __future__ import annotations

from collections.abc import Iterator


class Finding(AssertionError):
    """The parser did something its contract excludes (a wrong event, a broken invariant). An
    unexpected exception from the parser itself is a finding too; it is simply not wrapped."""


def split(data: bytes) -> tuple[int, Iterator[bytes]]:
    """(policy bits, the stream's reads) of one fuzz input."""
    policy = data[0] if data else 0
    step = data[1] if len(data) > 1 else 0
    stream = data[2:]
    if not step:
        return policy, iter((stream,))
    return policy, (stream[i:i + step] for i in range(0, len(stream), step))


def seed(stream: bytes, policy: int = 0, step: int = 0) -> bytes:
    return bytes((policy, step)) + stream


def libfuzzer_dict(tokens: list[bytes]) -> str:
    """The tokens in libFuzzer's -dict= format."""
    lines = []
    for i, tok in enumerate(tokens):
        esc = "".join(chr(b) if 0x20 <= b < 0x7F and b not in (0x22, 0x5C) else f"\\x{b:02X}" for b in tok)
        lines.append(f'kw{i}="{esc}"')
    return "\n".join(lines) + "\n"
