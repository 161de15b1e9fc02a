"""Repairs of the history's per-minute rollups after a cluster node died without a clean
stop (docs/history.md, "Cluster mode"): the minutes it had not published yet. Each one
waits until its minutes are settled (about four minutes after the death), then runs in
a worker thread (it reads the minutes' values from the stream)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from digitwin.history import History
from digitwin.history_jetstream import JetStreamHistory

log = logging.getLogger("wothub.history")


class HistoryRepairs:
    def __init__(self, history: History) -> None:
        self.history = history
        self._tasks: set[asyncio.Task[None]] = set()

    def after_death(self, node: str, last_alive: float) -> None:
        """Repair, once settled, the minutes of a node last alive at ``last_alive``
        (wall clock). Nothing to do on one hub's store: one writer, never lost."""
        history = self.history
        if not isinstance(history, JetStreamHistory):
            return
        task = asyncio.get_running_loop().create_task(
            self._repair(history, node, last_alive), name=f"history repair of {node}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _repair(self, history: JetStreamHistory, node: str, last_alive: float) -> None:
        # A timer, not a synchronisation: the minutes are settled at that time.
        await asyncio.sleep(max(0.0, history.repair_settled_at(last_alive) - history.now()))
        try:
            await asyncio.to_thread(history.repair, last_alive)
        except Exception as exc:  # the store unreachable: the minutes stay as they are
            log.warning("history: the rollups of node %s not repaired: %s", node, exc)

    async def stop(self) -> None:
        """Cancel the repairs waiting (one reading now ends on its own)."""
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
