"""Reads answered from the twin, never from a device: property values, TDs, the
directory's listing and search, presence, and the state of actions and writes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from auth.accounts import HUB_ID
from digitwin.core import DigiTwin
from digitwin.requests import Record
from digitwin.search import search
from digitwin.selection import Selection
from vocabulary import operations as ops
from vocabulary.envelope import ABSENT, Message
from vocabulary.problems import BadRequest, NotFound

from .access import Access
from .authz import Client
from .connection import Connection
from .responses import response


class Queries:
    def __init__(self, twin: DigiTwin, access: Access, admit: Callable[[Client], None]) -> None:
        self.twin = twin
        self.access = access
        self.admit = admit

    # -- request messages ------------------------------------------------------------------

    def read_property(self, connection: Connection, message: Message) -> Message:
        thing_id = message.required_thing_id()
        self.access.require_thing(connection.client, ops.READ_PROPERTY, thing_id)
        entry = self.twin.read_property(thing_id, message.required_name())
        return response(
            message,
            output=entry.get("value", ABSENT),
            timestamp=entry.get("timestamp", ""),
        )

    def read_properties(self, connection: Connection, message: Message) -> Message:
        thing_id = message.required_thing_id()
        self.access.require_thing(connection.client, message.operation, thing_id)
        if message.operation == ops.READ_MULTIPLE_PROPERTIES:
            names = message.data
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise BadRequest("readmultipleproperties takes an array of property names")
            # Each one read: an unknown name is refused (404), a write-only one too (405).
            values = {name: self.twin.read_property(thing_id, name) for name in names}
        else:
            values = self.twin.read_all_properties(thing_id)
        output = {name: entry["value"] for name, entry in values.items() if "value" in entry}
        return response(message, output=output)

    def read_thing(self, connection: Connection, message: Message) -> Message:
        thing_id = message.required_thing_id()
        self.access.require_thing(connection.client, ops.READ_THING, thing_id)
        td = self.twin.twin_td(thing_id)
        if td is None:
            raise NotFound(f"no Thing {thing_id}", thingID=thing_id)
        return response(message, output=td)

    def query_action(self, connection: Connection, message: Message) -> Message:
        record = self.find_request(connection, message, ops.QUERY_ACTION)
        return response(message, output=record.to_status(), status=record.status)

    def query_all_actions(self, connection: Connection, message: Message) -> Message:
        thing_id = message.required_thing_id()
        grouped = self.requests_by_name(connection.client, thing_id, ops.INVOKE_ACTION)
        return response(message, output=grouped)

    def query_history(self, connection: Connection, message: Message) -> Message:
        """A page of a property's (or, with input ``kind`` "event", an event's) history;
        the rest of the input is the query (digitwin.history_query). Allowed to whoever
        may read the Thing: an agent its own Things', a viewer every Thing's."""
        thing_id, name = message.required_thing_id(), message.required_name()
        self.access.require_thing(connection.client, ops.QUERY_HISTORY, thing_id)
        params = {} if message.data is ABSENT else message.data
        if not isinstance(params, dict):
            raise BadRequest("queryhistory takes an object: kind, from, to, limit, ...")
        params = dict(params)
        kind = params.pop("kind", "property")
        if kind not in ("property", "event"):
            raise BadRequest(f"kind must be property or event, not {kind!r}", parameter="kind")
        output = self.twin.query_history(thing_id, kind, name, params)
        return response(message, output=output)

    def read_state(self, connection: Connection, message: Message) -> Message:
        """The Thing's state document (digitwin/state.py), to whoever may read it."""
        thing_id = message.required_thing_id()
        self.access.require_thing(connection.client, ops.READ_STATE, thing_id)
        return response(message, output=self.twin.read_state(thing_id))

    def find_request(self, connection: Connection, message: Message, permission: str) -> Record:
        """The action or write the message names, if the client may ``permission`` it
        (a cancel is the invoker's to make)."""
        if message.action_id is None:
            raise BadRequest(f"{message.operation} needs an actionID")
        record = self.twin.get_request(message.action_id)
        if (message.thing_id is not None and record.thing_id != message.thing_id) or (
            message.name is not None and record.name != message.name
        ):
            where = message.thing_id if message.name is None else f"{message.name!r}"
            raise NotFound(f"{where} has no request {message.action_id}")
        owner = record.sender_id if permission == ops.CANCEL_ACTION else None
        owner = owner or self.twin.owner_of(record.thing_id)
        self.access.require(connection.client, permission, record.thing_id, owner)
        return record

    # -- calls bindings make without a message ----------------------------------------------

    def list_things(
        self,
        client: Client,
        offset: int = 0,
        limit: int | None = None,
        selection: Selection | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        self.admit(client)
        self.access.require(client, ops.READ_THING, None, None)
        every = self.access.reads_every_thing(client)
        if selection is not None and not selection.everything:
            owner = None if every else client.id
            chosen = list(selection.records(self.twin.directory, owner=owner))
            records = chosen[offset:] if limit is None else chosen[offset : offset + limit]
            return list(self.twin.enriched_tds(records)), len(chosen)
        if every:
            page = list(self.twin.list_things(offset, limit, enriched=True))
            return page, self.twin.count_things()
        own = sorted(self.twin.things_of(client.id))
        chosen_ids = own[offset:] if limit is None else own[offset : offset + limit]
        return [td for i in chosen_ids if (td := self.twin.enriched_td(i)) is not None], len(own)

    def search_things(
        self, client: Client, query: str, selection: Selection | None = None
    ) -> list[Any]:
        self.admit(client)
        self.access.require(client, ops.READ_THING, None, None)
        every = self.access.reads_every_thing(client)
        if selection is not None and not selection.everything:
            owner = None if every else client.id
            return search(
                query, self.twin.enriched_tds(selection.records(self.twin.directory, owner=owner))
            )
        if every:
            return self.twin.search_things(query)
        own = sorted(self.twin.things_of(client.id))
        return search(query, (td for i in own if (td := self.twin.enriched_td(i)) is not None))

    def thing_description(
        self, client: Client, thing_id: str, *, admit: bool = True
    ) -> dict[str, Any]:
        if admit:
            self.admit(client)
        self.access.require_thing(client, ops.READ_THING, thing_id)
        td = self.twin.enriched_td(thing_id)
        if td is None:
            raise NotFound(f"no Thing {thing_id}", thingID=thing_id)
        return td

    def property_state(self, client: Client, thing_id: str, name: str) -> dict[str, Any]:
        self.admit(client)
        self.access.require_thing(client, ops.READ_PROPERTY, thing_id)
        return self.twin.read_property(thing_id, name)

    def thing_presence(self, client: Client, thing_id: str) -> dict[str, Any]:
        owner = self.twin.owner_of(thing_id)
        if owner is None and self.twin.thing(thing_id) is None:
            raise NotFound(f"no Thing {thing_id}", thingID=thing_id)
        if owner != client.id:  # who may list a Thing may see its presence
            self.access.require(client, ops.READ_THING, None, None)
            if not self.access.reads_every_thing(client):
                raise NotFound(f"no Thing {thing_id}", thingID=thing_id)
        if owner == HUB_ID:  # the hub's own Things are there whenever the hub answers
            return {"owner": owner, "online": True}
        return {"owner": owner, **self.twin.presence(thing_id)}

    def requests_by_name(
        self, client: Client, thing_id: str, operation: str
    ) -> dict[str, list[dict[str, Any]]]:
        self.access.require_thing(client, ops.QUERY_ALL_ACTIONS, thing_id)
        if self.twin.thing(thing_id) is None:
            raise NotFound(f"no Thing {thing_id}", thingID=thing_id)
        grouped: dict[str, list[dict[str, Any]]] = {}
        for record in self.twin.requests_of(thing_id):
            if record.operation == operation:
                grouped.setdefault(record.name, []).append(record.to_status())
        return grouped

    def request_status(self, record_id: str) -> dict[str, Any]:
        return self.twin.get_request(record_id).to_status()
