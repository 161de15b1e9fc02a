"""Groups of Things over HTTPS on a real hub (docs/groups.md): defining them (managers
and administrators), membership by list and by query (following Things that register
later), the group table, a write and an action on every member with members online,
offline, refusing, and refused to the caller, the group's own TD, and its SSE stream.
Devices are real WebSocket agents; offline ones are registered and gone."""

from __future__ import annotations

import pytest

from digitwin.validation import validate_td
from tests.support import tds
from tests.support.devices import answer, emit, register, report
from tests.support.problems import problem_of
from tests.support.sse import stream
from tests.waiting import until
from vocabulary.things import HISTORY_THING

pytestmark = pytest.mark.timeout(60)

LAMP_TYPE = "x:Lamp"


def lamp(n: int, **changes) -> dict:
    """Lamp n, of @type x:Lamp (``changes``: as tds.lamp_td takes them)."""
    return tds.lamp_td(f"urn:dev:g:lamp-{n}", f"Lamp {n}", **{"@type": LAMP_TYPE, **changes})


def ids(*numbers: int) -> list[str]:
    return [f"urn:dev:g:lamp-{n}" for n in numbers]


@pytest.fixture
async def manager(running):
    token = running.add_client("mia", "consumer", "manager")
    async with running.session(token) as session:
        yield session


@pytest.fixture
async def operator(running):
    token = running.add_client("otto", "consumer", "operator")
    async with running.session(token) as session:
        yield session


async def call(session, method: str, path: str, status: int = 200, **kwargs):
    async with session.request(method, path, **kwargs) as response:
        if response.status >= 400 and status != response.status:
            raise AssertionError(f"{response.status}: {await response.text()}")
        if status >= 400:
            return await problem_of(response, status)
        assert response.status == status, await response.text()
        return await response.json() if response.status != 204 else None


async def test_define_show_list_and_remove(running, manager, viewer):
    running.add_thing("agent-a", lamp(1))
    group = {"title": "Hall", "members": [*ids(1), "urn:dev:g:gone"]}
    defined = await call(manager, "PUT", "/groups/hall", 201, json=group)
    assert defined["id"] == "urn:wothub:group:hall" and defined["by"] == "mia"
    await call(manager, "PUT", "/groups/hall", 200, json=group)  # replaced
    shown = await call(viewer, "GET", "/groups/hall")
    assert shown["memberIDs"] == ids(1) and shown["missing"] == ["urn:dev:g:gone"]
    assert [g["name"] for g in await call(viewer, "GET", "/groups")] == ["hall"]
    # A viewer may read groups, not change them.
    problem = await call(viewer, "PUT", "/groups/hall", 403, json=group)
    assert problem["operation"] == "managegroups"
    await call(viewer, "DELETE", "/groups/hall", 403)
    await call(manager, "DELETE", "/groups/hall", 204)
    await call(viewer, "GET", "/groups/hall", 404)
    await call(viewer, "GET", "/groups/hall/properties", 404)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/groups/hall", {"members": ["a"], "query": {"agent": "x"}}),  # both
        ("/groups/hall", {"title": "nothing"}),  # neither
        ("/groups/hall", {"members": "urn:a"}),
        ("/groups/hall", {"members": [""]}),
        ("/groups/hall", {"query": {}}),  # selects everything
        ("/groups/hall", {"query": {"colour": "red"}}),
        ("/groups/hall", {"query": {"filter": "$[?"}}),
        ("/groups/hall", {"members": [], "size": 3}),
        ("/groups/hall", ["a"]),
        ("/groups/-hall", {"members": []}),
        ("/groups/" + "h" * 65, {"members": []}),
    ],
)
async def test_bad_definitions_are_refused(manager, path, body):
    await call(manager, "PUT", path, 400, json=body)
    await call(manager, "GET", "/groups/hall", 404)


