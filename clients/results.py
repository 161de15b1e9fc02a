"""The end of the requests a bus client sent (WebSocket, MQTT, NATS): the hub answers an
``invokeaction`` or ``writeproperty`` at once (``pending`` or ``delivered``) and later
with a response for each change of state, the last one ``completed``, ``failed``,
``expired`` or ``cancelled``. ``FinalResponses`` keeps that last one per ``actionID``
(bounded), so it can be awaited whether it came before or after the caller asked."""

from __future__ import annotations

import asyncio
from typing import Any

TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})


class FinalResponses:
    """Final responses by ``actionID``: the newest ``limit`` ones are kept."""

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._futures: dict[str, asyncio.Future[dict[str, Any]]] = {}

    def record(self, message: Any) -> None:
        """Keep ``message`` when it is the last response of a request."""
        if not isinstance(message, dict):
            return
        action_id = message.get("actionID")
        if not action_id or message.get("status") not in TERMINAL:
            return
        future = self._future(action_id)
        if not future.done():
            future.set_result(message)
        while len(self._futures) > self.limit:
            self._futures.pop(next(iter(self._futures)))

    async def wait(self, action_id: str, timeout: float | None) -> dict[str, Any]:
        """The final response of ``action_id``; ``TimeoutError`` when none came in
        ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            return await asyncio.shield(self._future(action_id))

    def _future(self, action_id: str) -> asyncio.Future[dict[str, Any]]:
        future = self._futures.get(action_id)
        if future is None:
            future = self._futures[action_id] = asyncio.get_running_loop().create_future()
        return future
