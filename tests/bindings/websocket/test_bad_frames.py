"""Frames the WebSocket endpoint refuses: each bad frame gets an error response naming
the problem (and the field), a client that keeps sending them is closed with 1008, and
the hub keeps serving everyone else. A hub with a small ``max_body_bytes`` (4 KiB) shows
the size limits: over it an error 413, over twice it the server closes with 1009."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl

import aiohttp
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bucketstore import open_store
from hub.runtime import Hub
from tests.support.running import hub_config

pytestmark = pytest.mark.timeout(60)

LIMIT = 4096
PASSWORD = "correct horse battery"
LAMP = "urn:dev:ops:32473-lamp-1"
TD = {
    "@context": "https://www.w3.org/2022/wot/td/v1.1",
    "id": LAMP,
    "title": "Lamp",
    "securityDefinitions": {"nosec_sc": {"scheme": "nosec"}},
    "security": "nosec_sc",
    "properties": {"on": {"type": "boolean", "forms": [{"href": "https://lamp.local/on"}]}},
}


class SmallHub:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.url = hub.http_server.url.replace("https://", "wss://") + "/ws"
        self.ssl = ssl.create_default_context(cadata=hub.ca.ca_cert_pem.decode())

    def token(self, client_id: str, kind: str = "consumer", role: str = "viewer") -> str:
        self.hub.auth.add_client(client_id, kind, role, password=PASSWORD)
        return self.hub.auth.new_token(client_id)["token"]

    def connect(self, token: str, **kwargs):
        return connect(
            self.url,
            ssl=self.ssl,
            additional_headers={"Authorization": f"Bearer {token}"},
            subprotocols=["webthingprotocol"],
            open_timeout=10,
            max_size=None,
            **kwargs,
        )


@pytest.fixture
async def small(tmp_path):
    """A hub as tests/support/running.py builds it (loopback, free ports, no bus
    bindings), with max_body_bytes = 4 KiB."""
    config = hub_config(tmp_path / "home", max_body_bytes=LIMIT)
    config.home.mkdir(mode=0o700)
    store = open_store(config.store_path, "leveldb")
    hub = Hub(config, store)
    await hub.start()
    try:
        yield SmallHub(hub)
    finally:
        await hub.stop()
        store.close()


async def receive(ws, timeout: float = 5.0) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


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


async def test_each_bad_frame_gets_an_error_naming_the_field(small):
    token = small.token("vera")
    async with small.connect(token) as ws:
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


async def test_size_limits(small):
    token = small.token("vera")
    async with small.connect(token) as ws:
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


async def test_repeated_abuse_is_closed_with_1008_and_others_are_served(small):
    agent_token = small.token("lamp-agent", "agent", "agent")
    viewer_token = small.token("vera")
    abuser_token = small.token("mallory")
    async with (
        small.connect(agent_token) as agent,
        small.connect(viewer_token) as viewer,
        small.connect(abuser_token) as abuser,
    ):
        await agent.send(
            json.dumps(
                {"messageType": "request", "operation": "updatething", "correlationID": "r",
                 "input": TD}
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
            small.url,
            ssl=small.ssl,
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
    small, field, value, described
):
    token = small.token("lamp-agent", "agent", "agent")
    report = {
        "messageType": "notification",
        "operation": "observeproperty",
        "thingID": LAMP,
        "name": "on",
        "value": True,
    }
    async with small.connect(token) as ws:
        register = {"messageType": "request", "operation": "updatething", "input": TD}
        await ws.send(json.dumps({**register, "correlationID": "td"}))
        assert (await receive(ws))["output"]["id"] == LAMP

        error = (await refused(ws, json.dumps({**report, field: value})))["error"]
        assert error["status"] == 400
        assert error["validationErrors"] == [
            {"field": field, "description": f"must be a string, not {described}"}
        ]

        # A TD whose id is a number: refused by the hub, not a crash.
        numeric = {**register, "input": {**TD, "id": 123}, "correlationID": "bad-td"}
        bad_td = await refused(ws, json.dumps(numeric))
        assert bad_td["correlationID"] == "bad-td"
        assert "id must be a string" in bad_td["error"]["detail"]

        await ws.send(json.dumps(report))  # still served
        await ws.send(json.dumps({**register, "correlationID": "again"}))
        assert (await receive(ws))["correlationID"] == "again"
    assert small.hub.twin.read_property(LAMP, "on").get("value") is True
