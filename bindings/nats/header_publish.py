"""Publishing messages whose NATS headers are written beforehand (the twin relay's).

nats-py's ``publish`` checks and encodes every header of every message: a regular
expression per name, a strip and a translate per value, then one ``await`` for the
command and one for waking its flusher. On the twin relay, which publishes every
property value and event the hub receives, that was a tenth of the hub's time per
update. The relay's header names are constants and its values are cleaned by
vocabulary/twin_wire.py ``header_block``, so ``try_publish`` writes the HPUB command
into the client's outgoing buffer itself and wakes the flusher the way ``publish``
does: the same bytes reach the server, in the same order as everything else the
client sends, written in the same batches. Consecutive commands share one item of
that buffer (one ``bytearray``, extended only while it is still the buffer's last item,
so never after the flusher took it), because the TLS transport encrypts each item as a
record of its own with a Python call each: about a tenth of the hub's time per update
when each message was an item.

This uses three private members of nats-py's client (``_pending``,
``_pending_data_size``, ``_flush_queue``). ``usable`` checks that they are there
(tests/bindings/nats/test_header_publish.py runs it against the installed nats-py);
when they are not, or when the client is not connected, the message is large or the
reconnect buffer is filling, ``try_publish`` returns False and the caller uses
``publish``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from nats.aio.client import Client as NatsConnection


def usable(nc: NatsConnection) -> bool:
    """Whether this nats-py client has the members ``try_publish`` writes to."""
    return (
        isinstance(getattr(nc, "_pending", None), list)
        and isinstance(getattr(nc, "_pending_data_size", None), int)
        and isinstance(getattr(nc, "_flush_queue", None), asyncio.Queue)
        and isinstance(getattr(nc, "stats", None), dict)
    )


# The most one buffered item holds (a TLS record carries 16 KiB).
_BATCH = 64 * 1024


class HeaderPublisher:
    """Writes HPUB commands with a ready header block into one connected client."""

    def __init__(self, nc: NatsConnection) -> None:
        self.nc = nc
        self.direct = usable(nc)
        # The commands written since the flusher last took the buffer, as one item of
        # it: TLS encrypts each item as its own record, one Python call each.
        self._buffer: bytearray | None = None

    def try_publish(self, subject: str, payload: bytes, header_block: bytes) -> bool:
        """Queue the message for the flusher; False when ``publish`` must send it.
        ``subject`` must be one the hub built (vocabulary/addresses.py encodes every
        id, so it holds no space or line break)."""
        nc: Any = self.nc
        if not self.direct or not nc.is_connected or nc.is_draining_pubs:
            return False
        size = len(header_block) + len(payload)
        if size > nc.max_payload:
            return False  # publish raises the error the caller logs
        limit = nc._max_pending_size
        if limit > 0 and nc._pending_data_size + size > limit:
            return False  # publish flushes before it buffers more
        command = b"HPUB %b %d %d\r\n%b%b\r\n" % (
            subject.encode(),
            len(header_block),
            size,
            header_block,
            payload,
        )
        pending, buffer = nc._pending, self._buffer
        if buffer is not None and pending and pending[-1] is buffer and len(buffer) < _BATCH:
            buffer += command  # still ours: the flusher has not taken it yet
        else:
            self._buffer = bytearray(command)
            pending.append(self._buffer)
        nc._pending_data_size += len(command)
        nc.stats["out_msgs"] += 1
        nc.stats["out_bytes"] += len(payload)
        flush_queue = nc._flush_queue
        if flush_queue.empty():  # as publish does: one wake-up per batch
            flush_queue.put_nowait(asyncio.get_running_loop().create_future())
        return True
