"""The other nodes' notifications, for this node's own subscribers (cluster mode,
docs/cluster.md).

Every node's NATS binding publishes its twin notifications on ``wot.twin.>``, with its
node id in the header ``Wothub-Node``, so NATS and MQTT consumers on every node get them
from nats-server. SSE and WebSocket consumers get what their node's router fans out: so
each node also subscribes to ``wot.twin.>`` and hands the other nodes' notifications to
its router (``Core.publish_from_other_node``). There they go through the same
authorization as this node's own, into this node's notification log (an SSE stream
resumes here with ``Last-Event-ID``), but not to the bus relay (nats-server delivered
them on the bus already) and not into the twin (the node of the Thing's agent wrote the
values; ``DigiTwin.follow_other_nodes`` refreshes this node's copy).

A node hands the other nodes' twin notifications to its router only while one of its
clients subscribes to notifications (SSE, WebSocket). When none has for ``grace``
seconds, it drops them unread and unsubscribes: receiving and handing them over costs as
much as handling the update itself (docs/cluster.md, "How throughput grows with nodes").
The next watcher subscribes it again, and is answered once nats-server has that
subscription (``ready``, which ``Core.notifications_ready`` awaits): an SSE stream before
its response, a WebSocket subscription before its response (bindings/websocket). What
was dropped is not in the node's notification log, so a stream that resumes from before
the new subscription gets ``resync``.

Action statuses are not on ``wot.twin``: who may see one is decided per subscriber by a
hub. Nodes send them to each other as the envelope JSON on ``ACTIONS``, a subject no
client may subscribe to (docs/nats.md). A request made on this node and answered on
another then reaches its asker here as it would on one node: the progress responses,
and the end of a synchronous wait (an HTTP invoke with a wait).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
from nats.aio.client import Client as NatsConnection
from nats.aio.msg import Msg

from core.contract import Core
from vocabulary import operations as ops
from vocabulary import twin_wire
from vocabulary.channels import TWIN
from vocabulary.envelope import NOTIFICATION, Message
from vocabulary.nats_confirm import confirmed

from . import subjects

log = logging.getLogger("wothub.nats")

TWIN_NOTIFICATIONS = f"{subjects.PREFIX}.twin.>"
# Only the hub's own NATS users may use it: no client's permissions name it.
ACTIONS = "wothub.node.action"
UNWATCHED_CHECK = 1.0  # seconds between checks whether any client here still watches
UNWATCHED_GRACE = 10.0  # seconds without a watching client before the drop starts


class OtherNodes:
    """Hands the notifications of every other node to ``router``; this node's own
    (``node``, in the ``Wothub-Node`` header) are skipped."""

    def __init__(self, router: Core, node: str) -> None:
        self.router = router
        self.node = node
        self.watched = False  # a client here subscribes: hand the notifications over
        self.grace = UNWATCHED_GRACE
        self._nc: NatsConnection | None = None
        self._twin: Any = None  # the subscription to the twin notifications, if any
        self._subscribing: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None

    async def follow(self, nc: NatsConnection) -> None:
        """Subscribe (not in a queue group: every node wants every notification): to
        the action statuses for good, to the twin notifications until nobody has
        watched for ``grace`` seconds, and again at the next watcher."""
        self._nc = nc
        await nc.subscribe(ACTIONS, cb=self._on_action)
        await self._subscribe()
        self.watched = self.router.watched()
        self.router.on_watch(self._watch)
        self.router.on_notifications_ready(self.ready)
        self._watcher = asyncio.create_task(self._unwatched(), name="other-nodes-watch")

    def stop(self) -> None:
        for task in (self._watcher, self._subscribing):
            if task is not None:
                task.cancel()

    async def ready(self) -> None:
        """Returns once the twin notifications are subscribed to (an SSE stream waits
        for it before it is answered, so it misses nothing of the other nodes')."""
        if self._subscribing is not None and not self._subscribing.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(self._subscribing)

    def _watch(self) -> None:
        """A client subscribed (called at once, before it is answered): the other nodes'
        notifications go to the router from now on. What was dropped before is not in
        the log, so a resume from before now resyncs."""
        if not self.watched:
            self.watched = True
            self.router.notification_gap()
        if self._twin is None and (self._subscribing is None or self._subscribing.done()):
            self._subscribing = asyncio.ensure_future(self._subscribe())

    async def _subscribe(self) -> None:
        assert self._nc is not None
        if self._twin is None:
            self._twin = await self._nc.subscribe(TWIN_NOTIFICATIONS, cb=self._on_twin)
            await confirmed(self._nc)

    async def _unwatched(self) -> None:
        """Once no client has watched for ``grace`` seconds (a stream that reconnects
        at once resumes without a resync), drop the notifications, and stop receiving
        them: receiving a message costs nats-py as much as handling the update."""
        loop = asyncio.get_running_loop()
        since: float | None = loop.time()
        while True:
            await asyncio.sleep(UNWATCHED_CHECK)  # the period of a check, no wait on anything
            if self.router.watched():
                since = None
                continue
            if since is None:
                since = loop.time()
            if loop.time() - since >= self.grace:
                self.watched = False
                if self._twin is not None and (
                    self._subscribing is None or self._subscribing.done()
                ):
                    twin, self._twin = self._twin, None
                    with contextlib.suppress(Exception):
                        await twin.unsubscribe()

    def action_status(self, message: Message) -> tuple[str, bytes, dict[str, str]]:
        """(subject, payload, headers) of an action status (a ``queryaction``
        notification) for the other nodes."""
        return ACTIONS, message.to_json(), {twin_wire.NODE: self.node}

    async def _on_twin(self, msg: Msg) -> None:
        if not self.watched or self._own(msg):
            return
        try:
            address = subjects.parse(msg.subject)
            if address.channel.family != TWIN:
                raise ValueError("not a twin subject")
            wire = twin_wire.rebuild(address, msg.data, msg.headers)
        except ValueError as exc:  # AddressError too; a node publishes none of these
            log.warning("ignoring a notification on %s: %s", msg.subject, exc)
            return
        self._publish(
            Message(
                NOTIFICATION,
                wire["operation"],
                address.thing_id,
                address.name,
                value=self._value(wire),
                message_id=wire.get("messageID", ""),
                sender_id=wire.get("senderID"),
                timestamp=wire.get("timestamp", ""),
            )
        )

    def _value(self, wire: dict[str, Any]) -> Any:
        """The value as this node's own notification of the change carries it."""
        operation = wire["operation"]
        if operation == ops.UPDATE_THING:
            # The diff of an updated TD is not on the wire (docs/cluster.md).
            return {"created": wire["value"]["created"]}
        if operation == ops.DELETE_THING:
            # Who may see it: the former owner, while this node's directory knows it.
            return {"owner": self.router.owner_of(wire["thingID"])}
        return wire["value"]

    async def _on_action(self, msg: Msg) -> None:
        if self._own(msg):
            return
        try:
            wire = orjson.loads(msg.data)
            status = wire["value"]
            message = Message(
                NOTIFICATION,
                ops.QUERY_ACTION,
                status["thingID"],
                status.get("name"),
                value=status,
                message_id=wire.get("messageID", ""),
                timestamp=wire.get("timestamp", ""),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            log.warning("ignoring an action status on %s: %r", msg.subject, exc)
            return
        self._publish(message)

    def _own(self, msg: Msg) -> bool:
        headers = msg.headers
        return headers is not None and headers.get(twin_wire.NODE) == self.node

    def _publish(self, message: Message) -> None:
        try:
            self.router.publish_from_other_node(message)
        except Exception:  # a bug of ours: the next notification must still come
            log.exception("handing on %s of %s failed", message.operation, message.thing_id)
