"""Notifications over the WoT HTTP SSE profile: observeproperty, observeallproperties,
subscribeevent, subscribeallevents; resuming with Last-Event-ID; refusals before the
stream starts; HEAD; streams end when the hub stops. Real aiohttp clients over HTTPS;
the device is a WebSocket agent (``running.device``)."""

import asyncio
import contextlib
import time
from urllib.parse import quote

import aiohttp
import pytest

from bucketstore import open_store
from hub.runtime import Hub
from tests.support.running import RunningHub, hub_config
from tests.waiting import until
from vocabulary.envelope import new_id

from ..sse_reader import SseReader

pytestmark = pytest.mark.timeout(60)

LAMP = "urn:dev:ops:lamp/1"  # a "/" in the id: it must travel percent-encoded
AGENT = "lamp-agent"
STREAM = {"Accept": "text/event-stream"}
PROBLEM = "application/problem+json"


def lamp_td(thing_id=LAMP):
    return {
        "@context": "https://www.w3.org/2022/wot/td/v1.1",
        "id": thing_id,
        "title": "Lamp",
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
        },
        "actions": {"toggle": {"forms": [{"href": "https://lamp.local/toggle"}]}},
        "events": {
            "overheated": {"data": {"type": "number"}, "forms": [{"href": "https://lamp.local/o"}]},
            "clicked": {"forms": [{"href": "https://lamp.local/c"}]},
        },
    }


def url(thing=LAMP, *parts):
    """A resource path with every segment percent-encoded."""
    return "/".join(["/things", *(quote(p, safe="") for p in (thing, *parts))])


async def register(running, agent_id=AGENT, td=None):
    conn = await running.device(agent_id)
    wire = {
        "messageType": "request",
        "operation": "updatething",
        "correlationID": new_id(),
        "input": td or lamp_td(),
    }
    response = await conn.send(wire)
    assert response.error is None, response.error
    return conn


async def report(running, conn, name, value, thing=LAMP):
    wire = {
        "messageType": "notification",
        "operation": "observeproperty",
        "thingID": thing,
        "name": name,
        "value": value,
    }
    assert await conn.send(wire) is None


async def emit(running, conn, name, value=None, thing=LAMP):
    wire = {"messageType": "notification", "operation": "subscribeevent", "thingID": thing}
    wire["name"] = name
    if value is not None:
        wire["value"] = value
    assert await conn.send(wire) is None


class Sse(SseReader):
    async def take(self, count, timeout=5.0):
        return [await self.next(timeout) for _ in range(count)]

    async def nothing_more(self, running, conn, name="brightness", marker=99):
        """Nothing more came: the lamp reports ``marker`` and it is the next event."""
        await report(running, conn, name, marker)
        await self.next_is(marker)


@contextlib.asynccontextmanager
async def stream(session, path, last_event_id=None):
    """An open SSE stream (200, text/event-stream), closed on exit."""
    headers = dict(STREAM)
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    async with asyncio.timeout(5):
        response = await session.get(path, headers=headers)
    try:
        assert response.status == 200, await response.text()
        assert response.content_type == "text/event-stream"
        yield Sse(response)
    finally:
        response.close()


async def problem_of(response, status):
    assert response.status == status, await response.text()
    assert response.content_type == PROBLEM
    problem = await response.json(content_type=PROBLEM)
    assert problem["status"] == status
    return problem


@pytest.fixture
async def viewer(running):
    token = running.add_client("vera", "consumer", "viewer")
    async with running.session(token) as session:
        yield session


def seq_of(event_id, epoch):
    prefix, _, seq = event_id.rpartition("-")
    assert prefix == epoch, event_id
    return int(seq)


# -- streams ------------------------------------------------------------------------------


async def test_observeproperty_streams_reported_values(running, viewer):
    conn = await register(running)
    epoch = running.hub.router.log.epoch
    async with stream(viewer, url(LAMP, "properties", "brightness")) as events:
        assert events.response.headers["Cache-Control"] == "no-store"
        await report(running, conn, "brightness", 40)
        await report(running, conn, "on", True)  # another property: not on this stream
        await report(running, conn, "brightness", 41)
        first, second = await events.take(2)
        assert [(e["event"], e["data"]) for e in (first, second)] == [
            ("brightness", 40),
            ("brightness", 41),
        ]
        assert seq_of(first["id"], epoch) < seq_of(second["id"], epoch)
        await events.nothing_more(running, conn)


