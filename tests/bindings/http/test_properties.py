"""Properties over the WoT HTTP Basic profile: reads from the twin, writes queued for the
device (204 when it answers in time, 202 + Location otherwise), and the forms of the twin
TD. Real aiohttp clients over HTTPS; the device is a WebSocket agent (``running.device``)."""

import asyncio
import time

import pytest

from tests.support.devices import AGENT, answer, register, report
from tests.support.http import norm, url
from tests.support.problems import problem_of
from tests.support.tds import SLASHED_LAMP as LAMP
from tests.support.tds import http_lamp_td

pytestmark = pytest.mark.timeout(60)

JSON = "application/json"
# TD 1.1, 5.3.4.2 (the op enum of a form).
TD11_OPS = {
    "readproperty",
    "writeproperty",
    "observeproperty",
    "unobserveproperty",
    "invokeaction",
    "queryaction",
    "cancelaction",
    "subscribeevent",
    "unsubscribeevent",
    "readallproperties",
    "writeallproperties",
    "readmultipleproperties",
    "writemultipleproperties",
    "observeallproperties",
    "unobserveallproperties",
    "queryallactions",
    "subscribeallevents",
    "unsubscribeallevents",
}


async def answer_writes(running, conn, count=1, *, report_value=True):
    """The device: take ``count`` writes, carry them out (report the new values), answer."""
    got = []
    for _ in range(count):
        delivered = await conn.next_request()
        assert delivered.operation == "writeproperty"
        if report_value:
            await report(conn, delivered.name, delivered.input, delivered.thing_id)
        await answer(conn, delivered, status="completed")
        got.append(delivered)
    return got


@pytest.fixture
def manager(running):
    return running.add_client("mia", "consumer", "manager")


# -- reads ------------------------------------------------------------------------------


async def test_read_a_reported_value(running, admin):
    conn = await register(running, td=http_lamp_td())
    await report(conn, "brightness", 40)
    async with admin.get(url(LAMP, "properties", "brightness")) as response:
        assert response.status == 200
        assert response.content_type == JSON
        assert await response.json() == 40
        assert response.headers.get("Last-Modified-Time")
    async with admin.get(url(LAMP, "properties", "brightness"), params={"detail": "true"}) as r:
        assert r.status == 200
        detail = await r.json()
    assert detail["value"] == 40 and detail["timestamp"] and "desired" not in detail


async def test_a_value_never_reported_is_503(running, admin):
    conn = await register(running, td=http_lamp_td())
    await report(conn, "on", True)  # another property was
    async with admin.get(url(LAMP, "properties", "brightness")) as response:
        problem = await problem_of(response, 503)
    assert "brightness" in problem["detail"]


async def test_readallproperties_has_the_reported_values_only(running, admin):
    conn = await register(running, td=http_lamp_td())
    await report(conn, "on", True)
    await report(conn, "brightness", 40)
    async with admin.get(url(LAMP, "properties")) as response:
        assert response.status == 200 and response.content_type == JSON
        assert await response.json() == {"on": True, "brightness": 40}


async def test_an_unknown_property_is_404(running, admin, manager):
    await register(running, td=http_lamp_td())
    async with admin.get(url(LAMP, "properties", "colour")) as response:
        await problem_of(response, 404)
    colour = url(LAMP, "properties", "colour")
    async with running.session(manager) as session, session.put(colour, json="red") as response:
        await problem_of(response, 404)
    async with admin.get(url("urn:dev:ops:nothing", "properties", "on")) as response:
        await problem_of(response, 404)


# -- writes -----------------------------------------------------------------------------


async def test_write_to_an_online_device_that_answers_is_204(running, manager):
    conn = await register(running, td=http_lamp_td())
    await report(conn, "brightness", 10)
    device = asyncio.create_task(answer_writes(running, conn))
    async with running.session(manager) as session:
        async with session.put(url(LAMP, "properties", "brightness"), json=70) as response:
            assert response.status == 204, await response.text()
            assert await response.read() == b""
        delivered = (await device)[0]
        assert (delivered.thing_id, delivered.name, delivered.input) == (LAMP, "brightness", 70)
        assert delivered.sender_id == "mia"
        async with session.get(url(LAMP, "properties", "brightness")) as response:
            assert await response.json() == 70


