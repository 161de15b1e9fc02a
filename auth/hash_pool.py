"""Password hashing off the event loop, with admission control.

argon2id is meant to be slow (hundreds of milliseconds of CPU at the RFC 9106 cost), so
it never runs on the event loop: a small thread pool runs it (argon2-cffi releases the
GIL), sized to leave a core for the loop. Only ``workers + queue`` checks may be under
way at once; one more is refused at once with ``Busy`` and a ``Retry-After``, so a storm
of logins is answered quickly instead of piling up behind work nobody waits for.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from .errors import Busy

T = TypeVar("T")


def default_workers() -> int:
    """One thread per core but one: the event loop keeps a core of its own."""
    return max(1, (os.cpu_count() or 1) - 1)


class HashPool:
    def __init__(self, workers: int | None = None, queue: int = 8) -> None:
        self.workers = workers or default_workers()
        self.queue = queue
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="wothub-hash")
        self._under_way = 0
        self.checks = 0  # made so far (for tests and metrics)
        self._seconds_per_check = 0.3  # refined by every check: for Retry-After

    @property
    def under_way(self) -> int:
        return self._under_way

    async def run(self, check: Callable[[], T]) -> T:
        """``check()`` on a pool thread; Busy when the pool and its queue are full."""
        if self._under_way >= self.workers + self.queue:
            backlog = self._under_way / self.workers
            raise Busy(
                "too many password checks under way; try again shortly, or use a token",
                retry_after=max(1.0, backlog * self._seconds_per_check),
            )
        self._under_way += 1
        self.checks += 1
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            return await loop.run_in_executor(self._executor, check)
        finally:
            self._under_way -= 1
            elapsed = loop.time() - started
            self._seconds_per_check = 0.8 * self._seconds_per_check + 0.2 * elapsed / (
                1 + max(0, self._under_way - self.workers + 1) / self.workers
            )

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
