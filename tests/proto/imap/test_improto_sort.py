"""ESORT's ALL sequence-set (RFC 5267 3.2): the sort order is kept, only ascending runs become
ranges."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailcove.proto.imap.seqset import ordered_set


def test_ordered_set_keeps_the_order() -> None:
    assert ordered_set([1, 2, 3, 4, 5]) == "1:5"
    assert ordered_set([5, 4, 3, 2, 1]) == "5,4,3,2,1"
    assert ordered_set([3, 4, 5, 1, 7, 8]) == "3:5,1,7:8"
    assert ordered_set([9]) == "9"
    assert ordered_set([]) == ""


@given(st.lists(st.integers(1, 50), unique=True, max_size=30))
def test_ordered_set_expands_back_to_the_input(numbers: list[int]) -> None:
    out: list[int] = []
    for part in filter(None, ordered_set(numbers).split(",")):
        a, _, b = part.partition(":")
        out.extend(range(int(a), int(b or a) + 1))
    assert out == numbers
