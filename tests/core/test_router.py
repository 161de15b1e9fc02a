"""The flows of docs/architecture.md through the real router, core and LevelDB store."""

import asyncio

import pytest

from tests.support import messages
from tests.support.messages import notification, request
from tests.support.tds import LAMP, lamp_td
from vocabulary import operations as ops
from vocabulary.problems import Forbidden
from vocabulary.things import CERTS_THING, CLIENTS_THING

from .conftest import CoreHub, drain, receive


async def test_agent_reports_reach_subscribers_and_the_twin(core_hub):
    agent = core_hub.connect("lamp-agent", "agent")
    core_hub.register(agent)
    viewer = core_hub.connect("vera", "viewer")
    for op, name in [("observeproperty", "brightness"), ("subscribeevent", "overheated")]:
        assert core_hub.router.handle(viewer, request(op, LAMP, name)).status == "completed"

    assert (
        core_hub.router.handle(agent, notification("observeproperty", LAMP, "brightness", value=40))
        is None
    )
    assert (
        core_hub.router.handle(
            agent, notification("subscribeevent", LAMP, "overheated", value=81.5)
        )
        is None
    )

    prop, event = await receive(viewer), await receive(viewer)
    assert (prop.operation, prop.name, prop.value) == ("observeproperty", "brightness", 40)
    assert (event.operation, event.name, event.value) == ("subscribeevent", "overheated", 81.5)
    # Consumer reads are answered from the twin, never from the device.
    read = core_hub.router.handle(viewer, request("readproperty", LAMP, "brightness"))
    assert read.output == 40 and read.error is None
    assert core_hub.router.handle(viewer, request("readallproperties", LAMP)).output == {
        "brightness": 40
    }


async def test_a_report_for_several_properties_at_once(core_hub):
    agent = core_hub.connect("lamp-agent", "agent")
    core_hub.register(agent)
    core_hub.router.handle(
        agent, notification("observeallproperties", LAMP, value={"on": True, "brightness": 7})
    )
    viewer = core_hub.connect("vera", "viewer")
    out = core_hub.router.handle(viewer, request("readmultipleproperties", LAMP, input=["on"]))
    assert out.output == {"on": True}


async def test_a_report_for_several_properties_must_name_its_thing(core_hub):
    # The envelope lets observeallproperties leave out thingID (a consumer observing
    # every Thing); an agent's report without one is a bad request, not "no Thing None".
    agent = core_hub.connect("lamp-agent", "agent")
    core_hub.register(agent)
    out = core_hub.router.handle(agent, notification("observeallproperties", value={"on": True}))
    assert out.error["status"] == 400
    assert out.error["detail"] == "observeallproperties needs a thingID"
    viewer = core_hub.connect("vera", "viewer")
    assert core_hub.router.handle(viewer, request("readallproperties", LAMP)).output == {}


async def test_action_on_a_connected_agent_round_trip(core_hub):
    agent = core_hub.connect("lamp-agent", "agent")
    core_hub.register(agent)
    operator = core_hub.connect("otto", "operator")

    accepted = core_hub.router.handle(
        operator, request("invokeaction", LAMP, "fade", input={"level": 30}, correlationID="mine")
    )
    assert accepted.status == "delivered" and accepted.correlation_id == "mine"
    action_id = accepted.action_id

    delivered = await receive(agent)
    assert (delivered.operation, delivered.name, delivered.input) == (
        "invokeaction",
        "fade",
        {"level": 30},
    )
    assert delivered.action_id == action_id and delivered.sender_id == "otto"

    core_hub.router.handle(agent, messages.answer(delivered, status="running"))
    core_hub.router.handle(agent, messages.answer(delivered, output=30))

    running, done = await receive(operator), await receive(operator)
    assert (running.status, done.status, done.output) == ("running", "completed", 30)
    assert done.correlation_id == "mine" and done.action_id == action_id
    status = core_hub.router.handle(
        operator, request("queryaction", LAMP, actionID=action_id)
    ).output
    assert status["status"] == "completed" and status["output"] == 30 and "timeEnded" in status


