"""The hub's limits: sizes, counts and rates a client may not exceed.

Each refusal is a ``LimitExceeded`` problem that names the limit in its ``limit``
member (the key of the ``[limits]`` table in wothub.toml), so a client never has to
guess why it was refused: 413 for sizes, 429 with ``retryAfter`` (HTTP: the
``Retry-After`` header) for counts and rates. The router checks every limit but the
concurrent connections, which the router counts as bindings open connections; so every
binding refuses the same way.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import orjson

from vocabulary.problems import Problem, problem_title


@dataclass(frozen=True)
class Limits:
    """``None`` means no limit (what a bare Router, in tests and benchmarks, uses)."""

    max_td_bytes: int | None = None
    max_value_bytes: int | None = None
    max_things_per_agent: int | None = None
    max_queued_actions: int | None = None  # open actions and writes per Thing
    max_requests_per_second: float | None = None  # per client, a token bucket ...
    request_burst: int | None = None  # ... holding this many (default: 2 seconds' worth)
    max_connections_per_client: int | None = None


class LimitExceeded(Problem):
    """A refusal that names the limit; ``retry_after`` seconds for the 429s."""

    def __init__(
        self, limit: str, detail: str, *, status: int = 429, retry_after: float | None = None
    ) -> None:
        extensions: dict[str, Any] = {"limit": limit}
        if retry_after is not None:
            extensions["retryAfter"] = max(1, math.ceil(retry_after))
        super().__init__(detail, **extensions)
        self.limit = limit
        self.status = status
        self.title = problem_title(status)


def json_size(value: Any) -> int:
    """The size of ``value`` as JSON, in bytes; numbers, booleans and null cost nothing
    to measure (they are always small)."""
    if value is None or isinstance(value, bool | int | float):
        return 0
    if isinstance(value, str):
        return len(value.encode()) + 2  # escapes aside
    try:
        return len(orjson.dumps(value))
    except TypeError:
        return 0  # ABSENT and the like: nothing was sent


def check_size(limit: str, maximum: int | None, value: Any, what: str) -> None:
    if maximum is None:
        return
    size = json_size(value)
    if size > maximum:
        raise LimitExceeded(
            limit,
            f"{what} is {size} bytes as JSON, over the hub's limit of {maximum} bytes ({limit})",
            status=413,
        )


class RateLimiter:
    """A token bucket per client id: ``rate`` tokens a second, at most ``burst``."""

    def __init__(self, rate: float, burst: int | None = None, max_clients: int = 100_000) -> None:
        self.rate = rate
        self.burst = float(burst if burst is not None else max(1, math.ceil(rate * 2)))
        self.max_clients = max_clients
        self._buckets: dict[str, list[float]] = {}  # client id -> [tokens, last refill]

    def take(self, client_id: str) -> float:
        """0.0 when the client may go on; else the seconds until it may."""
        now = time.monotonic()
        bucket = self._buckets.get(client_id)
        if bucket is None:
            if len(self._buckets) >= self.max_clients:
                self._buckets.clear()  # forget idle clients rather than grow forever
            bucket = self._buckets[client_id] = [self.burst, now]
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / self.rate
