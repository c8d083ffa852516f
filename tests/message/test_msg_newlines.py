from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailcove.message.newlines import CrlfNormalizer, is_crlf_clean, to_crlf


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        (b"", b""),
        (b"a\r\nb\r\n", b"a\r\nb\r\n"),
        (b"a\nb\n", b"a\r\nb\r\n"),
        (b"a\rb\r", b"a\r\nb\r\n"),
        (b"a\r\r\nb", b"a\r\n\r\nb"),
        (b"\n\n", b"\r\n\r\n"),
        (b"\r", b"\r\n"),
        (b"\n\r", b"\r\n\r\n"),
        (b"no newline", b"no newline"),
        (b"nul\x00\n", b"nul\x00\r\n"),
    ],
)
def test_to_crlf_table(raw: bytes, want: bytes) -> None:
    assert to_crlf(raw) == want


def test_clean_input_is_returned_without_copy() -> None:
    data = b"x\r\n" * 10
    assert to_crlf(data) is data
    assert is_crlf_clean(data)
    assert not is_crlf_clean(b"x\n")


def _normalise_in_pieces(data: bytes, cuts: list[int]) -> bytes:
    n = CrlfNormalizer()
    out = []
    prev = 0
    for c in [*cuts, len(data)]:
        out.append(n.feed(data[prev:c]))
        prev = c
    out.append(n.finish())
    return b"".join(out)


def test_split_at_every_byte() -> None:
    data = b"a\r\nb\nc\rd\r\r\ne\n\r\n\r\rf\r"
    whole = to_crlf(data)
    for i in range(len(data) + 1):
        assert _normalise_in_pieces(data, [i]) == whole, i
    # and every byte fed separately
    assert _normalise_in_pieces(data, list(range(1, len(data)))) == whole


@given(st.binary(max_size=64).map(lambda b: b.replace(b"\x00", b"\r")), st.lists(st.integers(0, 64), max_size=6))
def test_incremental_equals_whole(data: bytes, cuts: list[int]) -> None:
    cuts = sorted(min(c, len(data)) for c in cuts)
    out = _normalise_in_pieces(data, cuts)
    assert out == to_crlf(data)
    assert is_crlf_clean(out)
    # only line endings changed
    assert out.replace(b"\r", b"").replace(b"\n", b"") == data.replace(b"\r", b"").replace(b"\n", b"")


def test_feed_after_finish_is_an_error() -> None:
    n = CrlfNormalizer()
    n.finish()
    with pytest.raises(ValueError):
        n.feed(b"x")