async def test_action_for_an_offline_agent_waits_and_is_delivered_on_connect(core_hub):
    agent = core_hub.connect("lamp-agent", "agent")
    core_hub.register(agent)
    core_hub.router.disconnect(agent)
    operator = core_hub.connect("otto", "operator")

    first = core_hub.router.handle(
        operator, request("invokeaction", LAMP, "fade", input={"level": 1})
    )
    second = core_hub.router.handle(operator, request("invokeaction", LAMP, "toggle"))
    assert first.status == second.status == "pending"
    assert core_hub.twin.get_request(first.action_id).status == "pending"

    agent = core_hub.connect("lamp-agent", "agent")
    got = await drain(agent)
    assert [m.action_id for m in got] == [first.action_id, second.action_id]  # in order
    for delivered in got:
        core_hub.router.handle(
            agent, messages.answer(delivered, output=1 if delivered.name == "fade" else None)
        )
    results = [m for m in await drain(operator) if m.status == "completed"]
    assert {m.action_id for m in results} == {first.action_id, second.action_id}


async def test_property_write_keeps_desired_next_to_reported_until_done(core_hub):
    agent = core_hub.connect("lamp-agent", "agent")
    core_hub.register(agent)
    core_hub.router.handle(agent, notification("observeproperty", LAMP, "brightness", value=10))
    core_hub.router.disconnect(agent)
    manager = core_hub.connect("mia", "manager")

    write = core_hub.router.handle(manager, request("writeproperty", LAMP, "brightness", input=90))
    assert write.status == "pending"
    state = core_hub.twin.read_property(LAMP, "brightness")
    assert state["value"] == 10 and state["desired"]["value"] == 90

    agent = core_hub.connect("lamp-agent", "agent")
    delivered = await receive(agent)
    assert (delivered.operation, delivered.input) == ("writeproperty", 90)
    core_hub.router.handle(agent, messages.answer(delivered))
    core_hub.router.handle(agent, notification("observeproperty", LAMP, "brightness", value=90))
    assert core_hub.twin.read_property(LAMP, "brightness") == {
        "value": 90,
        "timestamp": core_hub.twin.read_property(LAMP, "brightness")["timestamp"],
    }


async def test_unanswered_delivery_is_redelivered_with_the_same_id(core_hub):
    agent = core_hub.connect("lamp-agent", "agent")
    core_hub.register(agent)
    operator = core_hub.connect("otto", "operator")
    accepted = core_hub.router.handle(operator, request("invokeaction", LAMP, "toggle"))
    first = await receive(agent)
    core_hub.router.disconnect(agent)  # dropped before answering

    agent = core_hub.connect("lamp-agent", "agent")
    again = await receive(agent)
    assert again.action_id == first.action_id == accepted.action_id
    assert core_hub.twin.get_request(accepted.action_id).deliveries == 2
    core_hub.router.handle(agent, messages.answer(again))
    assert core_hub.twin.get_request(accepted.action_id).status == "completed"


async def test_requests_expire_on_time_with_nothing_else_happening(core_hub):
    agent = core_hub.connect("lamp-agent", "agent")
    core_hub.register(agent)
    core_hub.router.disconnect(agent)
    operator = core_hub.connect("otto", "operator")
    accepted = core_hub.router.handle(operator, request("invokeaction", LAMP, "toggle", ttl=0.3))
    assert accepted.status == "pending"

    expired = await receive(operator, timeout=3)
    assert expired.status == "expired" and expired.action_id == accepted.action_id
    assert expired.error["status"] == 408
    agent = core_hub.connect("lamp-agent", "agent")
    assert await drain(agent) == []  # nothing left to deliver


