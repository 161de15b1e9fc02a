"""The bad-message window (bindings/common/bad_messages.py): more than ``limit`` bad
messages within ``seconds`` is one too many."""

from __future__ import annotations

from bindings.common.bad_messages import BadMessages


def test_the_one_over_the_limit_is_too_many_and_the_count_starts_over():
    window = BadMessages(limit=20, seconds=10.0)
    assert not any(window.count() for _ in range(20))
    assert window.count()
    assert not window.count()  # started over


def test_bad_messages_older_than_the_window_do_not_count():
    now = [100.0]
    window = BadMessages(limit=2, seconds=10.0, clock=lambda: now[0])
    assert not window.count() and not window.count()
    now[0] += 10.5  # the window has passed
    assert not window.count() and not window.count()
    assert window.count()
