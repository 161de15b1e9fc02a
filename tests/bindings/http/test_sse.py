"""Notifications over the WoT HTTP SSE profile: observeproperty, observeallproperties,
subscribeevent, subscribeallevents; resuming with Last-Event-ID; refusals before the
stream starts; HEAD; streams end when the hub stops. Real aiohttp clients over HTTPS;
the device is a WebSocket agent (``running.device``)."""

import asyncio
import time

import aiohttp
import pytest

from tests.support.devices import emit, register, report
from tests.support.http import STREAM, url
from tests.support.problems import problem_of
from tests.support.running import started_hub
from tests.support.sse import stream
from tests.support.tds import SLASHED_LAMP as LAMP
from tests.support.tds import http_lamp_td
from tests.waiting import until

pytestmark = pytest.mark.timeout(60)


def seq_of(event_id, epoch):
    prefix, _, seq = event_id.rpartition("-")
    assert prefix == epoch, event_id
    return int(seq)


# -- streams ------------------------------------------------------------------------------


async def test_observeproperty_streams_reported_values(running, viewer):
    conn = await register(running, td=http_lamp_td())
    epoch = running.hub.router.log.epoch
    async with stream(viewer, url(LAMP, "properties", "brightness")) as events:
        assert events.response.headers["Cache-Control"] == "no-store"
        await report(conn, "brightness", 40)
        await report(conn, "on", True)  # another property: not on this stream
        await report(conn, "brightness", 41)
        first, second = await events.take(2)
        assert [(e["event"], e["data"]) for e in (first, second)] == [
            ("brightness", 40),
            ("brightness", 41),
        ]
        assert seq_of(first["id"], epoch) < seq_of(second["id"], epoch)
        await events.nothing_more(conn)


async def test_observeallproperties_names_each_property(running, viewer):
    conn = await register(running, td=http_lamp_td())
    other = await register(running, "fan-agent", http_lamp_td("urn:dev:ops:fan-1"))
    async with stream(viewer, url(LAMP, "properties")) as events:
        await report(conn, "on", True)
        await report(other, "on", False, "urn:dev:ops:fan-1")  # another Thing
        await report(conn, "brightness", 7)
        got = [(e["event"], e["data"]) for e in await events.take(2)]
        assert got == [("on", True), ("brightness", 7)]
        await events.nothing_more(conn)


async def test_subscribeevent_and_subscribeallevents(running, viewer):
    conn = await register(running, td=http_lamp_td())
    async with (
        stream(viewer, url(LAMP, "events", "overheated")) as one,
        stream(viewer, url(LAMP, "events")) as every,
    ):
        await emit(conn, "overheated", 81.5)
        await emit(conn, "clicked")  # an event without data
        await report(conn, "on", True)  # a property: on neither stream
        event = await one.next()
        assert (event["event"], event["data"]) == ("overheated", 81.5)
        assert [(e["event"], e["data"]) for e in await every.take(2)] == [
            ("overheated", 81.5),
            ("clicked", None),
        ]
        await emit(conn, "overheated", 99.5)  # the marker: next on both streams
        await one.next_is(99.5)
        await every.next_is(99.5)


# -- resuming -----------------------------------------------------------------------------


async def test_resume_with_last_event_id_loses_and_repeats_nothing(running, viewer):
    conn = await register(running, td=http_lamp_td())
    path = url(LAMP, "properties", "brightness")
    async with stream(viewer, path) as events:
        for level in (1, 2, 3):
            await report(conn, "brightness", level)
        seen = await events.take(3)
    assert [e["data"] for e in seen] == [1, 2, 3]
    await until(lambda: not running.hub.http.context.streams)  # the hub noticed it is gone

    for level in (4, 5, 6, 7, 8):  # while disconnected
        await report(conn, "brightness", level)
        await report(conn, "on", level % 2 == 0)  # not on this stream

    async with stream(viewer, path, last_event_id=seen[-1]["id"]) as events:
        missed = await events.take(5)
        await report(conn, "brightness", 9)
        live = await events.next()
        await events.nothing_more(conn)
    assert [e["data"] for e in missed] == [4, 5, 6, 7, 8]
    assert live["data"] == 9
    ids = [e["id"] for e in seen + missed + [live]]
    epoch = running.hub.router.log.epoch
    seqs = [seq_of(i, epoch) for i in ids]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


async def test_a_stream_opens_with_a_comment_and_every_event_has_data(running, viewer):
    # The reader is strict: an id-only or data-less block fails it, as it fails the
    # SSE clients that decode each block as JSON.
    conn = await register(running, td=http_lamp_td())
    path = url(LAMP, "properties", "brightness")
    async with stream(viewer, path) as events:
        await report(conn, "brightness", 1)
        first = await events.next()
        assert events.comments[:1] == ["stream open"]
    assert first["data"] == 1 and first["id"] == events.last_id
    await report(conn, "brightness", 2)
    async with stream(viewer, path, last_event_id=first["id"]) as events:
        resumed = await events.next()
        assert resumed["data"] == 2 and resumed["id"] != first["id"]
        await events.nothing_more(conn)


async def test_last_event_id_from_another_run_asks_for_a_resync(running, viewer):
    conn = await register(running, td=http_lamp_td())
    await report(conn, "brightness", 1)
    path = url(LAMP, "properties", "brightness")
    for stale in ("0badbeef-3", "not an id", f"{running.hub.router.log.epoch}-999999"):
        async with stream(viewer, path, last_event_id=stale) as events:
            resync = await events.next()
            assert resync["event"] == "resync", (stale, resync)
            assert resync["id"] is None and resync["data"]["detail"]
            await report(conn, "brightness", 2)
            event = await events.next()
            assert (event["event"], event["data"]) == ("brightness", 2)


async def test_last_event_id_older_than_the_log_asks_for_a_resync(tmp_path):
    async with started_hub(tmp_path / "home", notification_log_size=4) as hub:
        conn = await register(hub, td=http_lamp_td())
        token = hub.add_client("vera", "consumer", "viewer")
        path = url(LAMP, "properties", "brightness")
        async with hub.session(token) as viewer:
            async with stream(viewer, path) as events:
                await report(conn, "brightness", 1)
                last = await events.next()
            for level in range(2, 12):  # more than the log keeps
                await report(conn, "brightness", level)
            async with stream(viewer, path, last_event_id=last["id"]) as events:
                assert (await events.next())["event"] == "resync"
                await report(conn, "brightness", 50)
                assert (await events.next())["data"] == 50


# -- refusals -------------------------------------------------------------------------------


async def test_a_viewer_observes_but_an_agent_may_not_observe_another_agents_thing(running, viewer):
    conn = await register(running, td=http_lamp_td())
    async with stream(viewer, url(LAMP, "properties", "on")) as events:
        await report(conn, "on", True)
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
    await register(running, td=http_lamp_td())
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
    await register(running, td=http_lamp_td())
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


async def test_streams_end_when_the_hub_stops(tmp_path):
    async with started_hub(tmp_path / "home") as hub:
        conn = await register(hub, td=http_lamp_td())
        token = hub.add_client("vera", "consumer", "viewer")
        async with (
            hub.session(token) as viewer,
            stream(viewer, url(LAMP, "properties", "on")) as one,
            stream(viewer, url(LAMP, "events")) as other,
        ):
            await report(conn, "on", True)
            assert (await one.next())["data"] is True
            started = time.monotonic()
            async with asyncio.timeout(5):
                await hub.stop()
            assert time.monotonic() - started < 5
            for events in (one, other):
                with pytest.raises((EOFError, aiohttp.ClientPayloadError)):
                    await events.next(timeout=5)