async def test_write_to_an_offline_device_is_202_then_completes_when_it_connects(running, manager):
    conn = await register(running, td=http_lamp_td())
    await report(conn, "brightness", 10)
    await conn.close()
    async with running.session(manager) as session:
        started = time.monotonic()
        async with session.put(url(LAMP, "properties", "brightness"), json=90) as response:
            assert response.status == 202, await response.text()
            status = await response.json()
            location = response.headers["Location"]
        # Offline: no point waiting for the device.
        assert time.monotonic() - started < running.hub.config.sync_wait
        assert location.startswith(running.url) and location == status["href"]
        assert norm(location).startswith(norm(running.url + url(LAMP, "properties", "brightness")))
        assert (status["status"], status["state"]) == ("pending", "pending")
        assert status["input"] == 90

        async with session.get(
            url(LAMP, "properties", "brightness"), params={"detail": "true"}
        ) as r:
            detail = await r.json()
        assert detail["value"] == 10
        assert detail["desired"]["value"] == 90 and detail["desired"]["id"] == status["id"]
        async with session.get(url(LAMP, "properties", "brightness")) as response:
            assert await response.json() == 10  # reported, not desired

        # The device comes back: the queued write is delivered at once.
        conn = await running.device(AGENT)
        delivered = (await answer_writes(running, conn))[0]
        assert delivered.action_id == status["id"] and delivered.input == 90

        async with session.get(location) as response:
            assert response.status == 200
            final = await response.json()
        assert (final["status"], final["state"]) == ("completed", "completed")
        assert final["href"] == location and final["timeEnded"]
        async with session.get(
            url(LAMP, "properties", "brightness"), params={"detail": "true"}
        ) as r:
            detail = await r.json()
        assert detail["value"] == 90 and "desired" not in detail


async def test_a_things_writes_are_listed_as_its_actions_are(running, manager):
    conn = await register(running, td=http_lamp_td())
    await conn.close()
    async with running.session(manager) as session:
        for value in (20, 30):
            async with session.put(url(LAMP, "properties", "brightness"), json=value) as r:
                assert r.status == 202, await r.text()
        async with session.put(url(LAMP, "properties", "on"), json=True) as r:
            on = await r.json()

    viewer = running.add_client("vera", "consumer", "viewer")  # who may query actions
    async with running.session(viewer) as session:
        async with session.get(url(LAMP, "writes")) as response:
            assert response.status == 200 and response.content_type == JSON
            writes = await response.json()
        assert sorted(writes) == ["brightness", "on"]
        assert [s["input"] for s in writes["brightness"]] == [30, 20]  # newest first
        assert writes["on"][0]["id"] == on["id"] and writes["on"][0]["href"] == on["href"]
        for status in (*writes["brightness"], *writes["on"]):
            assert (status["state"], status["status"], status["senderID"]) == (
                "pending",
                "pending",
                "mia",
            )
        async with session.get(url(LAMP, "actions")) as response:
            assert await response.json() == {}  # writes are not actions

        await answer_writes(running, await running.device(AGENT), 3)
        async with session.get(url(LAMP, "writes")) as response:
            writes = await response.json()
        assert {s["state"] for s in (*writes["brightness"], *writes["on"])} == {"completed"}
        async with session.get(url("urn:dev:ops:nothing", "writes")) as response:
            await problem_of(response, 404)

    stranger = running.add_client("other-agent", "agent", "agent")  # not the lamp's agent
    async with running.session(stranger) as session:
        async with session.get(url(LAMP, "actions")) as response:
            refused = response.status
        async with session.get(url(LAMP, "writes")) as response:
            await problem_of(response, refused)
    assert refused in (403, 404)


async def test_write_to_a_device_that_does_not_answer_in_time_is_202(running, manager):
    conn = await register(running, td=http_lamp_td())
    async with running.session(manager) as session:
        started = time.monotonic()
        async with session.put(url(LAMP, "properties", "on"), json=True) as response:
            assert response.status == 202, await response.text()
            status = await response.json()
            location = response.headers["Location"]
        assert time.monotonic() - started >= running.hub.config.sync_wait * 0.9
        assert status["state"] == "delivered" and status["status"] == "pending"
        delivered = await conn.next_request()
        await answer(conn, delivered, status="running")
        async with session.get(location) as response:
            assert (await response.json())["status"] == "running"


