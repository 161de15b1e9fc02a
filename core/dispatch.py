"""One message from a binding, carried out: count it, take it from the client's rate,
route it by type and operation to the flow that handles it, and turn any refusal into an
error response (nothing escapes as an exception). Agents' reports are handled here."""

from __future__ import annotations

import time
from collections.abc import Callable

from bucketstore import StoreUnavailableError
from digitwin.core import DigiTwin
from vocabulary import operations as ops
from vocabulary.envelope import ABSENT, NOTIFICATION, REQUEST, RESPONSE, Message
from vocabulary.problems import BadRequest, Problem

from .access import Access
from .connection import Connection
from .connections import ADMITTED, Connections
from .limits import Limits, check_size
from .log_context import current as log_context
from .responses import error_response
from .stats import Counters
from .store_unavailable import store_unavailable

Handler = Callable[[Connection, Message], Message]


class Dispatch:
    def __init__(
        self,
        twin: DigiTwin,
        access: Access,
        connections: Connections,
        limits: Limits,
        counters: Counters,
        *,
        requests: dict[str, Handler],
        answer: Callable[[Connection, Message], None],
    ) -> None:
        self.twin = twin
        self.access = access
        self.connections = connections
        self.limits = limits
        self.counters = counters
        self._requests = requests  # operation -> handler
        self._answer = answer
        self._reports: dict[str, Callable[[Connection, Message], None]] = {
            ops.OBSERVE_PROPERTY: self._report_property,
            ops.OBSERVE_ALL_PROPERTIES: self._report_properties,
            ops.SUBSCRIBE_EVENT: self._report_event,
        }

    def handle(self, connection: Connection, message: Message) -> Message | None:
        started = time.perf_counter()
        message.sender_id = connection.client.id
        counters = self.counters
        counters.message_in(connection.binding, message.operation)
        context = log_context.set((connection, message))
        admitted = ADMITTED.set(connection.client.id)
        try:
            response = self._dispatch(connection, message)
            if response is not None:
                counters.message_out(connection.binding, message.operation)
                if response.error is not None:
                    counters.refuse_problem(response.error)
            return response
        finally:
            ADMITTED.reset(admitted)
            log_context.reset(context)
            counters.router_seconds.observe(time.perf_counter() - started)

    def _dispatch(self, connection: Connection, message: Message) -> Message | None:
        try:
            if not connection.trusted and message.message_type != RESPONSE:
                self.connections.take_rate(connection.client)
            if message.message_type == REQUEST:
                handler = self._requests.get(message.operation)
                if handler is None:
                    raise BadRequest(f"{message.operation} is not a request the hub takes")
                return handler(connection, message)
            if message.message_type == NOTIFICATION:
                report = self._reports.get(message.operation)
                if report is None:
                    raise BadRequest(
                        f"agents report with observeproperty, observeallproperties or "
                        f"subscribeevent notifications, not {message.operation}"
                    )
                report(connection, message)
                return None
            self._answer(connection, message)
            return None
        except Problem as problem:
            return error_response(message, problem)
        except StoreUnavailableError as exc:
            return error_response(message, store_unavailable(exc))

    # -- what agents report ------------------------------------------------------------------

    def _report_property(self, connection: Connection, message: Message) -> None:
        thing_id, name = message.required_thing_id(), message.required_name()
        self.access.require_thing(connection.client, ops.REPORT_PROPERTY, thing_id)
        if message.data is ABSENT:
            raise BadRequest("a property report needs a value")
        check_size("max_value_bytes", self.limits.max_value_bytes, message.data, "the value")
        self.twin.report_property(thing_id, name, message.data, message.timestamp)

    def _report_properties(self, connection: Connection, message: Message) -> None:
        # The envelope lets observeallproperties leave out thingID (a consumer's request
        # for every Thing); an agent's report is always about one Thing.
        thing_id = message.required_thing_id()
        self.access.require_thing(connection.client, ops.REPORT_PROPERTY, thing_id)
        values = message.data
        if not isinstance(values, dict) or not values:
            raise BadRequest("observeallproperties reports an object of property values")
        check_size("max_value_bytes", self.limits.max_value_bytes, values, "the values")
        for name, value in values.items():
            self.twin.report_property(thing_id, name, value, message.timestamp)

    def _report_event(self, connection: Connection, message: Message) -> None:
        thing_id, name = message.required_thing_id(), message.required_name()
        self.access.require_thing(connection.client, ops.REPORT_EVENT, thing_id)
        check_size("max_value_bytes", self.limits.max_value_bytes, message.data, "the event")
        self.twin.report_event(thing_id, name, message.data, message.timestamp)
