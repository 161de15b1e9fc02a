"""Groups on every binding, through the actions of ``urn:wothub:groups`` (over HTTP
there are also the /groups resources: tests/bindings/http/test_groups.py): define a
group by query, read its members and table, write a property of every member with one
online (the binding's own agent) and two offline, refusals, and the group's TD; invoke an
action of every member; remove the group."""

from __future__ import annotations

import pytest

from digitwin.validation import validate_td
from tests.support import tds
from tests.waiting import until
from vocabulary.things import GROUPS_THING

from .adapters import Refused
from .conftest import AGENT_OF

pytestmark = pytest.mark.timeout(60)


def lamp(n: int) -> dict:
    return tds.lamp_td(f"urn:dev:g:lamp-{n}", f"Lamp {n}", **{"@type": "x:Lamp"})


async def test_group_write_read_and_td(running, clients, binding):
    agent = await clients.agent(AGENT_OF[binding], "lamp-agent")
    await agent.register(lamp(0))
    await agent.report_property("urn:dev:g:lamp-0", "brightness", 5)
    for n in (1, 2):
        running.add_thing(f"agent-{n}", lamp(n))  # offline
    manager = await clients.consumer(binding, "mia", "manager")
    viewer = await clients.consumer(binding, "vic", "viewer")
    lamps = {"name": "lamps", "query": {"type": "x:Lamp"}}

    defined = await manager.service(GROUPS_THING, "defineGroup", lamps)
    assert defined["created"] and defined["id"] == "urn:wothub:group:lamps"
    with pytest.raises(Refused) as refused:
        await viewer.service(GROUPS_THING, "defineGroup", lamps)
    assert refused.value.status == 403
    with pytest.raises(Refused) as refused:
        await manager.service(GROUPS_THING, "defineGroup", {"name": "x", "members": "a"})
    assert refused.value.status == 400
    assert [g["name"] for g in await viewer.service(GROUPS_THING, "listGroups", {})] == ["lamps"]
    shown = await viewer.service(GROUPS_THING, "getGroup", {"name": "lamps"})
    assert shown["memberIDs"] == [f"urn:dev:g:lamp-{n}" for n in range(3)]

    table = await viewer.service(GROUPS_THING, "readGroup", {"name": "lamps", "limit": 2})
    assert table["total"] == 3 and table["rows"][0]["values"] == {"brightness": 5}
    td = await viewer.service(GROUPS_THING, "groupTD", {"name": "lamps"})
    validate_td(td)
    assert set(td["properties"]) == {"on", "brightness", "model"}
    # The group is observed with requests on its Thing id: the forms that say so on
    # WebSocket and NATS (MQTT requests go to the client's own topic, never in a TD).
    observing = ["observeallproperties", "unobserveallproperties"]
    observing += ["subscribeallevents", "unsubscribeallevents"]
    ws = [f for f in td["forms"] if f.get("subprotocol") == "webthingprotocol"]
    assert [f["op"] for f in ws] == [observing]
    nats = [f for f in td["forms"] if "nats:subject" in f]
    if binding == "nats":
        assert [(f["op"], f["nats:subject"], f["nats:messageType"]) for f in nats] == [
            (observing, "wot.client.{clientID}.req", "request")
        ]

    write = {"name": "lamps", "property": "brightness", "value": 40}
    status = await manager.service(GROUPS_THING, "writeGroup", write)
    assert status["counts"] == {"delivered": 1, "pending": 2}
    request = await agent.next_request()
    assert (request["thingID"], request["input"]) == ("urn:dev:g:lamp-0", 40)
    await agent.answer(request, None)

    async def completed() -> bool:
        now = await manager.service(GROUPS_THING, "queryGroupRequest", {"id": status["id"]})
        return now["counts"] == {"completed": 1, "pending": 2}

    await until(completed)
    # A viewer may write no member: each refuses it, and nothing is queued.
    refused_all = await viewer.service(GROUPS_THING, "writeGroup", write)
    assert refused_all["status"] == "failed" and refused_all["members"] == {}
    assert {p["status"] for p in refused_all["refused"].values()} == {403}
    with pytest.raises(Refused) as refused:  # someone else's group request
        await viewer.service(GROUPS_THING, "queryGroupRequest", {"id": status["id"]})
    assert refused.value.status == 404