async def test_query_membership_follows_the_directory(running, manager, viewer):
    running.add_thing("agent-a", lamp(1))
    running.add_thing("agent-b", lamp(2))
    running.add_thing("agent-b", tds.thing_td("urn:dev:g:sensor", "Sensor", **{"@type": "x:S"}))
    await call(manager, "PUT", "/groups/lamps", 201, json={"query": {"type": LAMP_TYPE}})
    await call(manager, "PUT", "/groups/b-lamps", 201, json={"query": {"agent": "agent-b"}})
    filtered = {"query": {"filter": "$[?@.title == 'Lamp 1' || @.title == 'Lamp 3']"}}
    await call(manager, "PUT", "/groups/ones", 201, json=filtered)
    assert (await call(viewer, "GET", "/groups/lamps"))["memberIDs"] == ids(1, 2)
    b_members = (await call(viewer, "GET", "/groups/b-lamps"))["memberIDs"]
    assert b_members == [*ids(2), "urn:dev:g:sensor"]
    assert (await call(viewer, "GET", "/groups/ones"))["memberIDs"] == ids(1)
    running.add_thing("agent-a", lamp(3))  # registers later, and matches
    assert (await call(viewer, "GET", "/groups/lamps"))["memberIDs"] == ids(1, 2, 3)
    assert (await call(viewer, "GET", "/groups/ones"))["memberIDs"] == ids(1, 3)
    table = await call(viewer, "GET", "/groups/lamps/properties")
    assert [row["thingID"] for row in table["rows"]] == ids(1, 2, 3)


async def test_group_table_pages_and_refuses_per_member(running, manager, operator):
    devices = [await register(running, f"agent-{n}", lamp(n)) for n in range(3)]
    for n, device in enumerate(devices):
        await report(device, "brightness", 10 * n)
    members = [*ids(0, 1, 2), HISTORY_THING]
    await call(manager, "PUT", "/groups/mixed", 201, json={"members": members})
    table = await call(operator, "GET", "/groups/mixed/properties?limit=2")
    assert table["total"] == 4
    assert [row["values"]["brightness"] for row in table["rows"]] == [0, 10]
    rest = await call(operator, "GET", "/groups/mixed/properties?offset=2")
    assert rest["rows"][0]["values"] == {"brightness": 20}
    # The operator may not read the hub's history Thing: refused for that row only.
    assert rest["rows"][1]["thingID"] == HISTORY_THING
    assert rest["rows"][1]["error"]["status"] == 403 and "values" not in rest["rows"][1]
    values = await call(operator, "GET", "/groups/mixed/properties/brightness")
    assert values == dict(zip(ids(0, 1, 2), [0, 10, 20], strict=True))
    await call(operator, "GET", "/groups/mixed/properties?limit=0", 400)


async def test_group_write_online_offline_refusing_and_refused(running, manager):
    online = [await register(running, f"agent-{n}", lamp(n)) for n in (0, 1)]
    for n in (2, 3):
        running.add_thing(f"agent-{n}", lamp(n))  # registered, then offline
    # Lamp 4 has a smaller brightness range: 80 is refused for it alone (its schema).
    small = {"brightness": {"type": "integer", "maximum": 50, "forms": [{"href": "x:b"}]}}
    running.add_thing("agent-4", lamp(4, properties=small))
    running.add_thing("agent-5", lamp(5, only=("on",)))  # no brightness: left out
    group = {"members": ids(0, 1, 2, 3, 4, 5)}
    await call(manager, "PUT", "/groups/floor", 201, json=group)

    async with manager.put("/groups/floor/properties/brightness", json=80) as response:
        assert response.status == 201, await response.text()
        status = await response.json()
        location = response.headers["Location"]
    assert location == f"/groups/floor/requests/{status['id']}"
    assert set(status["members"]) == set(ids(0, 1, 2, 3))
    assert status["counts"] == {"delivered": 2, "pending": 2, "refused": 1}
    assert status["refused"][ids(4)[0]]["status"] == 400
    assert status["skipped"] == ids(5)
    assert status["status"] == "running"

    # The online lamps got it: one takes it, one refuses it.
    first, second = [await device.next_request() for device in online]
    assert (first.operation, first.name, first.input) == ("writeproperty", "brightness", 80)
    await answer(online[0], first, status="completed")
    error = {"type": "about:blank", "title": "Busy", "status": 503, "detail": "busy"}
    await answer(online[1], second, status="failed", error=error)

    async def counts_are(**expected) -> bool:
        return (await call(manager, "GET", location))["counts"] == expected

    await until(lambda: counts_are(completed=1, failed=1, pending=2, refused=1))
    # An offline lamp comes back: its write is delivered then, as any queued request.
    back = await running.device("agent-2")
    delivered = await back.next_request()
    assert (delivered.thing_id, delivered.input) == (ids(2)[0], 80)
    await answer(back, delivered, status="completed")
    await until(lambda: counts_are(completed=2, failed=1, pending=1, refused=1))
    final = await call(manager, "GET", location)
    assert final["members"][ids(0)[0]]["status"] == "completed"
    assert final["members"][ids(1)[0]]["error"]["title"] == "Busy"
    assert final["status"] == "pending"  # lamp 3 is still away
    # Somebody else may not read this group request.
    token = running.add_client("olga", "consumer", "manager")
    async with running.session(token) as olga:
        await call(olga, "GET", location, 404)