async def test_cancel_is_for_the_invoker_and_admins_only(core_hub):
    agent = core_hub.connect("lamp-agent", "agent")
    core_hub.register(agent)
    otto, olga = core_hub.connect("otto", "operator"), core_hub.connect("olga", "operator")
    accepted = core_hub.router.handle(otto, request("invokeaction", LAMP, "toggle"))
    delivered = await receive(agent)

    refused = core_hub.router.handle(
        olga, request("cancelaction", LAMP, actionID=accepted.action_id)
    )
    assert refused.error["status"] == 403
    viewer = core_hub.connect("vera", "viewer")
    refused = core_hub.router.handle(
        viewer, request("cancelaction", LAMP, actionID=accepted.action_id)
    )
    assert refused.error["status"] == 403

    cancelled = core_hub.router.handle(
        otto, request("cancelaction", LAMP, actionID=accepted.action_id)
    )
    assert cancelled.output["status"] == "cancelled"
    told = await receive(agent)  # it was delivered, so the agent is told to stop
    assert (told.operation, told.action_id) == ("cancelaction", accepted.action_id)
    again = core_hub.router.handle(otto, request("cancelaction", LAMP, actionID=accepted.action_id))
    assert again.error["status"] == 409
    late = core_hub.router.handle(agent, messages.answer(delivered))
    assert late.error["status"] == 409  # the agent's late answer is refused

    second = core_hub.router.handle(olga, request("invokeaction", LAMP, "toggle"))
    admin = core_hub.connect("root", "admin")
    done = core_hub.router.handle(admin, request("cancelaction", LAMP, actionID=second.action_id))
    assert done.output["status"] == "cancelled"


async def test_ownership_refusals(core_hub):
    lamp_agent, other = (
        core_hub.connect("lamp-agent", "agent"),
        core_hub.connect("other-agent", "agent"),
    )
    core_hub.register(lamp_agent)

    taken = core_hub.router.handle(other, request("updatething", input=lamp_td(title="Mine now")))
    assert taken.error["status"] == 409
    assert core_hub.twin.thing(LAMP).td["title"] == "Lamp"
    for refused in [
        core_hub.router.handle(other, notification("observeproperty", LAMP, "on", value=True)),
        core_hub.router.handle(other, notification("subscribeevent", LAMP, "overheated", value=1)),
        core_hub.router.handle(other, request("deletething", LAMP)),
    ]:
        assert refused.error["status"] == 403
    # An admin may change anyone's TD, and the agent keeps owning it.
    admin = core_hub.connect("root", "admin")
    assert (
        core_hub.router.handle(admin, request("updatething", input=lamp_td(title="Renamed"))).error
        is None
    )
    assert core_hub.twin.thing(LAMP).owner == "lamp-agent"


async def test_roles_are_refused_what_they_may_not_do(core_hub):
    agent = core_hub.connect("lamp-agent", "agent")
    core_hub.register(agent)
    viewer, operator = core_hub.connect("vera", "viewer"), core_hub.connect("otto", "operator")
    assert (
        core_hub.router.handle(viewer, request("invokeaction", LAMP, "toggle")).error["status"]
        == 403
    )
    assert (
        core_hub.router.handle(operator, request("writeproperty", LAMP, "on", input=True)).error[
            "status"
        ]
        == 403
    )
    assert (
        core_hub.router.handle(viewer, request("updatething", input=lamp_td("urn:x:1"))).error[
            "status"
        ]
        == 403
    )
    # A consumer cannot pose as an agent reporting values.
    assert (
        core_hub.router.handle(
            viewer, notification("observeproperty", LAMP, "on", value=True)
        ).error["status"]
        == 403
    )
    assert core_hub.twin.get_request is not None and core_hub.twin.requests_of(LAMP) == []


async def test_a_td_without_id_for_a_named_thing_is_refused_not_given_a_new_id(core_hub):
    """A request naming its Thing is a PUT of that Thing: the TD must carry the id
    (on MQTT and NATS the address names it), else it would land under a urn:uuid."""
    agent = core_hub.connect("lamp-agent", "agent")
    anonymous = {key: value for key, value in lamp_td().items() if key != "id"}
    refused = core_hub.router.handle(agent, request("updatething", LAMP, input=anonymous)).error
    assert refused["status"] == 400
    assert refused["validationErrors"] == [{"field": "id", "description": "is required"}]
    assert core_hub.twin.things_of("lamp-agent") == []
    created = core_hub.router.handle(agent, request("updatething", input=anonymous)).output
    assert created["created"] is True and created["id"].startswith("urn:uuid:")