async def test_group_action_and_removal(running, clients, binding):
    """invokeGroup queues the action for every member (the one online gets it at once),
    and the group status follows; removeGroup is a manager's: a viewer is refused, and
    a removed group is gone."""
    agent = await clients.agent(AGENT_OF[binding], "lamp-agent")
    await agent.register(lamp(0))
    running.add_thing("agent-1", lamp(1))  # offline
    manager = await clients.consumer(binding, "mia", "manager")
    viewer = await clients.consumer(binding, "vic", "viewer")
    lamps = {"name": "lamps", "query": {"type": "x:Lamp"}}
    await manager.service(GROUPS_THING, "defineGroup", lamps)

    fade = {"name": "lamps", "action": "fade", "input": {"level": 30}}
    status = await manager.service(GROUPS_THING, "invokeGroup", fade)
    assert status["counts"] == {"delivered": 1, "pending": 1}
    request = await agent.next_request()
    assert (request["thingID"], request["name"]) == ("urn:dev:g:lamp-0", "fade")
    assert request["input"] == {"level": 30}
    await agent.answer(request, 30)

    async def completed() -> bool:
        now = await manager.service(GROUPS_THING, "queryGroupRequest", {"id": status["id"]})
        return now["counts"] == {"completed": 1, "pending": 1}

    await until(completed)

    with pytest.raises(Refused) as refused:
        await viewer.service(GROUPS_THING, "removeGroup", {"name": "lamps"})
    assert refused.value.status == 403
    removed = await manager.service(GROUPS_THING, "removeGroup", {"name": "lamps"})
    assert removed["name"] == "lamps"
    assert await viewer.service(GROUPS_THING, "listGroups", {}) == []
    with pytest.raises(Refused) as refused:
        await viewer.service(GROUPS_THING, "getGroup", {"name": "lamps"})
    assert refused.value.status == 404


async def test_group_observed_follows_members(running, clients, binding):
    """One subscription on the group (docs/groups.md, "Observing"): over HTTP its SSE
    stream; over WebSocket, MQTT and NATS observeallproperties and subscribeallevents
    on the group's Thing id, the notifications on the client's usual channel. Members'
    property values and events, a Thing that registers and matches from then on, and
    nothing of a Thing outside the group."""
    agent = await clients.agent(AGENT_OF[binding], "lamp-agent")
    for n in (0, 1):
        await agent.register(lamp(n))
    await agent.register(tds.lamp_td("urn:dev:g:outsider", "Outsider"))  # no @type
    manager = await clients.consumer(binding, "mia", "manager")
    await manager.service(
        GROUPS_THING, "defineGroup", {"name": "lamps", "query": {"type": "x:Lamp"}}
    )
    viewer = await clients.consumer(binding, "vic", "viewer")
    await viewer.observe_group("lamps")

    await agent.report_property("urn:dev:g:outsider", "brightness", 1)
    await agent.report_property("urn:dev:g:lamp-0", "brightness", 5)
    await agent.report_event("urn:dev:g:lamp-1", "overheated", 1.5)
    await agent.register(lamp(2))
    await agent.report_property("urn:dev:g:lamp-2", "brightness", 7)
    notes = [await viewer.next_note() for _ in range(3)]
    assert [(n.thing_id, n.name, n.value) for n in notes] == [
        ("urn:dev:g:lamp-0", "brightness", 5),
        ("urn:dev:g:lamp-1", "overheated", 1.5),
        ("urn:dev:g:lamp-2", "brightness", 7),
    ]
