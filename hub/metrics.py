"""The hub's Prometheus metrics (``GET /metrics``).

Hot paths only increment counters whose label values are bound once and kept
(``messages_in(binding, operation)`` returns the same child every time: one dict lookup
per message, no label dict built). What can be read from the hub's state when it is
scraped (twins, queued actions, connections, subscribers) is read then, by a collector,
and costs nothing in between. Each hub has its own registry, so two hubs in one process
(tests) never mix their figures.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from core.router import Router

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Router.handle takes microseconds; a slow store or a big TD takes milliseconds.
_LATENCY_BUCKETS = (
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


class HubMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self._in = Counter(
            "wothub_messages_in",
            "Messages the router took from clients, per binding and operation",
            ["binding", "operation"],
            registry=r,
        )
        self._out = Counter(
            "wothub_messages_out",
            "Messages the router queued for clients (responses, requests to agents, "
            "notifications), per binding and operation",
            ["binding", "operation"],
            registry=r,
        )
        self.router_seconds = Histogram(
            "wothub_router_seconds",
            "Time spent in Router.handle per message",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self._refused = Counter(
            "wothub_refused",
            "Requests refused, per HTTP status and reason (a limit's name, or "
            "unauthorized, forbidden, ...)",
            ["status", "reason"],
            registry=r,
        )
        self.actions_expired = Counter(
            "wothub_actions_expired",
            "Actions and property writes that expired before their agent answered",
            registry=r,
        )
        self.store_batches = Counter(
            "wothub_store_write_batches",
            "Write-behind batches of twin values written to the store",
            registry=r,
        )
        self.store_batch_twins = Counter(
            "wothub_store_write_batch_twins",
            "Twins written by the write-behind batches",
            registry=r,
        )
        self.store_batch_seconds = Histogram(
            "wothub_store_write_batch_seconds",
            "Time to write one write-behind batch",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self._children: dict[tuple[int, str, str], Any] = {}

    # -- bound children, cached ------------------------------------------------------------

    def messages_in(self, binding: str, operation: str) -> Any:
        key = (0, binding, operation)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._in.labels(binding, operation)
        return child

    def messages_out(self, binding: str, operation: str) -> Any:
        key = (1, binding, operation)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._out.labels(binding, operation)
        return child

    def refused(self, status: int, reason: str) -> None:
        key = (2, str(status), reason)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._refused.labels(str(status), reason)
        child.inc()

    def refused_problem(self, problem: dict[str, Any]) -> None:
        """Count an error response (RFC 9457 problem) if it is a refusal worth counting."""
        status = problem.get("status")
        if status in _REASONS:
            self.refused(status, str(problem.get("limit") or _REASONS[status]))

    # -- state read when scraped --------------------------------------------------------------

    def watch(self, router: Router) -> None:
        """Report the router's and the twins' state at each scrape."""
        self.registry.register(_StateCollector(router))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


_REASONS = {
    401: "unauthorized",
    403: "forbidden",
    413: "too_large",
    429: "too_many_requests",
    503: "unavailable",
}


class _StateCollector(Collector):
    def __init__(self, router: Router) -> None:
        self.router = router

    def collect(self):  # type: ignore[override]
        router = self.router
        stats = router.twin.stats()
        twins = GaugeMetricFamily("wothub_twins", "Digital twins by state", labels=["state"])
        total = router.twin.count_things()
        twins.add_metric(["active"], stats.active)
        twins.add_metric(["inactive"], max(0, total - stats.active))
        twins.add_metric(["dirty"], stats.dirty)
        yield twins

        queued = GaugeMetricFamily(
            "wothub_actions_queued",
            "Actions and property writes not finished yet, by state",
            labels=["state"],
        )
        counts = router.twin.requests.open_by_status()
        for state in ("pending", "delivered", "running"):
            queued.add_metric([state], counts.get(state, 0))
        yield queued

        connections = GaugeMetricFamily(
            "wothub_connections", "Open client connections, per binding", labels=["binding"]
        )
        for binding, count in sorted(router.open_connections().items()):
            connections.add_metric([binding], count)
        yield connections

        subscribers = GaugeMetricFamily(
            "wothub_subscribers",
            "Connections with at least one subscription (SSE streams, WebSocket, bus "
            "relays), per binding",
            labels=["binding"],
        )
        for binding, count in sorted(router.subscribers().items()):
            subscribers.add_metric([binding], count)
        yield subscribers


class HealthCollector(Collector):
    """What says whether the hub keeps up: event-loop lag and password checks."""

    def __init__(self, loop_lag: Any, hash_pool: Any) -> None:
        self.loop_lag = loop_lag
        self.hash_pool = hash_pool

    def collect(self):  # type: ignore[override]
        yield GaugeMetricFamily(
            "wothub_event_loop_lag_seconds",
            "The most the event loop ran late since the previous scrape",
            value=self.loop_lag.take_worst(),
        )
        yield CounterMetricFamily(
            "wothub_password_checks",
            "argon2id password checks made (a remembered password costs none)",
            value=self.hash_pool.checks,
        )
        yield GaugeMetricFamily(
            "wothub_password_checks_under_way",
            "Password checks running or waiting for a thread",
            value=self.hash_pool.under_way,
        )
