"""Observing and subscribing by long polling (the ``longpoll`` subprotocol forms, what
node-wot reads): HEAD answers at once, GET is held until the next notification and
answers its data as JSON; refusals come before the hold; the hub stopping ends a held
poll with 503. Real aiohttp clients over HTTPS; the device is a real WebSocket agent."""

import asyncio

import pytest

from tests.support.devices import emit, register, report
from tests.support.http import url
from tests.support.problems import PROBLEM, problem_of
from tests.support.running import started_hub
from tests.support.tds import SLASHED_LAMP as LAMP
from tests.support.tds import http_lamp_td
from tests.waiting import until

pytestmark = pytest.mark.timeout(60)

POLL = {"longpoll": "true"}


async def held(hub):
    """Returns once a poll is held (subscribed in the router, waiting)."""
    await until(lambda: hub.hub.http.context.streams, timeout=5)


async def poll(session, path):
    """One long poll: (status, content type, JSON body or None)."""
    async with asyncio.timeout(10), session.get(path, params=POLL) as response:
        body = await response.json(content_type=None) if response.status != 204 else None
        return response.status, response.content_type, body


async def answered(running, session, path, notify):
    """Holds a poll on ``path``, awaits ``notify()`` once it is held; the poll's answer."""
    pending = asyncio.create_task(poll(session, path))
    await held(running)
    await notify()
    return await pending


async def test_head_answers_at_once_with_the_json_media_type(running, viewer):
    await register(running, td=http_lamp_td())
    async with asyncio.timeout(5), viewer.head(url(LAMP, "properties", "on"), params=POLL) as r:
        assert r.status == 200
        assert r.content_type == "application/json"
        assert await r.read() == b""
    assert running.hub.http.context.streams == set()


async def test_a_poll_is_held_until_the_next_value_and_answers_it(running, viewer):
    conn = await register(running, td=http_lamp_td())
    await report(conn, "brightness", 10)  # before the poll: not its answer

    async def notify():
        await report(conn, "on", True)  # another property: not this poll's
        await report(conn, "brightness", 20)

    status, media, body = await answered(
        running, viewer, url(LAMP, "properties", "brightness"), notify
    )
    assert (status, media, body) == (200, "application/json", 20)
    assert running.hub.http.context.streams == set()  # the poll unsubscribed


async def test_a_thing_wide_poll_names_what_it_answers(running, viewer):
    conn = await register(running, td=http_lamp_td())
    got = await answered(
        running, viewer, url(LAMP, "properties"), lambda: report(conn, "on", False)
    )
    assert got == (200, "application/json", {"on": False})
    got = await answered(
        running, viewer, url(LAMP, "events"), lambda: emit(conn, "overheated", 71.5)
    )
    assert got == (200, "application/json", {"overheated": 71.5})


async def test_an_event_poll_answers_the_event_data(running, viewer):
    conn = await register(running, td=http_lamp_td())

    async def notify():
        await emit(conn, "clicked")  # another event
        await emit(conn, "overheated", 80.0)

    got = await answered(running, viewer, url(LAMP, "events", "overheated"), notify)
    assert got == (200, "application/json", 80.0)


async def test_polls_are_refused_before_they_are_held(running, viewer):
    td = http_lamp_td()
    td["properties"]["secret"] = {"type": "string", "writeOnly": True, "forms": [{"href": "x"}]}
    await register(running, td=td)
    async with (
        running.session() as anonymous,
        anonymous.get(url(LAMP, "properties", "on"), params=POLL) as response,
    ):
        await problem_of(response, 401)
    fan = running.add_client("fan-agent", "agent", "agent")
    async with (
        running.session(fan) as agent,
        agent.get(url(LAMP, "events"), params=POLL) as response,
    ):
        await problem_of(response, 403)
    async with viewer.get(url(LAMP, "properties", "colour"), params=POLL) as response:
        await problem_of(response, 404)
    async with viewer.get(url(LAMP, "properties", "secret"), params=POLL) as response:
        problem = await problem_of(response, 405)
        assert response.headers["Allow"] == "PUT"
    assert "secret" in problem["detail"]
    assert running.hub.http.context.streams == set()


async def test_a_held_poll_ends_with_503_when_the_hub_stops(tmp_path):
    async with started_hub(tmp_path / "home") as hub:
        await register(hub, td=http_lamp_td())
        token = hub.add_client("vera", "consumer", "viewer")
        async with hub.session(token) as viewer:
            pending = asyncio.create_task(poll(viewer, url(LAMP, "properties", "on")))
            await held(hub)
            async with asyncio.timeout(5):
                await hub.stop()
            status, media, problem = await pending
    assert (status, media) == (503, PROBLEM)
    assert "poll again" in problem["detail"]
