"""Closing a nats-py connection that may be reconnecting.

nats-py (2.16) closes its old socket at the start of a reconnect and awaits the socket's
``wait_closed``, a future that every waiter shares. ``close()`` cancels that reconnect
task, which cancels the shared future, then awaits ``wait_closed`` itself: the cancelled
future raises ``CancelledError`` in the task that called ``close()``, though nobody
cancelled it. Over TLS the window is long (the old socket waits for the peer's
close_notify), so a client closed soon after the hub dropped it met it (a CI failure).

``close_connection`` drops that stray ``CancelledError`` and lets through one aimed at
the calling task (``Task.cancelling()``). Both sides of the wire close connections: the
hub's NATS binding and the Python client.
"""

from __future__ import annotations

import asyncio
from typing import Any


async def close_connection(nc: Any) -> None:
    """``nc.close()``, without the ``CancelledError`` nats-py raises on its own."""
    try:
        await nc.close()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # this task is being cancelled: that is not ours to swallow
