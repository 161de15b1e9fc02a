"""Per-minute rollups of a series (cluster mode, docs/history.md): a downsampled query
whose buckets are whole minutes (history_buckets) reads one small summary per minute
instead of every value.

A rollup is ``[segment, count, numbers, min, max, sum, last_ms, last]``: the values of
one minute that one writer summed before publishing them (its segment). A writer
publishes a minute once it has ended (history_jetstream), so a minute has one segment
from each writer that had values in it, and one more for values that came after it was
published (device times, a restart). The segments of a minute are merged when read; a
segment sent again (no acknowledgement the first time) counts once: its last one wins.
A repair after a writer died (history_jetstream) publishes a "full" segment of a minute,
made from all its values: it replaces every segment of that minute before it in the
stream. The minutes whose rollups may not be out yet are read from the values instead.
"""

from __future__ import annotations

from typing import Any

import orjson

from vocabulary import clock

from . import history_buckets as buckets
from .history_buckets import MINUTE

MAX_MINUTES = 250_000  # minutes of rollups one downsampled query reads at most
FULL = "="  # the start of a full segment's name: all the minute's values, from a repair


def new_state(segment: str) -> list[Any]:
    return [segment, 0, 0, None, None, 0, -1, None]


def segments_merged(messages: list[tuple[int, list[Any]]]) -> list[Any]:
    """One minute's rollup from its segments as (stream sequence, rollup) (at least
    one): the last full segment and what came after it, each segment once (its last
    one). A segment seen before the full one and sent again after it is in it already."""
    if len(messages) == 1:  # the usual minute: one writer's segment
        return list(messages[0][1])
    messages.sort(key=lambda message: message[0])
    full = max((i for i, (_, s) in enumerate(messages) if s[0].startswith(FULL)), default=0)
    covered = {state[0] for _, state in messages[:full]}
    latest: dict[str, list[Any]] = {}
    for _, state in messages[full:]:
        if state[0] not in covered:
            latest[state[0]] = state
    segments = iter(latest.values())
    merged = list(next(segments))  # the segments as they were
    for state in segments:
        merge(merged, state)
    return merged


def add(state: list[Any], millis: int, value: Any) -> None:
    """One value into a rollup (values come in arrival order: a tie in time goes to the
    later one, as the raw values' last)."""
    state[1] += 1
    if type(value) is int or type(value) is float:
        state[2] += 1
        state[3] = value if state[3] is None or value < state[3] else state[3]
        state[4] = value if state[4] is None or value > state[4] else state[4]
        state[5] += value
    if millis >= state[6]:
        state[6], state[7] = millis, value


def merge(into: list[Any], other: list[Any]) -> None:
    """``other`` (later in time or arrival) into ``into``."""
    into[1] += other[1]
    if other[2]:
        into[3] = other[3] if into[3] is None or other[3] < into[3] else into[3]
        into[4] = other[4] if into[4] is None or other[4] > into[4] else into[4]
        into[2] += other[2]
        into[5] += other[5]
    if other[6] >= into[6]:
        into[6], into[7] = other[6], other[7]


def bucket(start: int, state: list[Any]) -> dict[str, Any]:
    """The query's bucket ``{"time", "count", "min", "max", "mean", "last"}``."""
    out: dict[str, Any] = {"time": clock.rfc3339(start / 1000), "count": state[1]}
    if state[2]:
        out["min"], out["max"], out["mean"] = state[3], state[4], state[5] / state[2]
    out["last"] = state[7]
    return out


def downsampled(history: Any, prefix: str, query: Any, step: int) -> tuple[list[Any], str | None]:
    """The buckets of a query whose buckets are whole minutes, from rollups for the whole
    minutes in range and raw values for the minutes cut by the range's ends and for
    those whose rollups may not be published yet; in windows of at most the buckets
    still wanted, until the page is full or the range read."""
    lower, upper, newest_first = query.lower, query.upper, query.newest_first
    if query.cursor is not None:  # "<ms>": where the next bucket ends or starts
        millis = int(query.cursor.partition("\0")[0])
        if newest_first:
            upper = min(upper, millis - 1)
        else:
            lower = max(lower, millis)
    bounds = history.time_bounds(prefix)
    if bounds is None:
        return [], None
    # From the first value kept (a rollup may hold values pruned since); to the end of
    # the last value's minute, as nothing is later (its rollup is read, not its values).
    last_minute_end = bounds[1] - bounds[1] % MINUTE + MINUTE - 1
    lower, upper = max(lower, bounds[0]), min(upper, last_minute_end)
    unsettled = history.unsettled_from()
    items: list[dict[str, Any]] = []
    minutes = 0
    while lower <= upper:
        if len(items) == query.limit or minutes >= MAX_MINUTES:
            return items, f"{(upper + 1 if newest_first else lower):013d}"
        wanted = min(query.limit - len(items), max(1, MAX_MINUTES * MINUTE // step))
        if newest_first:
            w_upper = upper
            first = buckets.index(upper, step) - (wanted - 1)
            w_lower = max(lower, buckets.start(first, step))
        else:
            w_lower = lower
            w_upper = min(upper, buckets.start(buckets.index(lower, step) + wanted, step) - 1)
        window = _window(history, prefix, w_lower, w_upper, step, unsettled)
        minutes += (w_upper - w_lower) // MINUTE + 1
        starts = sorted(window, reverse=newest_first)
        items += [bucket(start, window[start]) for start in starts]
        if newest_first:
            upper = w_lower - 1
        else:
            lower = w_upper + 1
    return items, None


def _window(
    history: Any, prefix: str, lower: int, upper: int, step: int, unsettled: int
) -> dict[int, list]:
    """bucket start -> merged rollup, over times ``lower`` to ``upper`` (included): the
    rollups of the whole minutes before ``unsettled``, the raw values of the rest."""
    out: dict[int, list[Any]] = {}

    def into(millis: int, state: list[Any]) -> None:  # millis: a minute's start
        start = buckets.start(buckets.index(millis, step), step)
        if start in out:
            merge(out[start], state)
        else:
            out[start] = state

    at = len(prefix)
    whole_from = -(-lower // MINUTE) * MINUTE
    whole_below = min((upper + 1) // MINUTE * MINUTE, unsettled)
    if whole_from >= whole_below:
        _raw(history, prefix, lower, upper, at, into)
        return out
    _raw(history, prefix, lower, whole_from - 1, at, into)
    for minute, state in history.rollups(prefix, whole_from, whole_below):
        into(minute, state)
    _raw(history, prefix, whole_below, upper, at, into)
    return out


def _raw(history: Any, prefix: str, lower: int, upper: int, at: int, into: Any) -> None:
    if lower > upper:
        return
    current, state = -1, new_state("")
    for key, value in history.scan(prefix, lower, upper, newest_first=False):
        millis = int(key[at : at + 13])
        minute = millis - millis % MINUTE
        if minute != current and state[1]:
            into(current, state)
            state = new_state("")
        current = minute
        add(state, millis, orjson.loads(value))
    if state[1]:
        into(current, state)