async def test_group_action_refused_for_one_member_only(running, manager, operator):
    """An operator may invoke actions, but not those of urn:wothub:history (admins
    only): in a group with a lamp that has an action of the same name, the lamp gets
    its request and the history Thing is refused for the operator alone."""
    setting = {"getSetting": {"forms": [{"href": "x:g"}]}}
    device = await register(running, "agent-0", lamp(0, actions=setting))
    await call(manager, "PUT", "/groups/odd", 201, json={"members": [*ids(0), HISTORY_THING]})
    status = await call(operator, "POST", "/groups/odd/actions/getSetting", 201)
    assert list(status["members"]) == ids(0)
    refusal = status["refused"][HISTORY_THING]
    assert refusal["status"] == 403 and refusal["operation"] == "invokeaction"
    delivered = await device.next_request()
    assert (delivered.operation, delivered.name, delivered.sender_id) == (
        "invokeaction",
        "getSetting",
        "otto",
    )
    # A viewer may invoke nothing: every member refuses it, each with its own problem.
    token = running.add_client("vic", "consumer", "viewer")
    async with running.session(token) as vic:
        status = await call(vic, "POST", "/groups/odd/actions/getSetting", 201)
    assert status["members"] == {} and set(status["refused"]) == {*ids(0), HISTORY_THING}
    assert status["status"] == "failed"
    await call(operator, "POST", "/groups/odd/actions/getSetting?ttl=0", 400)


@pytest.mark.parametrize("hub_options", [{"max_queued_actions": 1}])
async def test_group_write_keeps_each_members_queue_limit(running, manager):
    """Lamp 1's queue is full (one write waits for its offline agent): the group write
    is refused for lamp 1 alone (429, as the write on lamp 1 would be), lamp 2 gets it."""
    for n in (1, 2):
        running.add_thing(f"agent-{n}", lamp(n))  # offline: writes stay queued
    await call(manager, "PUT", "/groups/pair", 201, json={"members": ids(1, 2)})
    await call(manager, "PUT", f"/things/{ids(1)[0]}/properties/brightness", 202, json=10)
    status = await call(manager, "PUT", "/groups/pair/properties/brightness", 201, json=20)
    assert list(status["members"]) == ids(2) and status["counts"] == {"pending": 1, "refused": 1}
    refusal = status["refused"][ids(1)[0]]
    assert refusal["status"] == 429 and refusal["limit"] == "max_queued_actions"


async def test_group_action_on_a_hub_thing_is_refused_for_it_only(running):
    """The hub's own Things answer at once and queue nothing: an administrator's group
    action refuses such a member (400) and queues the others' requests."""
    setting = {"getSetting": {"forms": [{"href": "x:g"}]}}
    device = await register(running, "agent-0", lamp(0, actions=setting))
    token = running.add_client("ada", "consumer", "admin")
    async with running.session(token) as admin:
        await call(admin, "PUT", "/groups/odd", 201, json={"members": [*ids(0), HISTORY_THING]})
        status = await call(admin, "POST", "/groups/odd/actions/getSetting", 201)
    assert list(status["members"]) == ids(0) and list(status["refused"]) == [HISTORY_THING]
    assert status["refused"][HISTORY_THING]["status"] == 400
    delivered = await device.next_request()
    assert (delivered.name, delivered.sender_id) == ("getSetting", "ada")


