"""clients/backoff.py: the pause between reconnect attempts doubles up to its most, and
starts over once a connection held."""

from __future__ import annotations

from clients.backoff import Backoff


async def test_the_pause_doubles_up_to_the_most_and_starts_over_after_a_reset():
    backoff = Backoff(0.001, 0.004)
    pauses = []
    for _ in range(4):
        pauses.append(backoff.delay)
        await backoff.pause()
    assert pauses == [0.001, 0.002, 0.004, 0.004]
    backoff.reset()
    assert backoff.delay == 0.001
