"""How the segments of one minute's rollup are merged when read: each segment once (its
last copy), and a full segment (a repair's) in place of every segment before it."""

from __future__ import annotations

from digitwin import history_rollup as rollup


def segment(name: str, *values: float, at: int = 0) -> list:
    state = rollup.new_state(name)
    for i, value in enumerate(values):
        rollup.add(state, at + i, value)
    return state


def test_segments_add_up_and_one_sent_twice_counts_once():
    merged = rollup.segments_merged(
        [(1, segment("a1", 1, 2)), (5, segment("b1", 10, at=50)), (7, segment("a1", 1, 2))]
    )
    assert merged[1:] == [3, 3, 1, 10, 13, 50, 10]


def test_a_full_segment_replaces_those_before_it_not_those_after():
    messages = [
        (1, segment("a1", 1, 2)),
        (2, segment("b1", 3)),
        (4, segment(f"{rollup.FULL}r1", 1, 2, 3, 4)),  # a repair: every value so far
        (6, segment("c1", 100, at=90)),  # a late value after it
        (8, segment("a1", 1, 2)),  # a1 sent again (no acknowledgement): in the full one
    ]
    merged = rollup.segments_merged(messages)
    assert merged[1:] == [5, 5, 1, 100, 110, 90, 100]
    assert messages[2][1][1] == 4  # the segments read stay as they were
    # Read in another order (the late subject after the rollup subject): the same.
    assert rollup.segments_merged(messages[::-1]) == merged
    # A second repair after the late value: it holds it, and is the answer alone.
    again = segment(f"{rollup.FULL}r2", 1, 2, 3, 4)
    rollup.add(again, 90, 100)
    merged = rollup.segments_merged([*messages, (9, again)])
    assert merged[1:] == [5, 5, 1, 100, 110, 90, 100]
