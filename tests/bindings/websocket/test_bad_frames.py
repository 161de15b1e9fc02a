"""Frames the WebSocket endpoint refuses: each bad frame gets an error response naming
the problem (and the field), a client that keeps sending them is closed with 1008, and
the hub keeps serving everyone else. A hub with a small ``max_body_bytes`` (4 KiB) shows
the size limits: over it an error 413, over twice it the server closes with 1009."""

from __future__ import annotations

import asyncio
import contextlib
import json

import aiohttp
import pytest
from websockets.exceptions import ConnectionClosed

from tests.support.tds import LAMP, lamp_td
from tests.support.ws import receive, socket, ws_url

pytestmark = pytest.mark.timeout(60)

LIMIT = 4096


@pytest.fixture
def hub_options() -> dict:
    return {"max_body_bytes": LIMIT}


def raw_socket(running, token: str):
    """A raw connection that takes frames of any size (the hub's limits are tested)."""
    return socket(running, token, max_size=None)


async def refused(ws, frame: str | bytes) -> dict:
    """Send a bad frame; its error response (checked to be one)."""
    await ws.send(frame)
    response = await receive(ws)
    assert response["messageType"] == "response", response
    assert response["status"] == "failed", response
    error = response["error"]
    assert error["type"] == "about:blank" and error["title"] and error["detail"]
    return response


def request(**fields) -> str:
    return json.dumps({"messageType": "request", "operation": "readproperty", **fields})


async def test_each_bad_frame_gets_an_error_naming_the_field(running):
    token = running.add_client("vera")
    async with raw_socket(running, token) as ws:
        cases = [
            # (frame, field named in validationErrors, words in the detail)
            ("{not json", "(root)", "not valid JSON"),
            ("[1, 2]", "(root)", "JSON object"),
            (
                json.dumps({"messageType": "shout", "operation": "readproperty"}),
                "messageType",
                "'shout'",
            ),
            (json.dumps({"messageType": "request"}), "operation", "required"),
            (
                request(thingID=LAMP, name="on", colour="red"),
                "colour",
                "not a field of the message envelope",
            ),
            (request(thingID=5, name="on"), "thingID", "must be a string"),
            (request(name="on"), "thingID", "required"),
            (request(thingID=LAMP), "name", "required"),
            (request(thingID=LAMP, name="on", status="maybe"), "status", "'maybe'"),
            (request(thingID=LAMP, name="on", ttl=-1), "ttl", "positive"),
            (request(thingID=LAMP, name="on", timestamp="yesterday"), "timestamp", "RFC 3339"),
            (
                json.dumps({"messageType": "request", "operation": "dance", "thingID": LAMP}),
                "operation",
                "unknown operation 'dance'",
            ),
        ]
        for frame, field, words in cases:
            error = (await refused(ws, frame))["error"]
            assert error["status"] == 400, (frame, error)
            assert error["validationErrors"][0]["field"] == field, (frame, error)
            assert words in error["detail"], (frame, error)

        # When the bad message has a correlationID (or a messageID), the error carries it.
        tagged = await refused(
            ws,
            json.dumps({"messageType": "request", "operation": "dance", "correlationID": "c-42"}),
        )
        assert tagged["correlationID"] == "c-42"
        by_message = await refused(
            ws, json.dumps({"messageType": "notification", "messageID": "m-7", "x": 1})
        )
        assert by_message["correlationID"] == "m-7"

        # A well-formed message the hub does not take: refused by the router, 400.
        not_taken = await refused(
            ws,
            json.dumps({"messageType": "request", "operation": "updatepresence", "thingID": LAMP}),
        )
        assert not_taken["error"]["status"] == 400
        assert "not a request the hub takes" in not_taken["error"]["detail"]

        # Binary frames are refused.
        binary = await refused(ws, b'{"messageType": "request"}')
        assert binary["error"]["status"] == 400
        assert "binary" in binary["error"]["detail"]

        # Still served: 16 bad frames are under the limit of 20 in 10 s.
        await ws.send(request(thingID=LAMP, name="on", correlationID="ok"))
        fine = await receive(ws)
        assert fine["correlationID"] == "ok"
        assert fine["error"]["status"] == 404  # no such Thing, but a real answer


