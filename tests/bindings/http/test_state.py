"""The twin state document over HTTP (``GET /things/{id}/state``, docs/digitwin.md):
reported, desired, declined and delta across a write accepted, a write refused, a
device offline and back, and a hub restart; its SSE stream of desired and declined
changes; the twin TD's link to it. Real aiohttp clients, the device a WebSocket agent."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.devices import AGENT, answer, register, report
from tests.support.http import norm, url
from tests.support.problems import problem_of
from tests.support.running import started_hub
from tests.support.sse import stream
from tests.support.tds import SLASHED_LAMP as LAMP
from tests.support.tds import http_lamp_td
from tests.waiting import until

pytestmark = pytest.mark.timeout(60)

REFUSED = {"type": "about:blank", "title": "Unprocessable", "status": 422, "detail": "too bright"}


async def state_of(session, thing: str = LAMP) -> dict:
    async with session.get(url(thing, "state")) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def write(session, value: int) -> int:
    """A manager's write of brightness; the HTTP status."""
    async with session.put(url(LAMP, "properties", "brightness"), json=value) as response:
        return response.status


async def device_answers(device, status: str, **fields):
    """The device takes the next write and answers it (``completed``: it reports the value
    first, as a device does that applied it)."""
    delivered = await device.next_request()
    if status == "completed":
        await report(device, delivered.name, delivered.input, delivered.thing_id)
    await answer(device, delivered, status=status, **fields)
    return delivered


@pytest.fixture
def manager(running):
    return running.add_client("mia", "consumer", "manager")


async def test_a_write_accepted_then_one_refused(running, manager):
    device = await register(running, td=http_lamp_td())
    await report(device, "brightness", 10)
    async with running.session(manager) as session:
        state = await state_of(session)
        assert state["thingID"] == LAMP and state["delta"] == {}
        brightness = state["properties"]["brightness"]
        assert brightness["reported"]["value"] == 10 and brightness["reported"]["time"]
        assert state["properties"]["on"] == {}  # never reported, never written

        status, _ = await asyncio.gather(write(session, 70), device_answers(device, "completed"))
        assert status == 204
        state = await state_of(session)
        assert state["properties"]["brightness"] == {
            "reported": {"value": 70, "time": state["properties"]["brightness"]["reported"]["time"]}
        }

        status, refused = await asyncio.gather(
            write(session, 95), device_answers(device, "failed", error=REFUSED)
        )
        assert status == 422  # the device's refusal, passed on
        brightness = (await state_of(session))["properties"]["brightness"]
        assert brightness["reported"]["value"] == 70 and "desired" not in brightness
        declined = brightness["declined"]
        assert (declined["value"], declined["senderID"], declined["id"]) == (
            95,
            "mia",
            refused.action_id,
        )
        assert declined["error"]["detail"] == "too bright" and declined["time"]

        # A write it accepts later: nothing is declined any more.
        await asyncio.gather(write(session, 60), device_answers(device, "completed"))
        brightness = (await state_of(session))["properties"]["brightness"]
        assert brightness["reported"]["value"] == 60 and "declined" not in brightness


async def test_desired_while_the_device_is_offline_then_applied(running, manager):
    device = await register(running, td=http_lamp_td())
    await report(device, "brightness", 10)
    await device.close()
    async with running.session(manager) as session:
        assert await write(session, 90) == 202
        state = await state_of(session)
        desired = state["properties"]["brightness"]["desired"]
        assert desired["value"] == 90 and desired["senderID"] == "mia" and desired["time"]
        assert state["delta"] == {"brightness": 90}

        device = await running.device(AGENT)  # back: the write is delivered
        delivered = await device_answers(device, "completed")
        assert delivered.action_id == desired["id"]
        await until(lambda: "desired" not in running.hub.twin.read_property(LAMP, "brightness"))
        state = await state_of(session)
        assert state["delta"] == {} and state["properties"]["brightness"]["reported"]["value"] == 90


async def test_desired_and_declined_survive_a_restart(tmp_path):
    home = tmp_path / "home"
    async with started_hub(home) as running:
        token = running.add_client("mia", "consumer", "manager")
        device = await register(running, td=http_lamp_td())
        await report(device, "brightness", 10)
        async with running.session(token) as session:
            await asyncio.gather(
                write(session, 95), device_answers(device, "failed", error=REFUSED)
            )
            await device.close()
            assert await write(session, 30) == 202
            before = await state_of(session)
    async with started_hub(home) as running:
        token = running.hub.auth.new_token("mia")["token"]
        async with running.session(token) as session:
            after = await state_of(session)
    assert after == before
    brightness = after["properties"]["brightness"]
    assert brightness["reported"]["value"] == 10
    assert brightness["desired"]["value"] == 30 and brightness["declined"]["value"] == 95
    assert after["delta"] == {"brightness": 30}


async def test_the_state_stream_tells_desired_and_declined_changes(running, manager):
    device = await register(running, td=http_lamp_td())
    await report(device, "brightness", 10)
    await device.close()
    async with running.session(manager) as session, stream(session, url(LAMP, "state")) as events:
        assert await write(session, 90) == 202
        queued = await events.next()
        assert queued["event"] == "brightness"
        assert queued["data"]["desired"]["value"] == 90
        assert queued["data"]["reported"]["value"] == 10

        device = await running.device(AGENT)
        await device_answers(device, "failed", error=REFUSED)
        refused = await events.next()
        assert refused["event"] == "brightness" and "desired" not in refused["data"]
        assert refused["data"]["declined"]["value"] == 90


async def test_the_twin_td_links_its_state_and_reading_it_is_authorized(running, manager):
    await register(running, td=http_lamp_td())
    async with running.session(manager) as session:
        async with session.get(url(LAMP)) as response:
            td = await response.json()
        (link,) = [link for link in td["links"] if link["rel"] == "state"]
        assert norm(link["href"]) == norm(running.url + url(LAMP, "state"))
        async with session.get(link["href"]) as response:
            assert response.status == 200
        async with session.get(url("urn:dev:ops:nothing", "state")) as response:
            await problem_of(response, 404)
    running.add_client("other-agent", "agent", "agent")
    other = running.hub.auth.new_token("other-agent")["token"]
    async with running.session(other) as session, session.get(url(LAMP, "state")) as response:
        await problem_of(response, 403)
