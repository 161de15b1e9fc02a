"""The state document on NATS: ``readstate`` on the consumer's request subject, which
the auth callout grants every role that may read Things (docs/messages.md), and its
changes on ``wot.twin.{thing}.state.{name}`` and to an ``observestate`` request."""

from __future__ import annotations

import asyncio

import pytest

from bindings.nats import subjects
from clients.errors import HubError
from tests.bindings.nats.conftest import LAMP, Watched, td
from tests.waiting import until

pytestmark = pytest.mark.timeout(60)

REFUSED = {"type": "about:blank", "title": "Unprocessable", "status": 422, "detail": "too bright"}


async def test_a_viewer_reads_the_state_over_nats(nats_hub):
    agent = await nats_hub.agent("lamp-agent")
    await agent.register(td())
    await agent.report_property(LAMP, "brightness", 7)
    await until(lambda: nats_hub.hub.twin.read_property(LAMP, "brightness").get("value") == 7)
    await agent.close()
    manager = await nats_hub.consumer("mia", "manager")
    await manager.request("writeproperty", LAMP, "brightness", input=40)

    viewer = await nats_hub.consumer("vera")
    state = (await viewer.request("readstate", LAMP))["output"]
    brightness = state["properties"]["brightness"]
    assert brightness["reported"]["value"] == 7 and brightness["desired"]["value"] == 40
    assert brightness["desired"]["senderID"] == "mia" and state["delta"] == {"brightness": 40}
    with pytest.raises(HubError) as refused:
        await viewer.request("readstate", "urn:dev:ops:nothing")
    assert refused.value.status == 404


async def test_state_changes_on_the_twin_subject_and_to_an_observestate_request(nats_hub):
    """A viewer follows the state on ``wot.twin.{thing}.state.*`` (the twin TD's state
    link says where) and with an ``observestate`` request (notifications on its
    responses subject); an agent may do neither for a Thing not its own."""
    agent = await nats_hub.agent("lamp-agent")
    await agent.register(td())
    viewer = await nats_hub.consumer("vera")
    (link,) = [
        link
        for link in (await viewer.read_thing(LAMP))["links"]
        if link["rel"] == "state" and "nats:subject" in link
    ]
    assert link["nats:subject"] == f"wot.twin.{subjects.encode(LAMP)}.state.*"
    on_subject: list[dict] = []
    await viewer.observe(LAMP, on_subject.append, kind="state")
    await viewer.request("observestate", LAMP)
    await viewer.flush()

    manager = await nats_hub.consumer("mia", "manager")
    written = await manager.request("writeproperty", LAMP, "brightness", input=95)
    request = await asyncio.wait_for(agent.requests.get(), 5)
    await agent.answer(request, status="failed", error=REFUSED)

    await until(lambda: len(on_subject) == 2)
    assert [(n["operation"], n["name"]) for n in on_subject] == [("observestate", "brightness")] * 2
    queued, declined = (n["value"] for n in on_subject)
    assert queued["desired"]["value"] == 95 and queued["desired"]["senderID"] == "mia"
    assert "desired" not in declined and declined["declined"]["id"] == written["actionID"]
    assert declined["declined"]["error"]["detail"] == "too bright"

    on_responses: list[dict] = []

    def drained() -> list[dict]:
        while not viewer.responses.empty():
            on_responses.append(viewer.responses.get_nowait())
        return [r for r in on_responses if r.get("operation") == "observestate"]

    await until(lambda: len(drained()) == 2)
    assert [n["value"] for n in drained()] == [queued, declined]

    nats_hub.add("fan-agent", "agent", "agent")
    stranger = await Watched.connect(nats_hub, "fan-agent", allow_reconnect=False)
    try:
        asked = [
            ("subscribe", f"wot.twin.{subjects.encode(LAMP)}.state.*"),
            ("publish", "wot.client.fan-agent.req.observestate"),
        ]
        assert await stranger.refusals(asked) == set(asked)
    finally:
        await stranger.close()