async def test_schema_refusals(core_hub):
    agent = core_hub.connect("lamp-agent", "agent")
    bad_td = {**lamp_td(), "security": "undefined_sc"}
    refused = core_hub.router.handle(agent, request("updatething", input=bad_td))
    assert refused.error["status"] == 400
    assert {e["field"] for e in refused.error["validationErrors"]} >= {"security"}
    core_hub.register(agent)

    too_bright = core_hub.router.handle(
        agent, notification("observeproperty", LAMP, "brightness", value=101)
    )
    assert too_bright.error["status"] == 400
    manager = core_hub.connect("mia", "manager")
    for bad in [
        request("writeproperty", LAMP, "brightness", input="loud"),
        request("writeproperty", LAMP, "model", input="x"),  # read-only
        request("invokeaction", LAMP, "fade", input={"level": -1}),
        request("invokeaction", LAMP, "fade"),  # input required
        request("invokeaction", LAMP, "explode"),  # no such action
    ]:
        answer = core_hub.router.handle(manager, bad)
        assert answer.error["status"] in (400, 404), answer.error
    assert core_hub.twin.requests_of(LAMP) == []
    assert core_hub.twin.read_property(LAMP, "brightness") == {}


async def test_subscriptions_are_per_thing_affordance_or_everything(core_hub):
    agent = core_hub.connect("lamp-agent", "agent")
    core_hub.register(agent)
    core_hub.register(agent, lamp_td("urn:dev:ops:lamp-2", "Lamp 2"))
    one_prop, one_thing, everything = (core_hub.connect(n, "viewer") for n in ("a", "b", "c"))
    core_hub.router.handle(one_prop, request("observeproperty", LAMP, "on"))
    core_hub.router.handle(one_thing, request("observeallproperties", LAMP))
    core_hub.router.handle(everything, request("observeallproperties"))

    core_hub.router.handle(agent, notification("observeproperty", LAMP, "on", value=True))
    core_hub.router.handle(agent, notification("observeproperty", LAMP, "brightness", value=5))
    core_hub.router.handle(
        agent, notification("observeproperty", "urn:dev:ops:lamp-2", "on", value=False)
    )

    assert [(m.name, m.value) for m in await drain(one_prop)] == [("on", True)]
    assert [m.name for m in await drain(one_thing)] == ["on", "brightness"]
    assert len(await drain(everything)) == 3
    core_hub.router.handle(one_thing, request("unobserveallproperties", LAMP))
    core_hub.router.handle(agent, notification("observeproperty", LAMP, "on", value=False))
    assert await drain(one_thing) == []


async def test_everything_subscriptions_only_show_what_the_client_may_see(core_hub):
    mine, theirs = core_hub.connect("lamp-agent", "agent"), core_hub.connect("fan-agent", "agent")
    core_hub.register(mine)
    core_hub.register(theirs, lamp_td("urn:dev:ops:fan-1", "Fan"))
    core_hub.router.subscribe(mine, "presence")  # an agent watching presence of every Thing
    core_hub.router.handle(
        theirs, notification("observeproperty", "urn:dev:ops:fan-1", "on", value=1 == 1)
    )
    core_hub.router.disconnect(theirs)
    assert await drain(mine) == []  # the fan is not the lamp agent's business


async def test_presence_follows_agent_connections(core_hub):
    agent = core_hub.connect("lamp-agent", "agent")
    core_hub.register(agent)
    viewer = core_hub.connect("vera", "viewer")
    core_hub.router.subscribe(viewer, "presence", LAMP)
    assert core_hub.twin.presence(LAMP)["online"] is True

    second = core_hub.connect("lamp-agent", "agent")  # a second connection changes nothing
    core_hub.router.disconnect(agent)
    assert core_hub.twin.presence(LAMP)["online"] is True
    core_hub.router.disconnect(second)
    offline = await receive(viewer)
    assert offline.operation == ops.UPDATE_PRESENCE and offline.value["online"] is False
    assert "lastSeen" in core_hub.twin.presence(LAMP)
    core_hub.connect("lamp-agent", "agent")
    assert (await receive(viewer)).value["online"] is True


