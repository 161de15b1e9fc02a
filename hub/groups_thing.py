"""Groups as a hub Thing (``urn:wothub:groups``), so that clients of every binding
(WebSocket, MQTT, NATS, and HTTP beside its /groups resources) define, read, write and
invoke groups through the router like any request. Every client may use it; each action
checks the client as its HTTP resource does (core/groups.py): managers and administrators
define and remove groups, and each member operation is authorized on that member."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bindings.http.forms import HttpForms
from bindings.http.group_td import group_td_of
from core.router import Router
from core.services import ServiceThing, service_td
from digitwin.groups import NAME
from vocabulary import operations as ops
from vocabulary.envelope import ABSENT
from vocabulary.identity import Client
from vocabulary.things import GROUPS_THING

_NAME = {"type": "string", "pattern": NAME.pattern}
_SELECTION = {
    "type": "object",
    "properties": {
        "agent": {"type": "string", "minLength": 1},
        "type": {"type": "string", "minLength": 1},
        "filter": {"type": "string", "minLength": 1},
    },
    "additionalProperties": False,
}
_TTL = {"type": "integer", "minimum": 1, "description": "seconds a member's request may wait"}
_OBJECT = {"type": "object"}


def _input(required: list[str], **properties: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def groups_thing(router: Router, http_forms: Callable[[], HttpForms]) -> ServiceThing:
    groups = router.groups

    def list_groups(client: Client, data: Any) -> Any:
        return groups.all(client)

    def define(client: Client, data: Any) -> Any:
        definition = {k: v for k, v in data.items() if k != "name"}
        group, created = groups.define(client, data["name"], definition)
        return {**group, "created": created}

    def remove(client: Client, data: Any) -> Any:
        return groups.remove(client, data["name"])

    def show(client: Client, data: Any) -> Any:
        return groups.show(client, data["name"])

    def td(client: Client, data: Any) -> Any:
        return group_td_of(groups, client, data["name"], http_forms())

    def read(client: Client, data: Any) -> Any:
        return groups.read(client, data["name"], data.get("offset", 0), data.get("limit"))

    def write(client: Client, data: Any) -> Any:
        return groups.request(
            client,
            data["name"],
            ops.WRITE_PROPERTY,
            data["property"],
            data["value"],
            data.get("ttl"),
        )

    def invoke(client: Client, data: Any) -> Any:
        return groups.request(
            client,
            data["name"],
            ops.INVOKE_ACTION,
            data["action"],
            data.get("input", ABSENT),
            data.get("ttl"),
        )

    def query(client: Client, data: Any) -> Any:
        return groups.status(client, data["id"])

    thing = service_td(
        GROUPS_THING,
        "Groups",
        "Named groups of Things (a list of ids, or a query by agent, @type and JSONPath "
        "filter): define them (managers, administrators), read every member's properties, "
        "write a property or invoke an action on every member (docs/groups.md)",
        {
            "listGroups": {"input": _input([]), "output": {"type": "array", "items": _OBJECT}},
            "defineGroup": {
                "description": "Create or replace a group: members (ids) or a query",
                "input": _input(
                    ["name"],
                    name=_NAME,
                    title={"type": "string"},
                    members={"type": "array", "items": {"type": "string", "minLength": 1}},
                    query=_SELECTION,
                ),
                "output": _OBJECT,
            },
            "removeGroup": {"input": _input(["name"], name=_NAME), "output": _OBJECT},
            "getGroup": {
                "description": "The group and its members now (memberIDs)",
                "input": _input(["name"], name=_NAME),
                "output": _OBJECT,
            },
            "groupTD": {
                "description": "The group's own TD: the affordances its members share",
                "input": _input(["name"], name=_NAME),
                "output": _OBJECT,
            },
            "readGroup": {
                "description": "A page of the group table: each member's property values",
                "input": _input(
                    ["name"],
                    name=_NAME,
                    offset={"type": "integer", "minimum": 0},
                    limit={"type": "integer", "minimum": 1},
                ),
                "output": _OBJECT,
            },
            "writeGroup": {
                "description": "Write a property of every member that has it",
                "input": _input(
                    ["name", "property", "value"],
                    name=_NAME,
                    property={"type": "string", "minLength": 1},
                    value={},
                    ttl=_TTL,
                ),
                "output": _OBJECT,
            },
            "invokeGroup": {
                "description": "Invoke an action of every member that has it",
                "input": _input(
                    ["name", "action"],
                    name=_NAME,
                    action={"type": "string", "minLength": 1},
                    input={},
                    ttl=_TTL,
                ),
                "output": _OBJECT,
            },
            "queryGroupRequest": {
                "description": "A group write's or action's status: each member's and the whole's",
                "input": _input(["id"], id={"type": "string", "minLength": 1}),
                "output": _OBJECT,
            },
        },
    )
    return ServiceThing(
        thing,
        {
            "listGroups": list_groups,
            "defineGroup": define,
            "removeGroup": remove,
            "getGroup": show,
            "groupTD": td,
            "readGroup": read,
            "writeGroup": write,
            "invokeGroup": invoke,
            "queryGroupRequest": query,
        },
    )