async def test_group_td_has_the_shared_affordances_and_validates(running, manager, viewer):
    observed = {"on": {"type": "boolean", "observable": True, "forms": [{"href": "x:on"}]}}
    running.add_thing("agent-a", lamp(1, properties=observed))
    running.add_thing("agent-b", lamp(2, only=("on", "brightness", "model", "toggle")))
    await call(manager, "PUT", "/groups/pair", 201, json={"title": "Pair", "members": ids(1, 2)})
    async with viewer.get("/groups/pair/td") as response:
        assert response.status == 200 and response.content_type == "application/td+json"
        td = await response.json()
    validate_td(td)  # the TD 1.1 JSON Schema (shared/wot) and the hub's checks
    assert td["id"] == "urn:wothub:group:pair" and td["title"] == "Pair"
    assert set(td["properties"]) == {"on", "brightness", "model"}
    assert set(td["actions"]) == {"toggle"} and td["events"] == {}
    model_ops = td["properties"]["model"]["forms"][0]["op"]
    assert model_ops == ["readproperty"]  # read-only in the members: no write form
    assert not any("observable" in p for p in td["properties"].values())  # the stream does
    href = td["properties"]["brightness"]["forms"][0]["href"]
    assert href == f"{running.url}/groups/pair/properties/brightness"
    assert td["security"] == ["bearer_sc"]
    # Observing the group: its SSE stream, and requests on its Thing id over WebSocket
    # (and NATS: tests/conformance/test_groups.py).
    observing = ["observeallproperties", "unobserveallproperties"]
    observing += ["subscribeallevents", "unsubscribeallevents"]
    by_href = {form["href"].split(":")[0]: form for form in td["forms"]}
    assert by_href["wss"]["op"] == observing
    assert by_href["wss"]["subprotocol"] == "webthingprotocol"


async def test_group_stream_follows_members(running, manager, viewer):
    device_a = await register(running, "agent-a", lamp(1))
    outsider = await register(running, "agent-x", tds.lamp_td("urn:dev:g:other", "Other"))
    await call(manager, "PUT", "/groups/lamps", 201, json={"query": {"type": LAMP_TYPE}})
    async with stream(viewer, "/groups/lamps/events") as events:
        await report(outsider, "brightness", 1)  # not a member: not on the stream
        await report(device_a, "brightness", 2)
        event = await events.next()
        assert event["event"] == "property"
        assert event["data"] | {"timestamp": ""} == {
            "thingID": ids(1)[0],
            "name": "brightness",
            "value": 2,
            "timestamp": "",
        }
        device_b = await register(running, "agent-b", lamp(2))  # registers, matches
        await report(device_b, "brightness", 3)
        assert (await events.next())["data"]["thingID"] == ids(2)[0]
        await emit(device_b, "overheated", 90.5)
        event = await events.next()
        assert (event["event"], event["data"]["name"], event["data"]["value"]) == (
            "event",
            "overheated",
            90.5,
        )


async def test_an_agent_sees_only_its_own_members(running, manager):
    running.add_thing("agent-a", lamp(1))
    running.add_thing("agent-b", lamp(2))
    await call(manager, "PUT", "/groups/pair", 201, json={"members": [*ids(1, 2), "urn:x"]})
    token = running.hub.auth.new_token("agent-a")["token"]
    async with running.session(token) as agent:
        shown = await call(agent, "GET", "/groups/pair")
        assert shown["members"] == shown["memberIDs"] == ids(1) and "missing" not in shown
        assert (await call(agent, "GET", "/groups"))[0]["members"] == ids(1)
        # Its own member only; and an agent may not read property values (auth.md).
        table = await call(agent, "GET", "/groups/pair/properties")
        assert table["total"] == 1 and [row["thingID"] for row in table["rows"]] == ids(1)
        assert table["rows"][0]["error"]["status"] == 403
