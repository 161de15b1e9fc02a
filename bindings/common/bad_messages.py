"""The bad-message window: a client that sends more than ``limit`` bad messages within
``seconds`` is disconnected (20 in 10 s by default: docs/mqtt.md, docs/websocket.md).
One per connection; the binding counts what its receive pipeline refused."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class BadMessages:
    def __init__(
        self,
        limit: int = 20,
        seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,  # a test's own clock
    ) -> None:
        self.limit = limit
        self.seconds = seconds
        self.clock = clock
        self._times: deque[float] = deque()

    def count(self) -> bool:
        """Count one bad message; True when it is one too many (the count starts over)."""
        now = self.clock()
        self._times.append(now)
        while self._times and self._times[0] < now - self.seconds:
            self._times.popleft()
        if len(self._times) > self.limit:
            self._times.clear()
            return True
        return False
