"""vocabulary/clock.py: the timestamps every message carries."""

from __future__ import annotations

import pytest

from vocabulary import clock


@pytest.mark.parametrize(
    "moments",
    [
        [1764000000.0, 1764000000.0004, 1764000000.9996, 1764000001.0],  # across a second
        [1767225599.999, 1767225600.0],  # across a year: 2025-12-31T23:59:59.999Z
        [1764000000.123, 1764000000.124, 1764000005.123],  # a second skipped
    ],
)
def test_now_is_the_rfc3339_of_the_millisecond(monkeypatch, moments):
    """rfc3339_now keeps the formatted date for a second and the string for a
    millisecond: it must still say exactly what rfc3339 says at each moment."""
    for moment in moments:
        monkeypatch.setattr(clock.time, "time", lambda moment=moment: moment)
        millis = int(moment * 1000)
        assert clock.rfc3339_now() == clock.rfc3339(millis / 1000)
    assert clock.rfc3339(1767225599.999) == "2025-12-31T23:59:59.999Z"


def test_now_round_trips():
    text = clock.rfc3339_now()
    assert abs(clock.parse_rfc3339(text) - clock.now()) < 5
    assert len(text) == len("2026-01-01T00:00:00.000Z") and text.endswith("Z")
