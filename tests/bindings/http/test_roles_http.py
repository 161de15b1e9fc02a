"""Who may do what over HTTP (docs/auth.md), as a table: viewer reads, observes and
queries; operator also invokes and cancels its own actions; manager also writes
properties; admin does everything; an agent acts on its own Things only."""

import asyncio

import pytest

from tests.support import tds
from tests.support.devices import register, report
from tests.support.http import ASYNC, STREAM, url
from tests.support.tds import SLASHED_LAMP as LAMP

pytestmark = pytest.mark.timeout(60)

OWNER = "lamp-agent"

OPERATIONS = (
    "readproperty",
    "queryallactions",
    "observe",
    "GET thing",
    "writeproperty",
    "invokeaction",
    "cancel another's action",
    "PUT thing",
)
# The status each role gets for each operation; the device is offline, so writes answer
# 202, and actions asked with Prefer: respond-async 201, at once.
OK = {
    "readproperty": 200,
    "queryallactions": 200,
    "observe": 200,
    "GET thing": 200,
    "writeproperty": 202,
    "invokeaction": 201,
    "cancel another's action": 204,
    "PUT thing": 204,
}


def allowed(*operations):
    return {op: OK[op] if op in operations else 403 for op in OPERATIONS}


READ = ("readproperty", "queryallactions", "observe", "GET thing")
EXPECTED = {
    "viewer": allowed(*READ),
    "operator": allowed(*READ, "invokeaction"),
    "manager": allowed(*READ, "invokeaction", "writeproperty"),
    "admin": allowed(*OPERATIONS),
    # Another agent's Thing: nothing. Registering a TD whose id another agent owns is
    # the directory's Conflict rather than a refusal by role.
    "agent": {**allowed(), "PUT thing": 409},
}


def lamp_td(title="Lamp"):
    """The shared lamp with a property and an action: what the roles are tried on."""
    return tds.lamp_td(LAMP, title, only=("on", "toggle"))


async def prepare(running):
    """The lamp (its agent away, "on" reported) and an action another operator invoked;
    returns that action's status URL."""
    conn = await register(running, OWNER, lamp_td())
    await report(conn, "on", True)
    await conn.close()
    otto = running.add_client("otto", "consumer", "operator")
    toggle = url(LAMP, "actions", "toggle")
    async with running.session(otto) as session, session.post(toggle, headers=ASYNC) as r:
        assert r.status == 201, await r.text()
        return r.headers["Location"]


async def attempt(session, operation, others_action):
    """Do one operation; its HTTP status."""
    match operation:
        case "readproperty":
            request = session.get(url(LAMP, "properties", "on"))
        case "queryallactions":
            request = session.get(url(LAMP, "actions"))
        case "observe":
            request = session.get(url(LAMP, "properties", "on"), headers=STREAM)
        case "GET thing":
            request = session.get(url(LAMP))
        case "writeproperty":
            request = session.put(url(LAMP, "properties", "on"), json=False)
        case "invokeaction":
            request = session.post(url(LAMP, "actions", "toggle"), headers=ASYNC)
        case "cancel another's action":
            request = session.delete(others_action)
        case "PUT thing":
            request = session.put(url(LAMP), json=lamp_td("Renamed"))
    async with asyncio.timeout(5), request as response:
        if response.status >= 400:
            problem = await response.json(content_type=None)
            assert problem["status"] == response.status
        return response.status


@pytest.mark.parametrize("role", list(EXPECTED))
async def test_what_each_role_may_do(running, role):
    others_action = await prepare(running)
    kind = "agent" if role == "agent" else "consumer"
    token = running.add_client(f"the-{role}", kind, role)
    before = len(running.hub.twin.requests_of(LAMP))

    async with running.session(token) as session:
        got = {op: await attempt(session, op, others_action) for op in OPERATIONS}
    assert got == EXPECTED[role]

    # What was refused left nothing behind.
    created = len(running.hub.twin.requests_of(LAMP)) - before
    assert created == sum(got[op] < 300 for op in ("writeproperty", "invokeaction"))
    title = running.hub.twin.twin_td(LAMP)["title"]
    assert title == ("Renamed" if got["PUT thing"] < 300 else "Lamp")
    assert running.hub.twin.thing(LAMP).owner == OWNER
    state = running.hub.twin.get_request(others_action.rsplit("/", 1)[1]).status
    assert state == ("cancelled" if got["cancel another's action"] < 300 else "pending")


async def test_the_owning_agent_manages_its_thing_but_does_not_consume_it(running):
    await prepare(running)
    token = running.add_client(OWNER + "-2", "agent", "agent")  # not the owner either
    owner_token = running.hub.auth.new_token(OWNER)["token"]
    async with running.session(owner_token) as owner:
        async with owner.get(url(LAMP)) as response:
            assert response.status == 200
        async with owner.put(url(LAMP), json=lamp_td("Mine")) as response:
            assert response.status == 204
        for path in (url(LAMP, "properties", "on"), url(LAMP, "actions")):
            async with owner.get(path) as response:
                assert response.status == 403  # agents report, they do not read twins
    async with running.session(token) as other, other.get(url(LAMP)) as response:
        assert response.status == 403