async def test_writemultipleproperties(running, manager):
    conn = await register(running, td=http_lamp_td())
    device = asyncio.create_task(answer_writes(running, conn, 2))
    async with running.session(manager) as session:
        values = {"on": True, "brightness": 5}
        async with session.put(url(LAMP, "properties"), json=values) as response:
            assert response.status == 204, await response.text()
        assert {(m.name, m.input) for m in await device} == set(values.items())
        async with session.get(url(LAMP, "properties")) as response:
            assert await response.json() == values

        # With the device away, each write is queued and has its own status.
        await conn.close()
        async with session.put(url(LAMP, "properties"), json={"on": False, "brightness": 6}) as r:
            assert r.status == 202, await r.text()
            statuses = await r.json()
        assert sorted((s["name"], s["input"]) for s in statuses) == [
            ("brightness", 6),
            ("on", False),
        ]
        assert all(s["status"] == "pending" for s in statuses)
        detail = running.hub.twin.read_property(LAMP, "on")
        assert detail["value"] is True and detail["desired"]["value"] is False


async def test_writemultipleproperties_202_statuses_are_profile_action_statuses(running, manager):
    # online, but the device does not answer within the wait
    await register(running, td=http_lamp_td())
    async with running.session(manager) as session:
        async with session.put(url(LAMP, "properties"), json={"on": True, "brightness": 6}) as r:
            assert r.status == 202, await r.text()
            statuses = await r.json()
        for status in statuses:
            assert status["status"] in ("pending", "running", "completed", "failed"), status
            assert status["state"] == "delivered"
            async with session.get(status["href"]) as response:
                assert (await response.json())["id"] == status["id"]


async def test_writemultipleproperties_with_one_bad_value_writes_nothing(running, manager):
    conn = await register(running, td=http_lamp_td())
    await conn.close()
    async with running.session(manager) as session:
        values = {"on": True, "brightness": 500}
        async with session.put(url(LAMP, "properties"), json=values) as response:
            await problem_of(response, 400)
    # the hub decided before it answered: nothing was queued or stored on the way
    assert running.hub.twin.requests_of(LAMP) == []
    assert "desired" not in running.hub.twin.read_property(LAMP, "on")


async def test_writemultipleproperties_refuses_what_is_not_an_object(running, manager):
    await register(running, td=http_lamp_td())
    async with running.session(manager) as session:
        for body in ([1, 2], {}, "on"):
            async with session.put(url(LAMP, "properties"), json=body) as response:
                await problem_of(response, 400)


async def test_write_to_a_read_only_property_is_400(running, manager):
    await register(running, td=http_lamp_td())
    model = url(LAMP, "properties", "model")
    async with running.session(manager) as session, session.put(model, json="X1") as response:
        problem = await problem_of(response, 400)
    assert "read-only" in problem["detail"]
    assert running.hub.twin.requests_of(LAMP) == []


def with_a_secret(td):
    """The lamp with a write-only property (a PIN: set, never read back)."""
    td["properties"]["pin"] = {
        "type": "string",
        "writeOnly": True,
        "forms": [{"href": "https://lamp.local/pin"}],
    }
    return td


async def test_a_write_only_property_is_written_never_read(running, admin, manager):
    conn = await register(running, td=with_a_secret(http_lamp_td()))
    await report(conn, "on", True)
    pin = url(LAMP, "properties", "pin")
    async with running.session(manager) as session:
        writing = asyncio.create_task(answer_writes(running, conn, report_value=False))
        async with session.put(pin, json="1234") as response:
            assert response.status == 204, await response.text()
        assert (await writing)[0].input == "1234"
        async with session.get(pin) as response:
            problem = await problem_of(response, 405)
            assert response.headers["Allow"] == "PUT"
        assert "write-only" in problem["detail"]
        async with session.get(pin, headers={"Accept": "text/event-stream"}) as response:
            await problem_of(response, 405)  # observing it is reading it
        async with session.get(url(LAMP, "properties")) as response:
            assert await response.json() == {"on": True}  # readallproperties leaves it out
    async with admin.get(url(LAMP)) as response:
        td = await response.json(content_type=None)
    ops = {
        op
        for form in td["properties"]["pin"]["forms"]
        for op in ([form["op"]] if isinstance(form["op"], str) else form["op"])
    }
    assert "writeproperty" in ops
    assert not ops & {"readproperty", "observeproperty", "unobserveproperty"}, ops


async def test_a_device_may_not_report_a_write_only_value(running):
    conn = await register(running, td=with_a_secret(http_lamp_td()))
    wire = {
        "messageType": "notification",
        "operation": "observeproperty",
        "thingID": LAMP,
        "name": "pin",
        "value": "1234",
    }
    refused = await conn.send(wire)
    assert refused is not None and refused.error["status"] == 400


