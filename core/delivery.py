"""Actions and property writes on their way to agents and back.

A consumer's ``invokeaction`` or ``writeproperty`` is recorded in the twin's queue, then
delivered to the agent's newest connection at once or, when the agent is offline, on its
next connection. The agent's answers move the record along; each change is told to the
connection that asked (a response with its correlation id) and ends any synchronous wait.
The hub's own Things (services) answer at once instead.

Several nodes sharing one store (cluster mode, ``follow_other_nodes``): the queue in
the store is the only channel between them. A node delivers the pending requests of
the Things whose agent is connected to it, whichever node queued them, claiming each
(pending -> delivered only if still pending: of two nodes, one sends). The node that
asked learns each change of its records from the store and tells its asker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from auth.accounts import HUB_ID
from digitwin.core import DigiTwin
from digitwin.requests import Record
from vocabulary import clock
from vocabulary import operations as ops
from vocabulary.envelope import (
    ABSENT,
    CANCELLED,
    COMPLETED,
    DELIVERED,
    FAILED,
    PENDING,
    REQUEST,
    RESPONSE,
    RUNNING,
    TERMINAL,
    Message,
)
from vocabulary.problems import BadRequest, Conflict, Problem

from .access import Access
from .authz import Client
from .connection import Connection
from .connections import Connections
from .limits import LimitExceeded, Limits, check_size
from .queries import Queries
from .responses import response
from .services import ServiceThing
from .stats import Counters

log = logging.getLogger("wothub.router")


class Delivery:
    def __init__(
        self,
        twin: DigiTwin,
        access: Access,
        connections: Connections,
        queries: Queries,
        limits: Limits,
        counters: Counters,
        *,
        new_deadline: Callable[[], None],
    ) -> None:
        self.twin = twin
        self.access = access
        self.connections = connections
        self.queries = queries
        self.limits = limits
        self.counters = counters
        self.new_deadline = new_deadline
        # request id -> the asker: its connection, correlation id and the last state it
        # was told (status, output, error), so that no state is told twice
        self._origin: dict[str, tuple[Connection, str | None, tuple[Any, ...]]] = {}
        self._waiters: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}
        self._services: dict[str, ServiceThing] = {}
        self._following = False  # other nodes share the store (follow_other_nodes)
        self._sent: dict[str, Connection] = {}  # with other nodes: delivered here, open

    def follow_other_nodes(self, loop: asyncio.AbstractEventLoop) -> None:
        """Share the request queue with the other nodes of a shared store, on ``loop``:
        deliver what they queue for agents connected here, and tell this node's askers
        and waiters how their requests go on other nodes. Never called back on LevelDB."""
        self._following = True
        self.twin.requests.follow(loop, changed=self._changed_elsewhere, queued=self._queued)

    def add_service(self, service: ServiceThing) -> None:
        self.twin.update_thing(service.td, HUB_ID, keep_owner=True)
        self._services[service.thing_id] = service

    # -- from consumers --------------------------------------------------------------------

    def queue(self, connection: Connection, message: Message) -> Message:
        """``invokeaction`` or ``writeproperty``: recorded, then delivered if it can be."""
        thing_id, name = message.required_thing_id(), message.required_name()
        service = self._services.get(thing_id)
        if service is not None:
            return self._invoke_service(connection, message, service)
        self.access.require_thing(connection.client, message.operation, thing_id)
        what = "the action input" if message.operation == ops.INVOKE_ACTION else "the value"
        self.check_queueable(thing_id, [(what, message.data)])
        record = self.twin.request(
            message.operation,
            thing_id,
            name,
            message.data,
            connection.client.id,
            correlation_id=message.correlation_id,
            ttl=message.ttl,
        )
        if self._following:  # older requests queued at other nodes may still wait
            record = self._deliver_pending(record.thing_id).get(record.id, record)
        else:
            record = self.deliver(record)
        told = (record.status, ABSENT, None)
        self._origin[record.id] = (connection, message.correlation_id, told)
        self.new_deadline()  # the new expiry may be the next deadline
        return response(message, status=record.status, action_id=record.id)

    def queue_many(
        self,
        client: Client,
        operation: str,
        thing_ids: list[str],
        name: str,
        data: Any,
        ttl: float | None = None,
    ) -> tuple[list[Record], dict[str, Problem]]:
        """``queue`` on many Things at once (a group's members): each authorized, held to
        the queue limits and checked against its schema as ``queue`` does, and refused
        for that Thing only (returned with its problem); the others recorded in a few
        batch writes, then delivered to their agents connected here. Nobody is told of
        the members' later changes: the group request's status is read from their
        records."""
        what = "the action input" if operation == ops.INVOKE_ACTION else "the value"
        refused: dict[str, Problem] = {}
        allowed = []
        for thing_id in thing_ids:
            try:
                self.access.require_thing(client, operation, thing_id)
                if thing_id in self._services:  # it answers at once: nothing to queue
                    raise BadRequest(f"{thing_id} is a hub Thing: invoke it on its own")
                self.check_queueable(thing_id, [(what, data)])
            except Problem as problem:
                refused[thing_id] = problem
            else:
                allowed.append(thing_id)
        # Alone on the store, a connected agent's request is stored delivered at once (no
        # second write to claim it). With other nodes, older requests queued there may
        # wait: each Thing's pending ones are delivered in order, as ``queue`` does.
        agents: dict[str, Connection] = {}
        if not self._following:
            for thing_id in allowed:
                if connections := self.connections.of_agent(thing_id):
                    agents[thing_id] = connections[-1]
        records, invalid = self.twin.request_many(
            operation, allowed, name, data, client.id, ttl=ttl, delivered=agents
        )
        refused |= invalid
        queued = []
        for record in records:
            if record.thing_id in agents:
                self._send(record, agents[record.thing_id])
            elif self._following:
                record = self._deliver_pending(record.thing_id).get(record.id, record)
            queued.append(record)
        self.new_deadline()  # the new expiries may hold the next deadline
        return queued, refused

    def _invoke_service(
        self, connection: Connection, message: Message, service: ServiceThing
    ) -> Message:
        """The hub's own Things answer at once; nothing is queued."""
        thing_id, name = service.thing_id, message.required_name()
        if message.operation != ops.INVOKE_ACTION:
            raise BadRequest(f"{thing_id} has no writable properties")
        self.access.require_thing(connection.client, ops.INVOKE_ACTION, thing_id)
        self.twin.check_action_input(thing_id, name, message.data)
        output = service.invoke(connection.client, name, message.data)
        log.info("%s used %s %s", connection.client.id, thing_id, name)
        return response(message, output=output, status=COMPLETED)

    def cancel(self, connection: Connection, message: Message) -> Message:
        record = self.queries.find_request(connection, message, ops.CANCEL_ACTION)
        if record.final:
            raise Conflict(f"{record.operation} {record.id} has already ended ({record.status})")
        # With other nodes, the node that delivered it tells the agent (known before the
        # change: a final change forgets where it was sent).
        tell_agent = record.status in (DELIVERED, RUNNING) and (
            not self._following or record.id in self._sent
        )
        record = self.twin.update_request(
            record,
            "cancelled",
            error={
                "type": "about:blank",
                "title": "Cancelled",
                "status": 410,
                "detail": f"cancelled by {connection.client.id}",
            },
        )
        if tell_agent:
            self._cancel_at_agent(record, connection.client.id)
        return response(message, output=record.to_status(), status=record.status)

    def _cancel_at_agent(self, record: Record, sender_id: str | None) -> None:
        for agent in self.connections.of_agent(record.thing_id)[-1:]:
            agent.send(
                Message(
                    REQUEST,
                    ops.CANCEL_ACTION,
                    record.thing_id,
                    record.name,
                    action_id=record.id,
                    sender_id=sender_id,
                )
            )

    def check_writes(self, client: Client, thing_id: str, values: dict[str, Any]) -> None:
        self.access.require_thing(client, ops.WRITE_PROPERTY, thing_id)
        self.check_queueable(thing_id, [(f"the value of {n!r}", v) for n, v in values.items()])
        for name, value in values.items():
            self.twin.check_write(thing_id, name, value)

    def check_queueable(self, thing_id: str, inputs: list[tuple[str, Any]]) -> None:
        """The limits on queued requests, for ``inputs`` ((what, data) each) about to be
        queued together: their sizes, and room for all of them in the Thing's queue."""
        limits = self.limits
        for what, data in inputs:
            check_size("max_value_bytes", limits.max_value_bytes, data, what)
        maximum = limits.max_queued_actions
        if maximum is not None:
            queued = self.twin.requests.count_open(thing_id, maximum)
            if queued + len(inputs) > maximum:
                raise LimitExceeded(
                    "max_queued_actions",
                    f"{thing_id} has {queued} actions and writes waiting for its agent; "
                    f"{len(inputs)} more would pass the most the hub queues for one Thing "
                    f"(max_queued_actions); try again when the agent has taken some",
                    retry_after=30,
                )

    # -- to and from agents ------------------------------------------------------------------

    def deliver(self, record: Record, connection: Connection | None = None) -> Record:
        """Send a request to its agent now if it is connected (newest connection);
        returns the record as it is now. Marking it delivered is a claim: when another
        node delivered, cancelled or expired it meanwhile, it is not sent."""
        if connection is None:
            connections = self.connections.of_agent(record.thing_id)
            if not connections:
                return record
            connection = connections[-1]
        if record.status in (PENDING, DELIVERED):
            try:
                record = self.twin.update_request(record, DELIVERED, if_status=record.status)
            except Conflict:
                return self.twin.requests.get(record.id) or record
        self._send(record, connection)
        return record

    def _send(self, record: Record, connection: Connection) -> None:
        """A request to the agent connection, claimed (marked delivered) already."""
        self.counters.message_out(connection.binding, record.operation)
        connection.send(
            Message(
                REQUEST,
                record.operation,
                record.thing_id,
                record.name,
                input=record.input,
                correlation_id=record.id,
                action_id=record.id,
                sender_id=record.sender_id,
                timestamp=clock.rfc3339(record.time_requested),
            )
        )
        if self._following:
            self._sent[record.id] = connection

    def _deliver_pending(self, thing_id: str) -> dict[str, Record]:
        """Deliver the Thing's pending requests in arrival order, if its agent is
        connected here; returns the records delivered (or claimed elsewhere) by id."""
        connections = self.connections.of_agent(thing_id)
        if not connections:
            return {}
        return {
            record.id: self.deliver(record, connections[-1])
            for record in self.twin.requests.open_for_thing(thing_id)
            if record.status == PENDING
        }

    def restore_configuration(self, agent_id: str) -> None:
        """Queue the configuration of the agent's Things that ask for it back
        (docs/digitwin.md); ``deliver_queued`` then sends it with the rest."""
        for thing_id in self.twin.directory.things_of(agent_id):
            restored = self.twin.restore_configuration(thing_id, HUB_ID)
            if restored:
                log.info("restoring %s of %s", ", ".join(r.name for r in restored), thing_id)
                self.new_deadline()  # their expiry may be the next deadline

    def deliver_queued(self, connection: Connection) -> None:
        """Everything not finished for the agent's Things, in order, to a new connection."""
        for record in self.twin.open_requests_of_agent(connection.client.id):
            self.deliver(record, connection)

    def answer(self, connection: Connection, message: Message) -> None:
        """An agent's response to a request it was given: progress or the result."""
        record_id = message.action_id or message.correlation_id
        if record_id is None:
            raise BadRequest("an answer needs the actionID or correlationID of its request")
        record = self.twin.get_request(record_id)
        self.access.require_thing(connection.client, ops.ANSWER_REQUEST, record.thing_id)
        status = message.status or (FAILED if message.error else COMPLETED)
        if status not in (RUNNING, COMPLETED, FAILED):
            raise BadRequest(f"an agent answers with running, completed or failed, not {status}")
        error = message.error
        if status == FAILED and error is None:
            error = {"type": "about:blank", "title": "Failed", "status": 500, "detail": "failed"}
        self.twin.update_request(record, status, output=message.output, error=error)

    # -- back to the asker ---------------------------------------------------------------------

    def changed(self, status: dict[str, Any]) -> None:
        """Tell whoever asked for a request how it is doing, and wake synchronous waiters.
        A state already told (the same change reported twice) is not told again."""
        record_id = status["id"]
        final = status["status"] in TERMINAL
        origin = self._origin.pop(record_id, None) if final else self._origin.get(record_id)
        if origin is not None:
            connection, correlation_id, told = origin
            state = (status["status"], status.get("output", ABSENT), status.get("error"))
            if connection.closed:
                self._origin.pop(record_id, None)
            elif state != told:
                if not final:
                    self._origin[record_id] = (connection, correlation_id, state)
                self.counters.message_out(connection.binding, status["operation"])
                connection.send(
                    Message(
                        RESPONSE,
                        status["operation"],
                        status["thingID"],
                        status["name"],
                        output=status.get("output", ABSENT),
                        error=status.get("error"),
                        status=status["status"],
                        correlation_id=correlation_id,
                        action_id=record_id,
                    )
                )
        if final:
            self._sent.pop(record_id, None)
            for future in self._waiters.pop(record_id, []):
                if not future.done():
                    future.set_result(status)

    # -- from other nodes ------------------------------------------------------------------

    def _queued(self, thing_id: str) -> None:
        """Another node queued a request for the Thing."""
        self._deliver_pending(thing_id)

    def _changed_elsewhere(self, record_id: str) -> None:
        """Another node changed a request: its asker, its waiters or the agent it was
        delivered to may be here."""
        delivered_here = record_id in self._sent
        if not (delivered_here or record_id in self._origin or record_id in self._waiters):
            return
        record = self.twin.requests.get(record_id)
        if record is None:
            return  # pruned
        if delivered_here and record.status == CANCELLED:
            self._cancel_at_agent(record, None)  # the record's error says who cancelled
        self.changed(record.to_status())

    def wait_for(self, record_id: str) -> asyncio.Future[dict[str, Any]]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        record = self.twin.get_request(record_id)
        if record.final:
            future.set_result(record.to_status())
        else:
            self._waiters.setdefault(record_id, []).append(future)
        return future

    def stop_waiting(self, record_id: str, future: asyncio.Future[dict[str, Any]]) -> None:
        waiters = self._waiters.get(record_id)
        if waiters is not None and future in waiters:
            waiters.remove(future)
            if not waiters:
                del self._waiters[record_id]
        future.cancel()
