"""Time as the hub writes it: RFC 3339 UTC with milliseconds, and epoch seconds inside."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime


def now() -> float:
    """Seconds since the epoch (wall clock: timestamps and expiries survive restarts)."""
    return time.time()


def rfc3339(seconds: float) -> str:
    """``2026-11-23T10:15:30.123Z``: fixed width, so these strings sort in time order."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


_last: tuple[int, str] = (-1, "")
_last_second: tuple[int, str] = (-1, "")


def rfc3339_now() -> str:
    """The current time as ``rfc3339`` writes it. Every message is stamped and strftime
    costs more than the rest of a hop, so the date and time of day are formatted once a
    second and the string once a millisecond."""
    global _last, _last_second
    millis = int(time.time() * 1000)
    if millis != _last[0]:
        second, milli = divmod(millis, 1000)
        if second != _last_second[0]:
            _last_second = (second, rfc3339(second)[:-4])  # without ".000Z"
        _last = (millis, f"{_last_second[1]}{milli:03d}Z")
    return _last[1]


# RFC 3339 date-time; datetime.fromisoformat alone also takes other ISO 8601 forms
# (basic format, week dates, no seconds) that no consumer expects in a timestamp.
RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})", re.ASCII
)


def parse_rfc3339_strict(text: str) -> float:
    """``parse_rfc3339``, for RFC 3339 date-times only (ValueError otherwise)."""
    if not isinstance(text, str) or not RFC3339.fullmatch(text):
        raise ValueError(f"{text!r} is not an RFC 3339 date-time")
    return parse_rfc3339(text)


def parse_rfc3339(text: str) -> float:
    """Epoch seconds of an RFC 3339 date-time; an offset (or Z) is required."""
    moment = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"date-time {text!r} has no time zone offset")
    return moment.timestamp()