async def test_td_changes_are_notified_to_directory_subscribers(core_hub):
    watcher = core_hub.connect("vera", "viewer")
    core_hub.router.subscribe(watcher, "directory")
    agent = core_hub.connect("lamp-agent", "agent")
    core_hub.register(agent)
    core_hub.register(agent, lamp_td(title="Lamp v2"))
    core_hub.router.handle(agent, request("deletething", LAMP))
    got = [(m.operation, m.thing_id, m.value) for m in await drain(watcher)]
    assert got[0] == ("updatething", LAMP, {"created": True})
    assert got[1] == ("updatething", LAMP, {"created": False, "diff": {"title": "Lamp v2"}})
    assert got[2][:2] == ("deletething", LAMP)


async def test_deleting_a_thing_cancels_what_waits_for_it(core_hub):
    agent = core_hub.connect("lamp-agent", "agent")
    core_hub.register(agent)
    core_hub.router.disconnect(agent)
    operator = core_hub.connect("otto", "operator")
    accepted = core_hub.router.handle(operator, request("invokeaction", LAMP, "toggle"))
    agent = core_hub.connect("lamp-agent", "agent")
    await drain(agent)
    core_hub.router.handle(agent, request("deletething", LAMP))
    result = [m for m in await drain(operator) if m.action_id == accepted.action_id][-1]
    assert result.status == "cancelled" and result.error["status"] == 410


async def test_slow_subscriber_is_cut_off_without_slowing_others(tmp_path):
    core_hub = await CoreHub(tmp_path / "store").open(max_notifications=50)
    try:
        agent = core_hub.connect("lamp-agent", "agent")
        core_hub.register(agent)
        slow, fast = core_hub.connect("slow", "viewer"), core_hub.connect("fast", "viewer")
        for viewer in (slow, fast):
            core_hub.router.handle(viewer, request("observeproperty", LAMP, "brightness"))
        received = 0
        for level in range(200):  # bounded load; "fast" keeps up, "slow" never reads
            core_hub.router.handle(
                agent, notification("observeproperty", LAMP, "brightness", value=level % 100)
            )
            received += len(await drain(fast))
        assert received == 200
        assert slow.closed_reason == "overflow"
        assert core_hub.router.subscriptions.wants(slow, "property", LAMP, "brightness") is None
    finally:
        await core_hub.close()


async def test_sse_style_resume_replays_what_was_missed(core_hub):
    agent = core_hub.connect("lamp-agent", "agent")
    core_hub.register(agent)
    viewer = core_hub.connect("vera", "viewer")
    core_hub.router.handle(viewer, request("observeproperty", LAMP, "on"))
    core_hub.router.handle(agent, notification("observeproperty", LAMP, "on", value=True))
    seq, _ = await viewer.next()
    core_hub.router.disconnect(viewer)
    for value in (False, True):
        core_hub.router.handle(agent, notification("observeproperty", LAMP, "on", value=value))
        core_hub.router.handle(agent, notification("observeproperty", LAMP, "brightness", value=3))

    again = core_hub.connect("vera", "viewer")
    core_hub.router.handle(again, request("observeproperty", LAMP, "on"))
    assert core_hub.router.replay(again, seq) is True
    assert [m.value for m in await drain(again)] == [False, True]
    assert core_hub.router.replay(again, seq + 10_000) is False


async def test_synchronous_waiters_get_the_final_status(core_hub):
    agent = core_hub.connect("lamp-agent", "agent")
    core_hub.register(agent)
    operator = core_hub.connect("otto", "operator")
    accepted = core_hub.router.handle(
        operator, request("invokeaction", LAMP, "fade", input={"level": 5})
    )
    waiter = core_hub.router.wait_for(accepted.action_id)
    delivered = await receive(agent)
    core_hub.router.handle(agent, messages.answer(delivered, output=5))
    final = await asyncio.wait_for(waiter, 2)
    assert final["status"] == "completed" and final["output"] == 5
    assert core_hub.router.wait_for(accepted.action_id).result()["output"] == 5