async def test_a_value_its_schema_refuses_is_400_with_details(running, manager):
    await register(running, td=http_lamp_td())
    async with running.session(manager) as session:
        for body in (b'"loud"', b"101", b"-1", b"1.5", b"null", b"true"):
            async with session.put(
                url(LAMP, "properties", "brightness"), data=body, headers={"Content-Type": JSON}
            ) as response:
                problem = await problem_of(response, 400)
            assert problem["validationErrors"], problem
            assert "brightness" in problem["detail"]
        # Not JSON at all, and not JSON by its media type.
        headers = {"Content-Type": JSON}
        async with session.put(
            url(LAMP, "properties", "brightness"), data=b"{nope", headers=headers
        ) as response:
            await problem_of(response, 400)
        async with session.put(
            url(LAMP, "properties", "brightness"), data=b"5", headers={"Content-Type": "text/plain"}
        ) as response:
            await problem_of(response, 415)
        async with session.put(url(LAMP, "properties", "brightness")) as response:
            await problem_of(response, 400)  # no body
    assert running.hub.twin.requests_of(LAMP) == []


# -- the twin TD ------------------------------------------------------------------------


async def test_the_twin_td_forms_carry_the_hrefs_used_here(running, admin):
    conn = await register(running, td=http_lamp_td())
    await report(conn, "brightness", 33)
    async with admin.get(url(LAMP)) as response:
        assert response.status == 200
        td = await response.json(content_type=None)

    def forms_with(forms, op):
        return [
            f
            for f in forms
            if f["href"].startswith("https:")
            and op in ([f["op"]] if isinstance(f["op"], str) else f["op"])
        ]

    every = list(td["forms"])
    for member in ("properties", "actions", "events"):
        for affordance in td[member].values():
            every += affordance["forms"]
    for form in every:
        ops = [form["op"]] if isinstance(form["op"], str) else form["op"]
        assert set(ops) <= TD11_OPS, form
        assert "lamp.local" not in form["href"]  # the device's own forms are gone
    # The HTTP binding's forms (other bindings add their own, on other schemes).
    every = [form for form in every if form["href"].startswith("https:")]
    for form in every:
        ops = [form["op"]] if isinstance(form["op"], str) else form["op"]
        assert form["href"].startswith(running.url + "/things/"), form
        assert form["contentType"] == JSON
        observing = {"observeproperty", "observeallproperties", "subscribeevent"}
        observing |= {"subscribeallevents"}
        # Observing has two forms: long polling (what node-wot reads) and SSE.
        assert (form.get("subprotocol") in ("sse", "longpoll")) == bool(observing & set(ops))
        assert (form.get("subprotocol") == "longpoll") == form["href"].endswith("?longpoll=true")

    base = running.url
    hrefs = {id(f): norm(f["href"]) for f in every}
    brightness = td["properties"]["brightness"]["forms"]
    assert hrefs[id(forms_with(brightness, "readproperty")[0])] == norm(
        base + url(LAMP, "properties", "brightness")
    )
    assert forms_with(brightness, "writeproperty") == forms_with(brightness, "readproperty")
    observe = forms_with(brightness, "observeproperty")
    assert [f["subprotocol"] for f in observe] == ["longpoll", "sse"]
    assert norm(observe[1]["href"]) == hrefs[id(forms_with(brightness, "readproperty")[0])]
    model = td["properties"]["model"]["forms"]
    assert forms_with(model, "readproperty") and not forms_with(model, "writeproperty")
    invoke = forms_with(td["actions"]["toggle"]["forms"], "invokeaction")[0]
    assert norm(invoke["href"]) == norm(base + url(LAMP, "actions", "toggle"))
    subscribe = forms_with(td["events"]["overheated"]["forms"], "subscribeevent")[-1]
    assert norm(subscribe["href"]) == norm(base + url(LAMP, "events", "overheated"))
    thing = {op: found[0]["href"] for op in TD11_OPS if (found := forms_with(td["forms"], op))}
    assert {op: norm(href) for op, href in thing.items()} == {
        "readallproperties": norm(base + url(LAMP, "properties")),
        "writemultipleproperties": norm(base + url(LAMP, "properties")),
        "observeallproperties": norm(base + url(LAMP, "properties")),
        "unobserveallproperties": norm(base + url(LAMP, "properties")),
        "subscribeallevents": norm(base + url(LAMP, "events")),
        "unsubscribeallevents": norm(base + url(LAMP, "events")),
        "queryallactions": norm(base + url(LAMP, "actions")),
    }

    # The hrefs work as they are.
    async with admin.get(forms_with(brightness, "readproperty")[0]["href"]) as response:
        assert await response.json() == 33
    async with admin.get(thing["readallproperties"]) as response:
        assert await response.json() == {"brightness": 33}
    async with admin.get(thing["queryallactions"]) as response:
        assert await response.json() == {}
