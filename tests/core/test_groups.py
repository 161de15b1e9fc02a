"""Observing a group through the router (docs/groups.md, "Observing"): an
``observeallproperties`` or ``subscribeallevents`` request on the group's Thing id
subscribes to its members' notifications, each checked for the subscriber as for a
subscription to every Thing, and membership follows the directory and the group's
definition. The bindings' requests reach this (tests/conformance/test_groups.py)."""

from bucketstore import StoreUnavailableError
from tests.support.messages import notification, request
from tests.support.tds import lamp_td

from .conftest import drain, receive

GROUP = "urn:wothub:group:lamps"


def lamp(n: int) -> dict:
    return lamp_td(f"urn:dev:g:lamp-{n}", f"Lamp {n}", **{"@type": "x:Lamp"})


def report(hub, agent, n: int, value: int) -> None:
    message = notification("observeproperty", f"urn:dev:g:lamp-{n}", "brightness", value=value)
    assert hub.router.handle(agent, message) is None


def observe(hub, consumer, operation="observeallproperties", **fields):
    response = hub.router.handle(consumer, request(operation, GROUP, **fields))
    assert response.error is None, response.error
    return response


async def test_observing_a_group_follows_its_members(core_hub):
    hub = core_hub
    agent, other = hub.connect("lamp-agent", "agent"), hub.connect("other-agent", "agent")
    hub.register(agent, lamp(1))
    hub.register(other, lamp_td("urn:dev:g:outsider", "Outsider"))  # not an x:Lamp
    mia = hub.connect("mia", "manager")
    hub.router.groups.define(mia.client, "lamps", {"query": {"type": "x:Lamp"}})
    vera = hub.connect("vera", "viewer")
    observe(hub, vera)

    report(hub, agent, 1, 10)
    assert (
        hub.router.handle(
            other,
            notification("observeproperty", "urn:dev:g:outsider", "brightness", value=1),
        )
        is None
    )
    got = await receive(vera)
    assert (got.operation, got.thing_id, got.name, got.value) == (
        "observeproperty",
        "urn:dev:g:lamp-1",
        "brightness",
        10,
    )
    # A Thing that registers and matches is a member from then on.
    hub.register(agent, lamp(2))
    report(hub, agent, 2, 20)
    assert (await receive(vera)).thing_id == "urn:dev:g:lamp-2"
    # A new definition: lamp 2 only.
    hub.router.groups.define(mia.client, "lamps", {"members": ["urn:dev:g:lamp-2"]})
    report(hub, agent, 1, 11)
    report(hub, agent, 2, 21)
    assert [(m.thing_id, m.value) for m in await drain(vera)] == [("urn:dev:g:lamp-2", 21)]
    # The group removed: nothing; defined again: its members again.
    hub.router.groups.remove(mia.client, "lamps")
    report(hub, agent, 2, 22)
    assert await drain(vera) == []
    hub.router.groups.define(mia.client, "lamps", {"members": ["urn:dev:g:lamp-1"]})
    report(hub, agent, 1, 12)
    assert [(m.thing_id, m.value) for m in await drain(vera)] == [("urn:dev:g:lamp-1", 12)]
    # Unobserved: nothing more.
    hub.router.handle(vera, request("unobserveallproperties", GROUP))
    report(hub, agent, 1, 13)
    assert await drain(vera) == []


async def test_group_events_by_name_and_who_may_observe(core_hub):
    """Events by name; an agent may not observe a group (it observes only its own
    Things, as it may not open the group's SSE stream); a group that does not exist
    is 404."""
    hub = core_hub
    agent, other = hub.connect("lamp-agent", "agent"), hub.connect("other-agent", "agent")
    hub.register(agent, lamp(1))
    hub.register(other, lamp(2))
    mia = hub.connect("mia", "manager")
    hub.router.groups.define(mia.client, "lamps", {"query": {"type": "x:Lamp"}})
    vera = hub.connect("vera", "viewer")
    observe(hub, vera, "subscribeevent", name="overheated")
    refused = hub.router.handle(agent, request("subscribeallevents", GROUP))
    assert refused.error["status"] == 403

    for owner, n in ((agent, 1), (other, 2)):
        event = notification("subscribeevent", f"urn:dev:g:lamp-{n}", "overheated", value=n)
        assert hub.router.handle(owner, event) is None
    report(hub, agent, 1, 5)  # a property: not subscribed
    got = await drain(vera)
    assert [(m.operation, m.thing_id, m.value) for m in got] == [
        ("subscribeevent", "urn:dev:g:lamp-1", 1),
        ("subscribeevent", "urn:dev:g:lamp-2", 2),
    ]

    missing = hub.router.handle(vera, request("observeallproperties", "urn:wothub:group:none"))
    assert missing.error["status"] == 404


async def test_a_store_that_does_not_answer_keeps_the_members_and_the_notifications(
    core_hub, monkeypatch
):
    """A TD change reads the watched groups' members again; a store that does not
    answer then leaves them as they were, and the notification still goes out."""
    hub = core_hub
    agent = hub.connect("lamp-agent", "agent")
    hub.register(agent, lamp(1))
    mia = hub.connect("mia", "manager")
    hub.router.groups.define(mia.client, "lamps", {"query": {"type": "x:Lamp"}})
    vera = hub.connect("vera", "viewer")
    observe(hub, vera)

    def unavailable(group_id: str) -> list[str]:
        raise StoreUnavailableError(f"{group_id}: no answer")

    monkeypatch.setattr(hub.router._fanout, "group_members", unavailable)
    hub.register(agent, lamp(2))  # its TD change finds the store away
    await drain(vera)
    report(hub, agent, 1, 10)
    got = await receive(vera)
    assert (got.thing_id, got.name, got.value) == ("urn:dev:g:lamp-1", "brightness", 10)
