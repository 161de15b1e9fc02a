"""One client's connection on one binding, with its outbox.

The router puts what the client should receive in the outbox; the binding's writer
takes it out with ``await connection.next()`` and puts it on the wire. Responses and
requests for agents always fit. Notifications are bounded: when a subscriber falls
``max_notifications`` behind, the outbox is closed with reason ``overflow`` so the
binding tells the client and disconnects it, and the hub never waits for it.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from typing import Any

from vocabulary.envelope import Message

from .authz import Client

OVERFLOW = "overflow"
_ids = itertools.count(1)


class ConnectionClosed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Connection:
    def __init__(self, client: Client, binding: str, *, max_notifications: int = 1000) -> None:
        self.id = f"{binding}-{next(_ids)}"
        self.client = client
        self.binding = binding
        self.max_notifications = max_notifications
        # (sequence number or None, message); a notification carries its sequence number.
        self._outbox: deque[tuple[int | None, Any]] = deque()
        self._notifications = 0
        self._ready = asyncio.Event()
        self.closed_reason: str | None = None
        self.context: dict[str, Any] = {}  # the binding's own per-connection state
        # A binding's own relay (e.g. the bus publisher of twin notifications): its
        # subscriptions skip authorization, because the bus decides who receives what.
        self.trusted = False
        # Counted against the client's max_connections_per_client until disconnected.
        self.counted = False

    @property
    def closed(self) -> bool:
        return self.closed_reason is not None

    def send(self, message: Message | dict[str, Any]) -> None:
        """Queue a response or a request (never dropped while the connection is open);
        a binding may queue its own ready-made error responses as dicts."""
        if self.closed_reason is None:
            self._outbox.append((None, message))
            self._ready.set()

    def notify(self, seq: int, message: Message) -> bool:
        """Queue a notification; False (and the connection closes) when it overflows."""
        if self.closed_reason is not None:
            return False
        if self._notifications >= self.max_notifications:
            self.close(OVERFLOW)
            return False
        self._notifications += 1
        self._outbox.append((seq, message))
        self._ready.set()
        return True

    async def next(self) -> tuple[int | None, Any]:
        """The next outgoing message; raises ConnectionClosed once closed and drained,
        or at once when closed by overflow (the backlog is dropped)."""
        while not self._outbox:
            if self.closed_reason is not None:
                raise ConnectionClosed(self.closed_reason)
            self._ready.clear()
            await self._ready.wait()
        if self.closed_reason == OVERFLOW:
            raise ConnectionClosed(OVERFLOW)
        seq, message = self._outbox.popleft()
        if seq is not None:
            self._notifications -= 1
        return seq, message

    def pending(self) -> int:
        return len(self._outbox)

    def close(self, reason: str = "closed") -> None:
        if self.closed_reason is None:
            self.closed_reason = reason
            if reason == OVERFLOW:
                self._outbox.clear()
            self._ready.set()

    def __repr__(self) -> str:
        return f"<Connection {self.id} {self.client.id} ({self.client.role})>"
