"""imap/selected.RecentSet: a session's \\Recent UIDs as merged intervals answer `in` and `count`
as the plain set of UIDs would, and a session that claims message after message keeps one
interval (it had one per claim, and `in`/`count` grew with the session's age)."""

from __future__ import annotations

from array import array

from hypothesis import given
from hypothesis import strategies as st

from mailcove.imap.selected import RecentSet

intervals = st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60)), max_size=12)


@given(intervals, st.lists(st.integers(1, 70), unique=True))
def test_merged_intervals_answer_as_the_set_of_uids(claims: list[tuple[int, int]], present: list[int]) -> None:
    recent = RecentSet()
    expected: set[int] = set()
    for lo, hi in claims:
        recent.add((lo, hi))
        expected.update(range(lo + 1, hi + 1))
    for uid in range(0, 72):
        assert (uid in recent) == (uid in expected), (uid, recent.ranges)
    assert bool(recent) == bool(expected)
    uids = array("q", sorted(present))
    assert recent.count(uids) == len(expected & set(present))
    # count drops the intervals with none of `present` in them; the present ones answer the same
    assert all((uid in recent) == (uid in expected) for uid in present)
    assert bool(recent) == bool(expected & set(present))
    assert recent.count(uids) == len(expected & set(present))
    # sorted, disjoint, not touching: each UID in exactly one interval
    assert all(a[1] < b[0] for a, b in zip(recent.ranges, recent.ranges[1:], strict=False))


def test_a_session_claiming_each_new_message_keeps_one_interval() -> None:
    recent = RecentSet()
    recent.add((0, 500))  # SELECT: everything so far
    for uid in range(501, 2001):  # then each APPEND announced: (previous floor, uid]
        recent.add((uid - 1, uid))
    recent.add(None)
    assert recent.ranges == [(0, 2000)]
    recent.add((2100, 2105))  # another session claimed 2001..2100 in between
    assert recent.ranges == [(0, 2000), (2100, 2105)]
    assert 2000 in recent and 2001 not in recent and 2105 in recent


def test_intervals_whose_messages_are_all_gone_are_dropped() -> None:
    recent = RecentSet()
    for lo, hi in ((0, 10), (20, 30), (40, 50)):
        recent.add((lo, hi))
    present = array("q", [5, 45, 46])  # 11..40 expunged
    assert recent.count(present) == 3
    assert recent.ranges == [(0, 10), (40, 50)]
    assert 5 in recent and 25 not in recent
