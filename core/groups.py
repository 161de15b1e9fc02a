"""Operations on groups of Things (digitwin.groups): administer them, read every
member's properties as one table, write a property or invoke an action on every member
that has it, and say which Things are members now (for a group's notification stream).

Every member operation is authorized as if the client did it on that member alone: a
member the client may not read, write or invoke is refused for that member only (its
problem is in the answer), the others go ahead. A member's write or action is queued
like any request (delivered at once to a connected agent, kept for an offline one); the
group request records which member request each member got, and its status is made
from theirs.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from digitwin.core import DigiTwin
from digitwin.groups import (
    GROUP_ID_PREFIX,
    Group,
    GroupRequest,
    Groups,
    new_request_id,
    parse_definition,
)
from vocabulary import clock
from vocabulary import operations as ops
from vocabulary.envelope import ABSENT, COMPLETED, PENDING, TERMINAL
from vocabulary.problems import BadRequest, NotFound, Problem

from .access import Access
from .authz import Client
from .delivery import Delivery

log = logging.getLogger("wothub.router")

MAX_PAGE = 1000  # rows of a group table in one answer
# How a group is observed on the bindings whose requests carry the operation.
GROUP_OBSERVING = (
    ops.OBSERVE_ALL_PROPERTIES,
    ops.UNOBSERVE_ALL_PROPERTIES,
    ops.SUBSCRIBE_ALL_EVENTS,
    ops.UNSUBSCRIBE_ALL_EVENTS,
)
_AFFORDANCES = {ops.WRITE_PROPERTY: "properties", ops.INVOKE_ACTION: "actions"}


class GroupOps:
    def __init__(
        self,
        groups: Groups,
        twin: DigiTwin,
        access: Access,
        delivery: Delivery,
        admit: Callable[[Client], None],
    ) -> None:
        self.groups = groups
        self.twin = twin
        self.access = access
        self.delivery = delivery
        self.admit = admit
        self.changed: Callable[[], None] = lambda: None  # a group defined or removed

    def follow_other_nodes(self, loop: asyncio.AbstractEventLoop) -> None:
        """A group another node defines or removes changes who is a member here too."""
        self.groups.on_change(lambda: self.changed(), loop)

    # -- administration ----------------------------------------------------------------------

    def all(self, client: Client) -> list[dict[str, Any]]:
        self._may_read(client)
        return [self._described(client, group) for group in self.groups.all()]

    def define(self, client: Client, name: str, definition: Any) -> tuple[dict[str, Any], bool]:
        """Create or replace a group (managers and administrators); (group, created)."""
        self.admit(client)
        self.access.require(client, ops.MANAGE_GROUPS, None, None)
        group = parse_definition(name, definition)
        created = self.groups.put(group, client.id)
        self.changed()
        log.info("%s %s group %s", client.id, "created" if created else "changed", name)
        return group.to_dict(), created

    def remove(self, client: Client, name: str) -> dict[str, Any]:
        self.admit(client)
        self.access.require(client, ops.MANAGE_GROUPS, None, None)
        group = self.groups.delete(name)
        self.changed()
        log.info("%s removed group %s", client.id, name)
        return group.to_dict()

    def show(self, client: Client, name: str) -> dict[str, Any]:
        """The group with its members now (those the client may read), and the listed
        ids that are not registered (``missing``)."""
        self._may_read(client)
        group = self.groups.get(name)
        members = self.members(client, group)
        out = self._described(client, group) | {"memberIDs": members}
        if group.members is not None and self.access.reads_every_thing(client):
            out["missing"] = [i for i in group.members if self.twin.thing(i) is None]
        return out

    def _described(self, client: Client, group: Group) -> dict[str, Any]:
        """The group's definition; to a client that reads only its own Things (an
        agent), the listed ids are only its own."""
        out = group.to_dict()
        if group.members is not None and not self.access.reads_every_thing(client):
            own = set(self.twin.things_of(client.id))
            out["members"] = [i for i in group.members if i in own]
        return out

    def members(self, client: Client, group: Group | str) -> list[str]:
        """The group's registered members the client may read, in id order."""
        if isinstance(group, str):
            group = self.groups.get(group)
        ids = self._registered_members(group)
        if self.access.reads_every_thing(client):
            return ids
        own = set(self.twin.things_of(client.id))
        return [i for i in ids if i in own]

    def members_of_thing(self, group_id: str) -> list[str]:
        """Every registered member of the group whose Thing id this is (NotFound if
        there is none), for those who observe it: each notification is checked per
        subscriber."""
        return self._registered_members(self.groups.get(group_id.removeprefix(GROUP_ID_PREFIX)))

    def observe_forms(self, group_id: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """The bindings' forms (and their terms' prefixes) to observe the group with
        requests on its Thing id (``observeallproperties`` ...): for the group's TD."""
        forms: list[dict[str, Any]] = []
        prefixes: dict[str, str] = {}
        for provider in self.twin.form_providers:
            offered = provider.forms(group_id, "group", None, GROUP_OBSERVING)
            if offered:
                forms += offered
                prefixes |= getattr(provider, "context", {})
        return forms, prefixes

    def _registered_members(self, group: Group) -> list[str]:
        ids = self.groups.members(group, self.twin.directory)
        if group.members is not None:
            ids = [i for i in ids if self.twin.thing(i) is not None]
        return ids

    def td_parts(
        self, client: Client, name: str
    ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """What the group's own TD is made of, from one reading of the group: the group
        as ``show`` gives it, and the affordances every member has (by name, as the
        first member declares them, without its forms)."""
        shown = self.show(client, name)
        shared: dict[str, dict[str, Any]] = {}
        for i, thing_id in enumerate(shown["memberIDs"]):
            record = self.twin.thing(thing_id)
            td = record.td if record is not None else {}
            for kind in ("properties", "actions", "events"):
                mine = td.get(kind) or {}
                if i == 0:
                    shared[kind] = {
                        n: {k: v for k, v in a.items() if k != "forms"}
                        for n, a in mine.items()
                        if isinstance(a, dict)
                    }
                else:
                    shared[kind] = {n: a for n, a in shared[kind].items() if n in mine}
        return shown, shared

    # -- reading -----------------------------------------------------------------------------

    def read(
        self, client: Client, name: str, offset: int = 0, limit: int | None = None
    ) -> dict[str, Any]:
        """A page of the group table: one row per member (in id order) with its
        properties' latest values, or the problem that refused reading that member."""
        self._may_read(client)
        group = self.groups.get(name)
        ids = self.groups.members(group, self.twin.directory)
        if not self.access.reads_every_thing(client):  # an agent: its own members only
            own = set(self.twin.things_of(client.id))
            ids = [i for i in ids if i in own]
        limit = min(limit or MAX_PAGE, MAX_PAGE)
        rows = []
        for thing_id in ids[offset : offset + limit]:
            row: dict[str, Any] = {"thingID": thing_id}
            try:
                self.access.require_thing(client, ops.READ_ALL_PROPERTIES, thing_id)
                values = self.twin.read_all_properties(thing_id)
                row["values"] = {n: e["value"] for n, e in values.items() if "value" in e}
                row["timestamps"] = {n: e["timestamp"] for n, e in values.items() if "value" in e}
            except Problem as problem:
                row["error"] = problem.to_dict()
            rows.append(row)
        return {"group": name, "total": len(ids), "offset": offset, "rows": rows}

    # -- writes and actions ------------------------------------------------------------------

    def request(
        self,
        client: Client,
        name: str,
        operation: str,
        affordance: str,
        data: Any = ABSENT,
        ttl: float | None = None,
    ) -> dict[str, Any]:
        """Write a property (``writeproperty``) or invoke an action (``invokeaction``) on
        every member that has it; the group request's status."""
        if operation not in _AFFORDANCES:
            raise BadRequest(f"a group takes writeproperty or invokeaction, not {operation}")
        if not isinstance(affordance, str) or not affordance:
            raise BadRequest("name the property or action")
        self._may_read(client)
        group = self.groups.get(name)
        kind = _AFFORDANCES[operation]
        now = clock.now()
        request = GroupRequest(
            new_request_id(now), name, operation, affordance, data, client.id, now
        )
        targets = []
        for thing_id, record in self.groups.member_records(group, self.twin.directory):
            if record is None:
                request.refused[thing_id] = NotFound(f"no Thing {thing_id}").to_dict()
            elif affordance not in (record.td.get(kind) or {}):
                request.skipped.append(thing_id)
            else:
                targets.append(thing_id)
        queued, refused = self.delivery.queue_many(
            client, operation, targets, affordance, data, ttl
        )
        for thing_id, problem in refused.items():
            request.refused[thing_id] = problem.to_dict()
        request.requests = {r.thing_id: r.id for r in queued}
        self.groups.add_request(request)
        log.info(
            "%s %s %s on group %s: %d queued, %d refused, %d without it",
            client.id,
            operation,
            affordance,
            name,
            len(request.requests),
            len(request.refused),
            len(request.skipped),
        )
        return self._status(request, {r.thing_id: {"status": r.status} for r in queued})

    def status(self, client: Client, request_id: str) -> dict[str, Any]:
        """A group request's status now: each member's ActionStatus and the whole's.
        Its sender's to read, and administrators'."""
        self.admit(client)
        request = self.groups.request(request_id)
        if request.sender_id != client.id and not self.access.overrides_ownership(client):
            raise NotFound(f"no group request {request_id!r}")
        members = {}
        for thing_id, record_id in request.requests.items():
            record = self.twin.requests.get(record_id)
            members[thing_id] = (
                record.to_status() if record is not None else {"id": record_id, "status": "gone"}
            )
        return self._status(request, members)

    def _status(self, request: GroupRequest, members: dict[str, dict[str, Any]]) -> dict[str, Any]:
        counts = Counter(status["status"] for status in members.values())
        if request.refused:
            counts["refused"] = len(request.refused)
        open_ = [s for s in counts if s not in TERMINAL and s not in ("refused", "gone")]
        if open_:
            overall = PENDING if open_ == [PENDING] else "running"
        elif counts.get(COMPLETED, 0) == sum(counts.values()):
            overall = COMPLETED
        else:
            overall = "failed"
        out: dict[str, Any] = {
            "id": request.id,
            "group": request.group,
            "operation": request.operation,
            "name": request.name,
            "status": overall,
            "counts": dict(counts),
            "members": members,
            "refused": request.refused,
            "skipped": request.skipped,
            "timeRequested": clock.rfc3339(request.time_requested),
            "senderID": request.sender_id,
        }
        if request.input is not ABSENT:
            out["input"] = request.input
        return out

    def _may_read(self, client: Client) -> None:
        self.admit(client)
        self.access.require(client, ops.READ_THING, None, None)
