"""Writing twin values into nats-server's retained-message stream at a bounded rate.

Each retained write is a JetStream message that nats-server stores on disk and indexes
for its MQTT clients: about half the cost of a property update through the hub when
every update is written (bench/mqtt.py). Only each topic's latest value matters, so a
subject's write goes out at once unless that subject was written less than about
``interval`` ago; then it waits for the window's end, where only the newest payload of
each subject is written. A subscriber that arrives inside that window may get the
value before the newest one as its retained message (docs/mqtt.md).

At start the hub writes every twin's latest values again (bindings/mqtt/restore.py,
``restore``): such a write is skipped for a subject that got a live value since the
restore began, which is newer than the one the restore read.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from .bus import retained

Publish = Callable[[str, bytes, dict[str, str]], Awaitable[None]]

INTERVAL = 0.05  # seconds: at most 20 writes a second per subject under load


class RetainedWriter:
    def __init__(self, publish: Publish, interval: float = INTERVAL) -> None:
        self._publish = publish
        self.interval = interval
        self._recent: set[str] = set()  # subjects written in this window
        self._pending: dict[str, bytes] = {}  # subject -> newest payload not yet written
        self._window: asyncio.Task[None] | None = None
        self._live: set[str] | None = None  # subjects written live during a restore

    @property
    def holding(self) -> bool:
        """Whether a window is open (some subject was written less than ``interval`` ago)."""
        return self._window is not None

    async def put(self, subject: str, payload: bytes) -> None:
        """Make ``payload`` the retained message of ``subject`` (empty: delete it)."""
        if self._live is not None:
            self._live.add(subject)
        if subject in self._recent:
            self._pending[subject] = payload  # a newer one replaces it
            return
        self._recent.add(subject)
        if self._window is None:
            self._window = asyncio.create_task(self._hold(), name="mqtt-retained")
        await self._publish(*retained(subject, payload))

    async def _hold(self) -> None:
        """Window after window: what came for a recent subject is written at its end
        (and is recent in the next); ends once a window passes with nothing written."""
        try:
            while self._recent:
                await asyncio.sleep(self.interval)  # the rate bound itself
                self._recent = set(self._pending)
                await self.flush()
        finally:
            self._window = None

    async def flush(self) -> None:
        pending, self._pending = self._pending, {}
        for subject, payload in pending.items():
            await self._publish(*retained(subject, payload))

    def start_restore(self) -> None:
        self._live = set()

    def end_restore(self) -> None:
        self._live = None

    async def restore(self, subject: str, payload: bytes) -> bool:
        """Write a value the restore read from the twin, unless a live one came for the
        subject since the restore began; whether it was written."""
        if self._live is not None and subject in self._live:
            return False
        await self._publish(*retained(subject, payload))
        return True

    async def close(self) -> None:
        """Writes what is pending (the hub is stopping: those values must be kept)."""
        if self._window is not None:
            self._window.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._window
        self._recent.clear()
        await self.flush()
