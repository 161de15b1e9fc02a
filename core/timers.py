"""What the core does on time rather than on a message: expire requests and TDs when
their deadline comes, write changed twins behind in batches (and the value history
after them), prune the history a bounded step at a time, and now and then unload idle
twins and prune old request records."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from digitwin.core import DigiTwin
from vocabulary import clock

from .stats import Counters

log = logging.getLogger("wothub.router")
PRUNE_BUDGET = 10_000  # history keys read or deleted per flush round, at least


class Timers:
    def __init__(
        self,
        twin: DigiTwin,
        counters: Counters,
        *,
        flush_interval: float,
        housekeeping_interval: float,
    ) -> None:
        self.twin = twin
        self.counters = counters
        self.flush_interval = flush_interval
        self.housekeeping_interval = housekeeping_interval
        self._tasks: list[asyncio.Task[None]] = []
        self._wake: asyncio.Event | None = None

    async def start(self) -> None:
        self._wake = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._deadline_loop(), name="router-deadlines"),
            asyncio.create_task(self._flush_loop(), name="router-flush"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def wake(self) -> None:
        """A new deadline may be the next one: look again (once started)."""
        if self._wake is not None:
            self._wake.set()

    def expire(self, now: float | None = None) -> None:
        expired = self.twin.expire_requests(now)
        self.counters.actions_expired += len(expired)
        self.twin.purge_expired_things(now)

    def flush(self) -> int:
        """Write the changed twins' values (one batch); timed for the stats."""
        started = time.perf_counter()
        written = self.twin.flush()
        if written:
            counters = self.counters
            counters.store_batches += 1
            counters.store_batch_twins += written
            counters.store_batch_seconds.observe(time.perf_counter() - started)
        return written

    async def _deadline_loop(self) -> None:
        """Expire requests and TDs when their time comes, even if nothing else happens."""
        assert self._wake is not None
        while True:
            deadline = self.twin.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - clock.now()) + 0.002
            self._wake.clear()
            # asyncio.timeout, not wait_for: in 3.11 wait_for can swallow a cancellation
            # that arrives as the wait completes, and then stop() would hang.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            try:
                self.expire()
            except Exception:  # keep the loop alive: the next round tries again
                log.exception("expiring requests and TDs failed")

    async def _flush_loop(self) -> None:
        """Write changed twins behind, unload idle ones, prune old request records."""
        since_housekeeping = 0.0
        while True:
            await asyncio.sleep(self.flush_interval)
            try:
                self.flush()
                # History retention: a bounded step each round, never all at once.
                self.twin.prune_history(PRUNE_BUDGET)
                since_housekeeping += self.flush_interval
                if since_housekeeping >= self.housekeeping_interval:
                    since_housekeeping = 0.0
                    self.twin.unload_idle()
                    self.twin.requests.prune()
            except Exception:
                log.exception("writing twins failed; will retry")