async def test_a_td_with_a_ttl_is_purged_on_time(core_hub):
    watcher = core_hub.connect("vera", "viewer")
    core_hub.router.subscribe(watcher, "directory")
    agent = core_hub.connect("lamp-agent", "agent")
    core_hub.register(agent, {**lamp_td(), "registration": {"ttl": 0.3}})
    assert core_hub.twin.thing(LAMP).registration()["ttl"] == 0.3
    created = await receive(watcher)
    assert created.operation == "updatething"
    deleted = await receive(watcher, timeout=3)  # nothing else happens meanwhile
    assert (deleted.operation, deleted.thing_id) == ("deletething", LAMP)
    assert core_hub.twin.thing(LAMP) is None


# -- the production authorizer: what the roles, ownership and accounts decide -------------


async def test_a_service_is_an_agent_for_its_own_things_and_a_manager_for_others(core_hub):
    lamp_agent, sam = core_hub.connect("lamp-agent", "agent"), core_hub.connect("sam", "service")
    core_hub.register(lamp_agent)
    mine = core_hub.register(sam, lamp_td("urn:dev:ops:sam-rules", "Rules"))
    viewer = core_hub.connect("vera", "viewer")
    core_hub.router.handle(viewer, request("observeproperty", mine, "on"))
    assert (
        core_hub.router.handle(sam, notification("observeproperty", mine, "on", value=True)) is None
    )
    assert (await receive(viewer)).value is True

    # On the lamp it acts as a manager: writes and invokes, and the lamp's agent answers.
    write = core_hub.router.handle(sam, request("writeproperty", LAMP, "brightness", input=20))
    invoke = core_hub.router.handle(sam, request("invokeaction", LAMP, "toggle"))
    assert write.error is None and invoke.error is None
    assert [m.action_id for m in await drain(lamp_agent)] == [write.action_id, invoke.action_id]
    # ... but never as the lamp's agent.
    for refused in [
        core_hub.router.handle(sam, notification("observeproperty", LAMP, "on", value=True)),
        core_hub.router.handle(sam, notification("subscribeevent", LAMP, "overheated", value=1)),
        core_hub.router.handle(sam, request("deletething", LAMP)),
    ]:
        assert refused.error["status"] == 403
    assert core_hub.twin.read_property(LAMP, "on") == {}


async def test_writing_several_properties_is_for_managers_and_services(core_hub):
    core_hub.register(core_hub.connect("lamp-agent", "agent"))
    values = {"on": True, "brightness": 50}
    for client_id, role in [("mia", "manager"), ("sam", "service"), ("root", "admin")]:
        client = core_hub.connect(client_id, role).client
        core_hub.router.check_writes(client, LAMP, values)  # what writemultipleproperties asks
        assert (
            core_hub.router.authorizer.authorize(client, ops.WRITE_MULTIPLE_PROPERTIES, LAMP, "x")
            is None
        )
    for client_id, role in [("otto", "operator"), ("vera", "viewer"), ("other-agent", "agent")]:
        client = core_hub.connect(client_id, role).client
        with pytest.raises(Forbidden):
            core_hub.router.check_writes(client, LAMP, values)
        assert core_hub.router.authorizer.authorize(
            client, ops.WRITE_MULTIPLE_PROPERTIES, LAMP, "x"
        )


