"""docs/operations.md, Limits, over MQTT: a client over ``max_connections_per_client``
gets a 429 error response on its response topic (and is logged); a request over
``max_requests_per_second`` is answered with an error response naming the limit, on the
client's response topic."""

from __future__ import annotations

import logging

import orjson
import pytest

from tests.support.mqtt import Paho
from tests.support.running import PASSWORD
from tests.support.tds import SIGN, sign_td
from tests.support.ws import socket

pytestmark = pytest.mark.timeout(60)

RESPONSES = "wot/client/vera/resp"


def paho(running, mqtt_id: str) -> Paho:
    return Paho(
        running.hub.mqtt.port,
        running.hub.ca.ca_cert_pem,
        mqtt_id,
        username="vera",
        password=PASSWORD,
    )


@pytest.fixture
def clients():
    opened: list[Paho] = []
    yield opened
    for client in opened:
        client.close()


@pytest.mark.parametrize("hub_options", [{"mqtt_enabled": True, "max_connections_per_client": 1}])
async def test_a_client_over_the_connection_limit_gets_a_429_and_is_logged(
    running, clients, caplog
):
    """All of a client's MQTT (and NATS) connections count as one (nats-server is the
    broker); its connections on the other bindings count too."""
    running.add_thing("sign-agent", sign_td())
    token = running.add_client("vera", "consumer", "viewer")
    vera = paho(running, "vera/1")
    clients.append(vera)
    request = {"messageType": "request", "operation": "readthing", "thingID": SIGN}
    async with socket(running, token):  # vera's one connection
        with caplog.at_level(logging.WARNING, "wothub.nats"):
            assert await vera.connect() == 0  # the login was right
            assert await vera.subscribe(RESPONSES) == 1
            vera.publish("wot/client/vera/req", {**request, "correlationID": "over"})
            _, payload, _ = await vera.next(RESPONSES)
        problem = orjson.loads(payload)["error"]
        assert problem["status"] == 429 and problem["limit"] == "max_connections_per_client"
        assert "NATS client vera refused" in caplog.text
    # The WebSocket closed: MQTT is within the limit again.
    vera.publish("wot/client/vera/req", {**request, "correlationID": "ok"})
    _, payload, _ = await vera.next(RESPONSES)
    assert orjson.loads(payload).get("error") is None
    assert not vera.disconnected.is_set()


@pytest.mark.parametrize(
    "hub_options",
    [{"mqtt_enabled": True, "max_requests_per_second": 1.0, "request_burst": 2}],
)
async def test_a_request_over_the_rate_gets_an_error_response(running, clients):
    running.add_thing("sign-agent", sign_td())
    running.add_client("vera", "consumer", "viewer")
    vera = paho(running, "vera")
    clients.append(vera)
    assert await vera.connect() == 0
    assert await vera.subscribe(RESPONSES) == 1
    request = {"messageType": "request", "operation": "readthing", "thingID": SIGN}
    for n in range(4):  # bounded: a burst of two, then refusals
        vera.publish("wot/client/vera/req", {**request, "correlationID": f"r{n}"})
    answers = {}
    while len(answers) < 4:
        _, payload, _ = await vera.next(RESPONSES)
        answer = orjson.loads(payload)
        answers[answer["correlationID"]] = answer
    # The SUBSCRIBE took a token too: the first request is served, the last refused.
    assert answers["r0"].get("error") is None
    refusal = answers["r3"]["error"]
    assert refusal["status"] == 429 and refusal["limit"] == "max_requests_per_second"
    assert refusal["retryAfter"] >= 1
