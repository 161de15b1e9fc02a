"""Fixtures for router tests: a real LevelDB store, the real core and router, and the
role table of docs/auth.md standing in for the auth package's authorizer."""

import asyncio
import itertools

import pytest

from bucketstore import open_store
from digitwin import operations as ops
from digitwin.core import DigiTwin, TwinConfig
from digitwin.envelope import parse_message
from hub.authz import Client
from hub.router import Router

READ = {
    ops.READ_PROPERTY,
    ops.READ_ALL_PROPERTIES,
    ops.READ_MULTIPLE_PROPERTIES,
    ops.OBSERVE_PROPERTY,
    ops.UNOBSERVE_PROPERTY,
    ops.OBSERVE_ALL_PROPERTIES,
    ops.UNOBSERVE_ALL_PROPERTIES,
    ops.SUBSCRIBE_EVENT,
    ops.UNSUBSCRIBE_EVENT,
    ops.SUBSCRIBE_ALL_EVENTS,
    ops.UNSUBSCRIBE_ALL_EVENTS,
    ops.QUERY_ACTION,
    ops.QUERY_ALL_ACTIONS,
    ops.READ_THING,
}
AGENT = {ops.UPDATE_THING, ops.DELETE_THING, ops.REPORT_PROPERTY, ops.REPORT_EVENT}
AGENT |= {ops.ANSWER_REQUEST, ops.READ_THING}
ROLES = {
    "viewer": READ,
    "operator": READ | {ops.INVOKE_ACTION, ops.CANCEL_ACTION},
    "manager": READ | {ops.INVOKE_ACTION, ops.CANCEL_ACTION, ops.WRITE_PROPERTY},
    "agent": AGENT,
}


class RoleTable:
    """The roles of docs/auth.md as a table (the auth package replaces it)."""

    def authorize(self, client, operation, thing_id, owner):
        if client.role == "admin":
            return None
        if operation not in ROLES.get(client.role, set()):
            return f"role {client.role} may not {operation}"
        # Agents act on their own Things only; consumers may cancel only the actions they
        # invoked (the owner of a cancel is the invoker). Registering a TD that another
        # agent owns is the directory's Conflict, and "every Thing" is filtered per Thing.
        owned = client.role == "agent" or operation == ops.CANCEL_ACTION
        if owned and thing_id is not None and operation != ops.UPDATE_THING and owner != client.id:
            return f"{operation} on {thing_id} is not for {client.id}"
        return None

    def overrides_ownership(self, client):
        return client.role == "admin"


def lamp_td(thing_id="urn:dev:ops:32473-lamp-1", title="Lamp"):
    return {
        "@context": "https://www.w3.org/2022/wot/td/v1.1",
        "id": thing_id,
        "title": title,
        "securityDefinitions": {"nosec_sc": {"scheme": "nosec"}},
        "security": "nosec_sc",
        "properties": {
            "on": {"type": "boolean", "forms": [{"href": "https://lamp.local/on"}]},
            "brightness": {
                "type": "integer",
                "minimum": 0,
                "maximum": 100,
                "forms": [{"href": "https://lamp.local/brightness"}],
            },
            "model": {
                "type": "string",
                "readOnly": True,
                "forms": [{"href": "https://lamp.local/model"}],
            },
        },
        "actions": {
            "toggle": {"forms": [{"href": "https://lamp.local/toggle"}]},
            "fade": {
                "input": {
                    "type": "object",
                    "properties": {"level": {"type": "integer", "minimum": 0, "maximum": 100}},
                    "required": ["level"],
                },
                "output": {"type": "integer"},
                "forms": [{"href": "https://lamp.local/fade"}],
            },
        },
        "events": {
            "overheated": {"data": {"type": "number"}, "forms": [{"href": "https://lamp.local/oh"}]}
        },
    }


_ids = itertools.count()


def message(message_type, operation, thing_id=None, name=None, **fields):
    """A message as a binding would hand it over: JSON through the strict parser."""
    wire = {"messageType": message_type, "operation": operation, **fields}
    if thing_id is not None:
        wire["thingID"] = thing_id
    if name is not None:
        wire["name"] = name
    if message_type == "request":
        wire.setdefault("correlationID", f"c{next(_ids)}")
    return parse_message(wire, sender_id="spoofed-by-the-wire")


def request(operation, thing_id=None, name=None, **fields):
    return message("request", operation, thing_id, name, **fields)


def notification(operation, thing_id=None, name=None, **fields):
    return message("notification", operation, thing_id, name, **fields)


async def receive(connection, timeout=2.0):
    """The next message the router queued for a connection."""
    _, msg = await asyncio.wait_for(connection.next(), timeout)
    return msg


async def drain(connection):
    """Everything queued for a connection right now (next() does not wait for these)."""
    out = []
    while connection.pending():
        out.append((await connection.next())[1])
    return out


class Hub:
    """A store, core and router on a LevelDB directory, reopened at will."""

    def __init__(self, path, **config):
        self.path = path
        self.config = TwinConfig(**config)
        self.store = self.twin = self.router = None

    async def open(self, **router_options):
        self.store = open_store(self.path)
        self.twin = DigiTwin(self.store, self.config)
        self.router = Router(self.twin, RoleTable(), **router_options)
        await self.router.start()
        return self

    async def close(self):
        await self.router.stop()
        self.twin.close()
        self.store.close()

    def connect(self, client_id, role):
        return self.router.connect(Client(client_id, role), "test")

    def register(self, agent, td=None):
        response = self.router.handle(agent, request("updatething", input=td or lamp_td()))
        assert response.error is None, response.error
        return response.output["id"]


@pytest.fixture
async def hub(tmp_path):
    hub = await Hub(tmp_path / "store").open()
    yield hub
    await hub.close()
