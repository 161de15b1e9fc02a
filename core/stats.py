"""What the core counts, as plain numbers: messages in and out, refusals, expiries and
write-behind batches. The hot path adds one to a dict entry; nothing here knows how the
figures are reported (hub/metrics.py reads ``Router.stats()`` when /metrics is scraped).
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from typing import Any

# Router.handle takes microseconds; a slow store or a big TD takes milliseconds.
LATENCY_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.1,
    0.5,
    float("inf"),
)

# The reason a refusal is counted under when its problem names no limit.
REASONS = {
    401: "unauthorized",
    403: "forbidden",
    413: "too_large",
    429: "too_many_requests",
    503: "unavailable",
}


class Timings:
    """A histogram of durations: how many fell at or under each bound (the last bound is
    infinite), and their sum in seconds."""

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds

    def copy(self) -> Timings:
        copied = Timings(self.bounds)
        copied.counts, copied.sum = list(self.counts), self.sum
        return copied


class Counters:
    """The core's running totals since it started."""

    def __init__(self) -> None:
        self.messages_in: dict[tuple[str, str], int] = {}  # (binding, operation) -> count
        self.messages_out: dict[tuple[str, str], int] = {}
        self.refused: dict[tuple[int, str], int] = {}  # (HTTP status, reason) -> count
        self.actions_expired = 0
        self.store_batches = 0
        self.store_batch_twins = 0
        self.router_seconds = Timings()  # per message handled
        self.store_batch_seconds = Timings()  # per write-behind batch

    def message_in(self, binding: str, operation: str) -> None:
        key = (binding, operation)
        self.messages_in[key] = self.messages_in.get(key, 0) + 1

    def message_out(self, binding: str, operation: str, count: int = 1) -> None:
        key = (binding, operation)
        self.messages_out[key] = self.messages_out.get(key, 0) + count

    def refuse(self, status: int, reason: str) -> None:
        key = (status, reason)
        self.refused[key] = self.refused.get(key, 0) + 1

    def refuse_problem(self, problem: dict[str, Any]) -> None:
        """Count an error response (RFC 9457 problem) if it is a refusal worth counting."""
        status = problem.get("status")
        if status in REASONS:
            self.refuse(status, str(problem.get("limit") or REASONS[status]))


@dataclass(frozen=True)
class CoreStats:
    """A snapshot of the core: its counters and its state now."""

    messages_in: dict[tuple[str, str], int]
    messages_out: dict[tuple[str, str], int]
    refused: dict[tuple[int, str], int]
    actions_expired: int
    store_batches: int
    store_batch_twins: int
    router_seconds: Timings
    store_batch_seconds: Timings
    connections: dict[str, int]  # open client connections per binding (HTTP exchanges aside)
    subscribers: dict[str, int]  # connections with at least one subscription, per binding
    things: int  # TDs in the directory
    twins_active: int  # twins in memory
    twins_dirty: int  # twins with values not written yet
    requests_open: dict[str, int]  # actions and writes not finished, per state


def snapshot(counters: Counters, **state: Any) -> CoreStats:
    return CoreStats(
        messages_in=dict(counters.messages_in),
        messages_out=dict(counters.messages_out),
        refused=dict(counters.refused),
        actions_expired=counters.actions_expired,
        store_batches=counters.store_batches,
        store_batch_twins=counters.store_batch_twins,
        router_seconds=counters.router_seconds.copy(),
        store_batch_seconds=counters.store_batch_seconds.copy(),
        **state,
    )