async def test_size_limits(running):
    token = running.add_client("vera")
    async with raw_socket(running, token) as ws:
        big = request(thingID=LAMP, name="on", input="x" * (LIMIT + 100))
        assert LIMIT < len(big) <= 2 * LIMIT
        error = (await refused(ws, big))["error"]
        assert error["status"] == 413 and error["title"] == "Content Too Large"
        assert str(LIMIT) in error["detail"]
        await ws.send(request(thingID=LAMP, name="on", correlationID="after"))
        assert (await receive(ws))["correlationID"] == "after"

        # Beyond twice the limit the server does not read the frame: close 1009.
        await ws.send("x" * (2 * LIMIT + 1))
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1009


async def test_repeated_abuse_is_closed_with_1008_and_others_are_served(running):
    agent_token = running.add_client("lamp-agent", "agent", "agent")
    viewer_token = running.add_client("vera")
    abuser_token = running.add_client("mallory")
    async with (
        raw_socket(running, agent_token) as agent,
        raw_socket(running, viewer_token) as viewer,
        raw_socket(running, abuser_token) as abuser,
    ):
        await agent.send(
            json.dumps(
                {"messageType": "request", "operation": "updatething", "correlationID": "r",
                 "input": lamp_td()}
            )
        )  # fmt: skip
        assert (await receive(agent))["output"]["created"] is True
        await viewer.send(json.dumps(
            {"messageType": "request", "operation": "observeproperty", "thingID": LAMP,
             "name": "on", "correlationID": "o"}
        ))  # fmt: skip
        assert (await receive(viewer))["status"] == "completed"

        with contextlib.suppress(ConnectionClosed):  # the hub may close before the last
            for _ in range(25):
                await abuser.send("garbage")
        errors = 0
        with pytest.raises(ConnectionClosed):
            while True:
                message = await receive(abuser)
                assert message["error"]["status"] == 400
                errors += 1
        assert errors == 21  # every bad frame up to the limit was answered
        assert abuser.close_code == 1008
        assert abuser.close_reason == "too many bad messages"

        # Everyone else is served as before.
        await agent.send(json.dumps(
            {"messageType": "notification", "operation": "observeproperty", "thingID": LAMP,
             "name": "on", "value": True}
        ))  # fmt: skip
        note = await receive(viewer)
        assert (note["operation"], note["value"]) == ("observeproperty", True)
        await viewer.send(request(thingID=LAMP, name="on", correlationID="r2"))
        assert (await receive(viewer))["output"] is True

    # And a new connection of the same client is welcome.
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            ws_url(running),
            ssl=running.ssl,
            headers={"Authorization": f"Bearer {abuser_token}"},
            protocols=("webthingprotocol",),
        ) as again,
    ):
        await again.send_str(request(thingID=LAMP, name="on", correlationID="r3"))
        reply = json.loads((await again.receive(timeout=5)).data)
        assert reply["output"] is True


@pytest.mark.parametrize(
    ("field", "value", "described"),
    [
        ("thingID", 123, "a number"),
        ("name", 7, "a number"),
        ("operation", 5, "a number"),
        ("correlationID", 42, "a number"),
        ("messageType", [], "an array"),
    ],
)
async def test_a_wrong_typed_field_is_answered_400_and_the_agent_is_served(
    running, field, value, described
):
    token = running.add_client("lamp-agent", "agent", "agent")
    report = {
        "messageType": "notification",
        "operation": "observeproperty",
        "thingID": LAMP,
        "name": "on",
        "value": True,
    }
    async with raw_socket(running, token) as ws:
        register = {"messageType": "request", "operation": "updatething", "input": lamp_td()}
        await ws.send(json.dumps({**register, "correlationID": "td"}))
        assert (await receive(ws))["output"]["id"] == LAMP

        error = (await refused(ws, json.dumps({**report, field: value})))["error"]
        assert error["status"] == 400
        assert error["validationErrors"] == [
            {"field": field, "description": f"must be a string, not {described}"}
        ]

        # A lamp_td() whose id is a number: refused by the hub, not a crash.
        numeric = {**register, "input": {**lamp_td(), "id": 123}, "correlationID": "bad-td"}
        bad_td = await refused(ws, json.dumps(numeric))
        assert bad_td["correlationID"] == "bad-td"
        assert "id must be a string" in bad_td["error"]["detail"]

        await ws.send(json.dumps(report))  # still served
        await ws.send(json.dumps({**register, "correlationID": "again"}))
        assert (await receive(ws))["correlationID"] == "again"
    assert running.hub.twin.read_property(LAMP, "on").get("value") is True
