"""The pause between a client's reconnect attempts, the same for every transport that
reconnects by itself (WebSocket, an SSE stream, MQTT; nats-py paces its own): from
``first`` seconds, doubling after each attempt up to ``most``, and from ``first`` again
once a connection held (docs/client.md, "The transports")."""

from __future__ import annotations

import asyncio


class Backoff:
    def __init__(self, first: float, most: float) -> None:
        self.first, self.most = first, most
        self.delay = first  # the next pause

    async def pause(self) -> None:
        """Wait before the next attempt; the one after waits twice as long (up to
        ``most``)."""
        delay, self.delay = self.delay, min(self.delay * 2, self.most)
        await asyncio.sleep(delay)  # pacing the attempts, not waiting for a condition

    def reset(self) -> None:
        """A connection held: the next reconnect starts from ``first`` again."""
        self.delay = self.first
