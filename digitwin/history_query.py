"""A query of one affordance's history: its parameters, checked, and its answer, as raw
values or downsampled (docs/history.md).

The parameters are the same on HTTP (the query string) and on the buses (the input of
``queryhistory``): ``from``, ``to`` (RFC 3339), ``limit``, ``order`` (``newest`` or
``oldest``), ``cursor`` (from the previous page) and ``step`` (a duration such as
``10s``, ``5m``, ``1h``: downsample into buckets of that length).

Downsampling is computed while scanning: one bucket is held at a time, never the range.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from vocabulary import clock
from vocabulary.problems import BadRequest

from . import history_buckets, history_rollup
from .history import MAX_TIME, History

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# Values one downsampled query reads at most (about a quarter of a second); a page ends
# before it at a bucket boundary (a bucket is never cut: the one being read is finished).
MAX_SCANNED = 250_000
PARAMETERS = ("from", "to", "limit", "order", "cursor", "step")
ORDERS = ("newest", "oldest")
_CURSOR = re.compile(r"\d{13}(?:\.[0-9a-f]{16})?", re.ASCII)
_DURATION = re.compile(r"(\d{1,12})(ms|s|m|h|d|w)", re.ASCII)
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    lower: int = 0  # ms, included
    upper: int = MAX_TIME  # ms, included
    limit: int = DEFAULT_LIMIT
    newest_first: bool = True
    cursor: str | None = None  # a key suffix: the page starts strictly after it
    step: int | None = None  # ms; None: raw values


def parse_query(params: Mapping[str, Any]) -> HistoryQuery:
    """The query in ``params`` (strings from a query string, or JSON values); BadRequest
    naming the parameter otherwise."""
    unknown = sorted(set(params) - set(PARAMETERS))
    if unknown:
        raise _bad(unknown[0], f"is not a history parameter (known: {', '.join(PARAMETERS)})")
    lower = _time(params, "from", 0)
    upper = _time(params, "to", MAX_TIME)
    if lower > upper:
        raise _bad("from", "is later than to")
    limit = params.get("limit", DEFAULT_LIMIT)
    if isinstance(limit, str) and limit.isascii() and limit.isdigit():
        limit = int(limit)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise _bad("limit", f"must be a whole number from 1 to {MAX_LIMIT}, not {limit!r}")
    order = params.get("order", "newest")
    if order not in ORDERS:
        raise _bad("order", f"must be newest or oldest, not {order!r}")
    cursor = params.get("cursor")
    if cursor is not None:
        if not isinstance(cursor, str) or not _CURSOR.fullmatch(cursor):
            raise _bad("cursor", "is not a cursor this hub gave (take it from the last page)")
        cursor = cursor.replace(".", "\0")
    step = params.get("step")
    if step is not None:
        step = parse_duration(step)
    return HistoryQuery(lower, upper, limit, order == "newest", cursor, step)


def parse_duration(text: Any) -> int:
    """Milliseconds of a duration such as ``500ms``, ``10s``, ``5m``, ``1h``, ``1d``, ``1w``."""
    match = _DURATION.fullmatch(text) if isinstance(text, str) else None
    millis = int(match.group(1)) * _UNIT_MS[match.group(2)] if match else 0
    if not 0 < millis <= MAX_TIME:
        raise _bad("step", f"must be a duration such as 500ms, 10s, 5m, 1h or 1d, not {text!r}")
    return millis


def run_query(history: History, prefix: str, query: HistoryQuery) -> dict[str, Any]:
    """``{"items": [...], "cursor": ...}``: raw values ``{"time", "value"}`` or, with a
    step, buckets ``{"time", "count", "min", "max", "mean", "last"}``; ``cursor`` (the
    next page's) only when there may be more. Counted, with its time, in the history's
    counters."""
    started = time.perf_counter()
    try:
        if query.step is None:
            items, cursor = _raw(history, prefix, query)
        else:
            items, cursor = _downsampled(history, prefix, query)
    finally:
        history.counters.queries += 1
        history.counters.query_seconds += time.perf_counter() - started
    out: dict[str, Any] = {"items": items}
    if cursor is not None:
        out["cursor"] = cursor.replace("\0", ".")
    return out


def _raw(history: History, prefix: str, query: HistoryQuery) -> tuple[list[Any], str | None]:
    scan = history.scan(
        prefix, query.lower, query.upper, newest_first=query.newest_first, after=query.cursor
    )
    at = len(prefix)
    items: list[Any] = []
    last = ""
    for key, value in scan:
        if len(items) == query.limit:
            return items, last
        last = key[at:]
        items.append({"time": _time_text(int(last[:13])), "value": orjson.loads(value)})
    return items, None


def _downsampled(
    history: History, prefix: str, query: HistoryQuery
) -> tuple[list[Any], str | None]:
    """Buckets on the edges of history_buckets (so they stay the same from one query to
    the next, and on both stores), in the query's order. Each bucket's values are read
    at once and summarized with builtins (min, max, sum work in C), then let go: the
    range is never held, a bucket at a time is."""
    step, newest_first, limit = query.step, query.newest_first, query.limit
    assert step is not None
    if not history.seeks:
        if history_buckets.whole_minutes(step):
            return history_rollup.downsampled(history, prefix, query, step)
        return _downsampled_scan(history, prefix, query, step)
    low, high = history.bounds(prefix, query.lower, query.upper)
    cursor = query.cursor
    if newest_first:  # keys below ``position``, from the newest down
        position = high if cursor is None else min(high, prefix + cursor)
    else:  # keys from ``position`` on; strictly after K is from K + NUL
        position = low if cursor is None else max(low, prefix + cursor + "\0")
    at = len(prefix)
    items: list[dict[str, Any]] = []
    scanned = 0
    while True:
        key = history.key_from(prefix, position, newest_first=newest_first)
        if key is None or (key < low if newest_first else key >= high):
            return items, None
        if len(items) == limit or scanned >= MAX_SCANNED:  # more to come: a next page
            return items, position[at:]
        start, stop = history_buckets.edges(int(key[at : at + 13]), step)
        first, end = f"{prefix}{start:013d}", f"{prefix}{stop:013d}"
        if newest_first:
            first, end = max(low, first), min(position, end)
            position = first
        else:
            first, end = max(position, first), min(high, end)
            position = end
        values = history.values_between(first, end)
        scanned += len(values)
        items.append(_bucket(start, values))


def _downsampled_scan(
    history: History, prefix: str, query: HistoryQuery, step: int
) -> tuple[list[Any], str | None]:
    """The same buckets from one scan in the query's order, for a store where seeking is
    dear (JetStream) and a step shorter than 2 minutes that is not whole minutes (so its
    edges are multiples of the step): a bucket's values are gathered while they come,
    then summarized.
    The next page's cursor is the time where the next bucket ends (newest first) or
    starts (oldest first)."""
    scan = history.scan(
        prefix, query.lower, query.upper, newest_first=query.newest_first, after=query.cursor
    )
    at = len(prefix)
    items: list[dict[str, Any]] = []
    scanned = 0
    current = -1
    values: list[bytes] = []
    time_order = (lambda v: v[::-1]) if query.newest_first else (lambda v: v)  # for "last"
    for key, value in scan:
        millis = int(key[at : at + 13])
        start = millis - millis % step
        if start != current:
            if values:
                items.append(_bucket(current, time_order(values)))
                scanned += len(values)
                if len(items) == query.limit or scanned >= MAX_SCANNED:
                    boundary = current if query.newest_first else current + step
                    return items, f"{boundary:013d}"
            current, values = start, []
        values.append(value)
    if values:
        items.append(_bucket(current, time_order(values)))
    return items, None


_BOOLEANS = (b"true", b"false")


def _bucket(start: int, values: list[bytes]) -> dict[str, Any]:
    """count, min, max and mean (of the numbers among the values) and the last value.
    The values are parsed as one JSON array and summed by builtins, all in C."""
    parsed = orjson.loads(b"[" + b",".join(values) + b"]")
    out: dict[str, Any] = {"time": _time_text(start), "count": len(parsed)}
    numbers = parsed
    if _BOOLEANS[0] in values or _BOOLEANS[1] in values:  # bool is an int to sum()
        numbers = _only_numbers(parsed)
    try:
        total = sum(numbers)
    except TypeError:  # some are not numbers: a string, null, an object
        numbers = _only_numbers(parsed)
        total = sum(numbers)
    if numbers:
        out["min"], out["max"] = min(numbers), max(numbers)  # as reported: 3 stays 3
        out["mean"] = total / len(numbers)
    out["last"] = parsed[-1]
    return out


def _only_numbers(values: list[Any]) -> list[int | float]:
    return [v for v in values if type(v) is int or type(v) is float]


def _time_text(millis: int) -> str:
    return clock.rfc3339(millis / 1000)


def _time(params: Mapping[str, Any], name: str, default: int) -> int:
    text = params.get(name)
    if text is None:
        return default
    try:
        seconds = clock.parse_rfc3339_strict(text)
    except (ValueError, OverflowError):
        raise _bad(
            name, f"must be an RFC 3339 date-time such as 2026-01-31T12:00:00Z, not {text!r}"
        ) from None
    return min(MAX_TIME, max(0, round(seconds * 1000)))


def _bad(parameter: str, problem: str) -> BadRequest:
    return BadRequest(f"{parameter} {problem}", parameter=parameter)
