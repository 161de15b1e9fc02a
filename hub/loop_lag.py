"""How late the event loop runs what is due: the measure of a hub that stalls.

A task asks to wake every ``interval`` seconds and records how much later than asked
it woke; the largest lateness since the last scrape is what /metrics shows (a stall
between scrapes is not averaged away).
"""

from __future__ import annotations

import asyncio
import contextlib


class LoopLag:
    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.last = 0.0  # seconds late, the latest wake-up
        self._worst = 0.0  # the worst since taken
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="wothub-loop-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def take_worst(self) -> float:
        """The worst lateness since the previous call (each scrape starts afresh)."""
        worst, self._worst = max(self._worst, self.last), 0.0
        return worst

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            self.last = max(0.0, loop.time() - asked)
            self._worst = max(self._worst, self.last)