@pytest.mark.parametrize(("intruder", "role"), [("other-agent", "agent"), ("sam", "service")])
async def test_every_agent_operation_is_for_the_things_owner_only(core_hub, intruder, role):
    owner = core_hub.connect("lamp-agent", "agent")
    core_hub.register(owner)
    other = core_hub.connect(intruder, role)
    accepted = core_hub.router.handle(
        core_hub.connect("otto", "operator"), request("invokeaction", LAMP, "toggle")
    )
    delivered = await receive(owner)

    refusals = {
        "reportproperty": notification("observeproperty", LAMP, "on", value=True),
        "reportproperties": notification("observeallproperties", LAMP, value={"on": True}),
        "reportevent": notification("subscribeevent", LAMP, "overheated", value=1.0),
        "answerrequest": messages.answer(delivered, output=None),
        "deletething": request("deletething", LAMP),
    }
    for what, message in refusals.items():
        assert core_hub.router.handle(other, message).error["status"] == 403, what
    taken = core_hub.router.handle(other, request("updatething", input=lamp_td(title="Mine")))
    assert taken.error["status"] == 409  # the directory's answer to someone else's id
    assert (
        core_hub.twin.thing(LAMP).td["title"] == "Lamp"
        and core_hub.twin.thing(LAMP).owner == "lamp-agent"
    )
    assert core_hub.twin.get_request(accepted.action_id).status == "delivered"
    assert core_hub.twin.read_property(LAMP, "on") == {}
    # The owner does all of it.
    assert core_hub.router.handle(owner, messages.answer(delivered)) is None
    assert core_hub.router.handle(owner, refusals["reportproperty"]) is None
    assert core_hub.router.handle(owner, request("deletething", LAMP)).error is None


async def test_an_agent_sees_only_its_own_things(core_hub):
    core_hub.register(core_hub.connect("lamp-agent", "agent"))
    other = core_hub.connect("other-agent", "agent")
    for message in [request("readthing", LAMP), request("readproperty", LAMP, "on")]:
        assert core_hub.router.handle(other, message).error["status"] == 403, message.operation
    assert (
        core_hub.router.handle(other, request("observeproperty", LAMP, "on")).error["status"] == 403
    )


@pytest.mark.parametrize("thing_id", [CLIENTS_THING, CERTS_THING])
async def test_the_administration_things_are_for_admins_only(core_hub, thing_id):
    for client_id, role in [
        ("vera", "viewer"),
        ("otto", "operator"),
        ("mia", "manager"),
        ("lamp-agent", "agent"),
        ("sam", "service"),
    ]:
        connection = core_hub.connect(client_id, role)
        for message in [
            request("readthing", thing_id),
            request("invokeaction", thing_id, "listClients"),
        ]:
            refused = core_hub.router.handle(connection, message)
            assert refused.error["status"] == 403, (client_id, message.operation)
            assert "only administrators" in refused.error["detail"]
    # This router serves no administration Things: an admin passes the authorizer and
    # finds nothing there.
    admin = core_hub.connect("root", "admin")
    assert core_hub.router.handle(admin, request("readthing", thing_id)).error["status"] == 404


async def test_a_removed_or_disabled_client_is_refused_on_its_next_request(core_hub):
    core_hub.register(core_hub.connect("lamp-agent", "agent"))
    otto, olga = core_hub.connect("otto", "operator"), core_hub.connect("olga", "operator")
    for connection in (otto, olga):
        assert core_hub.router.handle(connection, request("readthing", LAMP)).error is None

    core_hub.auth.remove_client("otto")
    core_hub.auth.update_client("olga", enabled=False)
    for connection in (otto, olga):
        refused = core_hub.router.handle(connection, request("invokeaction", LAMP, "toggle"))
        assert refused.error["status"] == 401
    assert core_hub.twin.requests_of(LAMP) == []

    core_hub.auth.update_client("olga", enabled=True)
    assert core_hub.router.handle(olga, request("readthing", LAMP)).error is None


async def test_an_ended_session_is_refused_on_its_next_request(core_hub):
    core_hub.register(core_hub.connect("lamp-agent", "agent"))
    connection, token = core_hub.login("mia")
    assert connection.client.session_id is not None
    assert core_hub.router.handle(connection, request("readthing", LAMP)).error is None
    core_hub.auth.logout(token)
    refused = core_hub.router.handle(connection, request("writeproperty", LAMP, "on", input=True))
    assert refused.error["status"] == 401 and core_hub.twin.requests_of(LAMP) == []
    # A connection without a token (a password or certificate client) is not affected.
    assert (
        core_hub.router.handle(core_hub.connect("mia", "manager"), request("readthing", LAMP)).error
        is None
    )
