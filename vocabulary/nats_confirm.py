"""Waiting until nats-server has what this client sent: a subscription made before
``confirmed`` returns gets every message published after it.

nats-py's ``flush`` alone does not promise that. It writes its PING straight to the
socket, while the commands sent before it (a SUB) wait in the client's buffer for its
flusher task; so the PONG can come back before the server has the subscription, and a
message published in between is not delivered to it (seen in a server trace: the SUB
arrived 3 ms after the PONG, behind another client's message). So ``confirmed`` first
has the flusher write what is waiting (``_flush_pending(force_flush=True)``, private to
nats-py; tests/bindings/nats/test_confirm.py checks that the installed nats-py has it),
then sends the PING behind it.

It is here, with the words every layer shares, because both sides of the wire need it:
the hub's NATS binding (a subscription made before an agent's login is answered) and the
Python client (an observation that must not miss the next value). It takes the
connection as it is and imports nothing.
"""

from __future__ import annotations

from typing import Any


async def confirmed(nc: Any) -> None:
    """Returns once the server has processed every command ``nc`` sent before."""
    write_waiting = getattr(nc, "_flush_pending", None)
    if write_waiting is not None:
        await write_waiting(force_flush=True)
    await nc.flush()
