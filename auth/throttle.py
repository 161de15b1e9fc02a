"""Slowing down repeated failed logins, per client id.

After ``free_attempts`` failures a client id is blocked for a delay that doubles with
each further failure, up to ``max_delay``; while blocked, attempts are refused without
even checking the password. Unknown ids are treated exactly like known ones, so the
refusal says nothing about whether an id exists. The state lives in memory (a restart
forgets it) and is bounded, oldest entries first out.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from digitwin import clock

from .errors import TooManyAttempts


@dataclass(frozen=True)
class ThrottleConfig:
    free_attempts: int = 3
    base_delay: float = 1.0  # seconds, doubled for each failure after the free ones
    max_delay: float = 300.0
    max_tracked: int = 100_000  # client ids remembered at once


class LoginThrottle:
    def __init__(self, config: ThrottleConfig | None = None) -> None:
        self.config = config or ThrottleConfig()
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()  # id -> (n, until)

    def check(self, client_id: str, now: float | None = None) -> None:
        """Raise TooManyAttempts while ``client_id`` must wait."""
        entry = self._failures.get(client_id)
        now = clock.now() if now is None else now
        if entry is not None and now < entry[1]:
            raise TooManyAttempts(
                "too many failed logins for this client id; try again later",
                retry_after=entry[1] - now,
            )

    def failed(self, client_id: str, now: float | None = None) -> None:
        now = clock.now() if now is None else now
        count = self._failures.pop(client_id, (0, 0.0))[0] + 1
        extra = count - self.config.free_attempts
        delay = min(self.config.base_delay * 2 ** (extra - 1), self.config.max_delay)
        self._failures[client_id] = (count, now + delay if extra > 0 else 0.0)
        while len(self._failures) > self.config.max_tracked:
            self._failures.popitem(last=False)

    def succeeded(self, client_id: str) -> None:
        self._failures.pop(client_id, None)
