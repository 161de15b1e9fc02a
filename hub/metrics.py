"""The hub's Prometheus metrics (``GET /metrics``).

The core counts into plain numbers (``core.stats``); at each scrape a collector reads
``Router.stats()`` and turns it into Prometheus families, so the hot path never touches
prometheus_client and what is state (twins, queued actions, connections, subscribers)
costs nothing between scrapes. Refusals the hub sees before the router does (HTTP 401
answers, bad credentials on any binding) are counted here and shown with the core's.
Each hub has its own registry, so two hubs in one process (tests) never mix their
figures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from core.stats import CoreStats, Timings
from digitwin.history import History

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class HubMetrics:
    """The registry /metrics shows: the core's figures, read from ``stats`` when
    scraped, and the refusals counted by ``refused``."""

    def __init__(self, stats: Callable[[], CoreStats], node: tuple[str, str] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._refused: dict[tuple[int, str], int] = {}
        self.registry.register(_CoreCollector(stats, self._refused))
        if node is not None:  # (cluster, node): which node these figures are from
            self.registry.register(_NodeCollector(*node))

    def refused(self, status: int, reason: str) -> None:
        key = (status, reason)
        self._refused[key] = self._refused.get(key, 0) + 1

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _NodeCollector(Collector):
    def __init__(self, cluster: str, node: str) -> None:
        self.labels = {"cluster": cluster, "node": node}

    def collect(self) -> Iterator[Metric]:  # type: ignore[override]
        info = InfoMetricFamily("wothub_node", "The cluster node these figures are from")
        info.add_metric([], self.labels)
        yield info


class _CoreCollector(Collector):
    def __init__(self, stats: Callable[[], CoreStats], refused: dict[tuple[int, str], int]):
        self.stats = stats
        self.refused = refused

    def collect(self) -> Iterator[Metric]:  # type: ignore[override]
        stats = self.stats()
        yield _per_binding(
            "wothub_messages_in",
            "Messages the router took from clients, per binding and operation",
            stats.messages_in,
        )
        yield _per_binding(
            "wothub_messages_out",
            "Messages the router queued for clients (responses, requests to agents, "
            "notifications), per binding and operation",
            stats.messages_out,
        )
        yield _histogram(
            "wothub_router_seconds", "Time spent in Router.handle per message", stats.router_seconds
        )
        refused = CounterMetricFamily(
            "wothub_refused",
            "Requests refused, per HTTP status and reason (a limit's name, or "
            "unauthorized, forbidden, ...)",
            labels=["status", "reason"],
        )
        totals = dict(stats.refused)
        for key, count in self.refused.items():
            totals[key] = totals.get(key, 0) + count
        for (status, reason), count in sorted(totals.items()):
            refused.add_metric([str(status), reason], count)
        yield refused
        yield CounterMetricFamily(
            "wothub_actions_expired",
            "Actions and property writes that expired before their agent answered",
            value=stats.actions_expired,
        )
        yield CounterMetricFamily(
            "wothub_store_write_batches",
            "Write-behind batches of twin values written to the store",
            value=stats.store_batches,
        )
        yield CounterMetricFamily(
            "wothub_store_write_batch_twins",
            "Twins written by the write-behind batches",
            value=stats.store_batch_twins,
        )
        yield _histogram(
            "wothub_store_write_batch_seconds",
            "Time to write one write-behind batch",
            stats.store_batch_seconds,
        )

        twins = GaugeMetricFamily("wothub_twins", "Digital twins by state", labels=["state"])
        twins.add_metric(["active"], stats.twins_active)
        twins.add_metric(["inactive"], max(0, stats.things - stats.twins_active))
        twins.add_metric(["dirty"], stats.twins_dirty)
        yield twins

        queued = GaugeMetricFamily(
            "wothub_actions_queued",
            "Actions and property writes not finished yet, by state",
            labels=["state"],
        )
        for state in ("pending", "delivered", "running"):
            queued.add_metric([state], stats.requests_open.get(state, 0))
        yield queued

        connections = GaugeMetricFamily(
            "wothub_connections", "Open client connections, per binding", labels=["binding"]
        )
        for binding, count in sorted(stats.connections.items()):
            connections.add_metric([binding], count)
        yield connections

        subscribers = GaugeMetricFamily(
            "wothub_subscribers",
            "Connections with at least one subscription (SSE streams, WebSocket, bus "
            "relays), per binding",
            labels=["binding"],
        )
        for binding, count in sorted(stats.subscribers.items()):
            subscribers.add_metric([binding], count)
        yield subscribers


def _per_binding(name: str, documentation: str, counts: dict[tuple[str, str], int]) -> Metric:
    family = CounterMetricFamily(name, documentation, labels=["binding", "operation"])
    for (binding, operation), count in sorted(counts.items()):
        family.add_metric([binding, operation], count)
    return family


def _histogram(name: str, documentation: str, timings: Timings) -> Metric:
    cumulative, buckets = 0, []
    for bound, count in zip(timings.bounds, timings.counts, strict=True):
        cumulative += count
        buckets.append((floatToGoString(bound), cumulative))
    return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=timings.sum)


class HistoryCollector(Collector):
    """The value history's totals (docs/history.md), read from its counters."""

    def __init__(self, history: History) -> None:
        self.history = history

    def collect(self) -> Iterator[Metric]:  # type: ignore[override]
        counters = self.history.counters
        yield CounterMetricFamily(
            "wothub_history_values_written",
            "Property values and events written to the history",
            value=counters.written,
        )
        yield CounterMetricFamily(
            "wothub_history_values_pruned",
            "History values the hub's pruning deleted (retention, removed Things)",
            value=counters.pruned,
        )
        yield CounterMetricFamily(
            "wothub_history_values_dropped",
            "History values given up after the store refused them too long",
            value=self.history.dropped,
        )
        yield CounterMetricFamily(
            "wothub_history_queries", "History queries answered", value=counters.queries
        )
        yield CounterMetricFamily(
            "wothub_history_query_seconds",
            "Time spent answering history queries",
            value=counters.query_seconds,
        )


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