async def test_observeallproperties_names_each_property(running, viewer):
    conn = await register(running)
    other = await register(running, "fan-agent", lamp_td("urn:dev:ops:fan-1"))
    async with stream(viewer, url(LAMP, "properties")) as events:
        await report(running, conn, "on", True)
        await report(running, other, "on", False, "urn:dev:ops:fan-1")  # another Thing
        await report(running, conn, "brightness", 7)
        got = [(e["event"], e["data"]) for e in await events.take(2)]
        assert got == [("on", True), ("brightness", 7)]
        await events.nothing_more(running, conn)


async def test_subscribeevent_and_subscribeallevents(running, viewer):
    conn = await register(running)
    async with (
        stream(viewer, url(LAMP, "events", "overheated")) as one,
        stream(viewer, url(LAMP, "events")) as every,
    ):
        await emit(running, conn, "overheated", 81.5)
        await emit(running, conn, "clicked")  # an event without data
        await report(running, conn, "on", True)  # a property: on neither stream
        event = await one.next()
        assert (event["event"], event["data"]) == ("overheated", 81.5)
        assert [(e["event"], e["data"]) for e in await every.take(2)] == [
            ("overheated", 81.5),
            ("clicked", None),
        ]
        await emit(running, conn, "overheated", 99.5)  # the marker: next on both streams
        await one.next_is(99.5)
        await every.next_is(99.5)


# -- resuming -----------------------------------------------------------------------------


async def test_resume_with_last_event_id_loses_and_repeats_nothing(running, viewer):
    conn = await register(running)
    path = url(LAMP, "properties", "brightness")
    async with stream(viewer, path) as events:
        for level in (1, 2, 3):
            await report(running, conn, "brightness", level)
        seen = await events.take(3)
    assert [e["data"] for e in seen] == [1, 2, 3]
    await until(lambda: not running.hub.http.context.streams)  # the hub noticed it is gone

    for level in (4, 5, 6, 7, 8):  # while disconnected
        await report(running, conn, "brightness", level)
        await report(running, conn, "on", level % 2 == 0)  # not on this stream

    async with stream(viewer, path, last_event_id=seen[-1]["id"]) as events:
        missed = await events.take(5)
        await report(running, conn, "brightness", 9)
        live = await events.next()
        await events.nothing_more(running, conn)
    assert [e["data"] for e in missed] == [4, 5, 6, 7, 8]
    assert live["data"] == 9
    ids = [e["id"] for e in seen + missed + [live]]
    epoch = running.hub.router.log.epoch
    seqs = [seq_of(i, epoch) for i in ids]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


async def test_a_stream_opens_with_a_comment_and_every_event_has_data(running, viewer):
    # The reader is strict: an id-only or data-less block fails it, as it fails the
    # SSE clients that decode each block as JSON.
    conn = await register(running)
    path = url(LAMP, "properties", "brightness")
    async with stream(viewer, path) as events:
        await report(running, conn, "brightness", 1)
        first = await events.next()
        assert events.comments[:1] == ["stream open"]
    assert first["data"] == 1 and first["id"] == events.last_id
    await report(running, conn, "brightness", 2)
    async with stream(viewer, path, last_event_id=first["id"]) as events:
        resumed = await events.next()
        assert resumed["data"] == 2 and resumed["id"] != first["id"]
        await events.nothing_more(running, conn)


async def test_last_event_id_from_another_run_asks_for_a_resync(running, viewer):
    conn = await register(running)
    await report(running, conn, "brightness", 1)
    path = url(LAMP, "properties", "brightness")
    for stale in ("0badbeef-3", "not an id", f"{running.hub.router.log.epoch}-999999"):
        async with stream(viewer, path, last_event_id=stale) as events:
            resync = await events.next()
            assert resync["event"] == "resync", (stale, resync)
            assert resync["id"] is None and resync["data"]["detail"]
            await report(running, conn, "brightness", 2)
            event = await events.next()
            assert (event["event"], event["data"]) == ("brightness", 2)


