"""Changes to the directory: register or replace a TD, patch it, delete it, within the
limits on TD size and on the number of Things one agent registers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from auth.accounts import HUB_ID
from digitwin.core import DigiTwin
from vocabulary import operations as ops
from vocabulary.envelope import COMPLETED, Message
from vocabulary.problems import BadRequest, NotFound

from .access import Access
from .authz import Client
from .connection import Connection
from .limits import LimitExceeded, Limits, check_size
from .responses import response


def td_size_check(limits: Limits) -> Callable[[dict[str, Any], str | None], None] | None:
    """The twin's check of a TD (whole, or the result of a merge patch) against
    ``max_td_bytes``; None when there is no limit."""
    maximum = limits.max_td_bytes
    if maximum is None:
        return None

    def check(td: dict[str, Any], owner: str | None) -> None:
        if owner != HUB_ID:  # the hub's own Things are not a client's TDs
            check_size("max_td_bytes", maximum, td, "the TD")

    return check


class Things:
    def __init__(
        self,
        twin: DigiTwin,
        access: Access,
        limits: Limits,
        admit: Callable[[Client], None],
        *,
        new_deadline: Callable[[], None],
    ) -> None:
        self.twin = twin
        self.access = access
        self.limits = limits
        self.admit = admit
        self.new_deadline = new_deadline

    def update_thing(self, connection: Connection, message: Message) -> Message:
        client = connection.client
        td = message.data
        thing_id = td.get("id") if isinstance(td, dict) else None
        if thing_id is not None and not isinstance(thing_id, str):
            raise BadRequest("the TD's id must be a string")
        if message.thing_id is not None and thing_id is None:
            # A request that names its Thing (on the buses, the address may name it) is a
            # PUT /things/{id}: the TD says the same id, or it would land under a new one.
            raise BadRequest(
                f"the TD has no id; the request names {message.thing_id}",
                validationErrors=[{"field": "id", "description": "is required"}],
            )
        if message.thing_id is not None and thing_id is not None and message.thing_id != thing_id:
            raise BadRequest(f"thingID {message.thing_id} differs from the TD's id {thing_id}")
        owner = self.twin.owner_of(thing_id) if thing_id else None
        self.access.require(client, ops.UPDATE_THING, thing_id, owner)
        maximum = self.limits.max_things_per_agent
        if owner is None and maximum is not None and client.is_agent:
            owned = len(self.twin.things_of(client.id))
            if owned >= maximum:
                raise LimitExceeded(
                    "max_things_per_agent",
                    f"{client.id} has registered {owned} Things, the most the "
                    f"hub takes from one agent (max_things_per_agent); delete one first",
                    retry_after=60,
                )
        keep = self.access.overrides_ownership(client)
        record, created = self.twin.update_thing(td, client.id, keep_owner=keep)
        if record.expires is not None:
            self.new_deadline()
        return response(
            message, thing_id=record.thing_id, output={"id": record.thing_id, "created": created}
        )

    def delete_thing(self, connection: Connection, message: Message) -> Message:
        client = connection.client
        thing_id = message.required_thing_id()
        self.access.require_thing(client, ops.DELETE_THING, thing_id)
        keep = self.access.overrides_ownership(client)
        self.twin.delete_thing(thing_id, client.id, keep_owner=keep)
        return response(message, status=COMPLETED)

    def patch_thing(self, client: Client, thing_id: str, patch: Any) -> None:
        self.admit(client)
        owner = self.twin.owner_of(thing_id)
        if owner is None and self.twin.thing(thing_id) is None:
            raise NotFound(f"no Thing {thing_id}", thingID=thing_id)
        self.access.require(client, ops.UPDATE_THING, thing_id, owner)
        keep = self.access.overrides_ownership(client)
        record = self.twin.patch_thing(thing_id, patch, client.id, keep_owner=keep)
        if record.expires is not None:
            self.new_deadline()
