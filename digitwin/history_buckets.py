"""Where the buckets of a downsampled history query begin and end (docs/history.md).

Bucket ``k`` of a step starts at ``k * step`` ms since the epoch. A step of 2 minutes
or more has its edges moved down to the whole minute (``k * step`` less its seconds),
so a bucket is a run of whole minutes: the per-minute rollups of the history stream
(cluster mode) answer it without reading every value. A step of whole minutes is not
changed by that; a shorter step keeps its exact edges. Both stores use these edges, so
they answer a query alike.
"""

from __future__ import annotations

MINUTE = 60_000  # ms
SNAPPED_FROM = 2 * MINUTE  # steps from this long have their edges on whole minutes


def index(millis: int, step: int) -> int:
    """The number of the bucket that holds the time ``millis``."""
    if step < SNAPPED_FROM:
        return millis // step
    # The last k whose start (k * step less its seconds) is at or before the minute.
    return (millis - millis % MINUTE + MINUTE - 1) // step


def start(k: int, step: int) -> int:
    """The time (ms) where bucket ``k`` begins; bucket ``k + 1`` begins where it ends."""
    begins = k * step
    return begins if step < SNAPPED_FROM else begins - begins % MINUTE


def edges(millis: int, step: int) -> tuple[int, int]:
    """The start (included) and end (excluded) of the bucket that holds ``millis``."""
    k = index(millis, step)
    return start(k, step), start(k + 1, step)


def whole_minutes(step: int) -> bool:
    """Whether every bucket of the step is a run of whole minutes."""
    return step % MINUTE == 0 or step >= SNAPPED_FROM