async def test_last_event_id_older_than_the_log_asks_for_a_resync(tmp_path):
    async with started_hub(tmp_path, notification_log_size=4) as hub:
        conn = await register(hub)
        token = hub.add_client("vera", "consumer", "viewer")
        path = url(LAMP, "properties", "brightness")
        async with hub.session(token) as viewer:
            async with stream(viewer, path) as events:
                await report(hub, conn, "brightness", 1)
                last = await events.next()
            for level in range(2, 12):  # more than the log keeps
                await report(hub, conn, "brightness", level)
            async with stream(viewer, path, last_event_id=last["id"]) as events:
                assert (await events.next())["event"] == "resync"
                await report(hub, conn, "brightness", 50)
                assert (await events.next())["data"] == 50


# -- refusals -------------------------------------------------------------------------------


async def test_a_viewer_observes_but_an_agent_may_not_observe_another_agents_thing(running, viewer):
    conn = await register(running)
    async with stream(viewer, url(LAMP, "properties", "on")) as events:
        await report(running, conn, "on", True)
        assert (await events.next())["data"] is True

    fan = running.add_client("fan-agent", "agent", "agent")
    async with running.session(fan) as agent:
        for path in (
            url(LAMP, "properties", "on"),
            url(LAMP, "properties"),
            url(LAMP, "events", "overheated"),
            url(LAMP, "events"),
        ):
            async with asyncio.timeout(5), agent.get(path, headers=STREAM) as response:
                await problem_of(response, 403)
    async with (
        running.session() as anonymous,
        asyncio.timeout(5),
        anonymous.get(url(LAMP, "events"), headers=STREAM) as r,
    ):
        await problem_of(r, 401)
    # Refused streams leave nothing subscribed behind.
    await until(lambda: running.hub.http.context.streams == set(), 2)


async def test_unknown_affordances_and_things_are_404(running, viewer):
    await register(running)
    for path in (
        url(LAMP, "properties", "colour"),
        url(LAMP, "events", "exploded"),
        url("urn:dev:ops:nothing", "properties", "on"),
        url("urn:dev:ops:nothing", "properties"),
        url("urn:dev:ops:nothing", "events"),
    ):
        async with asyncio.timeout(5), viewer.get(path, headers=STREAM) as response:
            await problem_of(response, 404)


async def test_head_on_a_stream_url_answers_at_once(running, viewer):
    await register(running)
    for path in (url(LAMP, "properties", "on"), url(LAMP, "properties"), url(LAMP, "events")):
        async with asyncio.timeout(5), viewer.head(path, headers=STREAM) as response:
            assert response.status == 200
            assert response.content_type == "text/event-stream"
    fan = running.add_client("fan-agent", "agent", "agent")
    async with (
        running.session(fan) as agent,
        asyncio.timeout(5),
        agent.head(url(LAMP, "events"), headers=STREAM) as r,
    ):
        assert r.status == 403
    assert running.hub.http.context.streams == set()


# -- the hub stops ------------------------------------------------------------------------


class StartedHub(RunningHub):
    """What the ``running`` fixture offers, for a hub this test stops itself."""


@contextlib.asynccontextmanager
async def started_hub(tmp_path, **config):
    config = hub_config(tmp_path / "home", **config)
    config.home.mkdir(mode=0o700)
    store = open_store(config.store_path, "leveldb")
    hub = Hub(config, store)
    await hub.start()
    state = {"stopped": False}
    started = StartedHub(hub)
    started.stop = _stopper(hub, state)
    try:
        yield started
    finally:
        await started.close_devices()
        if not state["stopped"]:
            await hub.stop()
        store.close()


def _stopper(hub, state):
    async def stop():
        state["stopped"] = True
        await hub.stop()

    return stop


async def test_streams_end_when_the_hub_stops(tmp_path):
    async with started_hub(tmp_path) as hub:
        conn = await register(hub)
        token = hub.add_client("vera", "consumer", "viewer")
        async with (
            hub.session(token) as viewer,
            stream(viewer, url(LAMP, "properties", "on")) as one,
            stream(viewer, url(LAMP, "events")) as other,
        ):
            await report(hub, conn, "on", True)
            assert (await one.next())["data"] is True
            started = time.monotonic()
            async with asyncio.timeout(5):
                await hub.stop()
            assert time.monotonic() - started < 5
            for events in (one, other):
                with pytest.raises((EOFError, aiohttp.ClientPayloadError)):
                    await events.next(timeout=5)
