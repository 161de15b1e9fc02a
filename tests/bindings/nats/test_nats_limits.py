"""docs/operations.md, Limits, over NATS: a request over ``max_requests_per_second`` is
answered with an error response naming the limit; a client over
``max_connections_per_client`` is refused (and logged). All of a client's NATS
connections count as one; its connections on the other bindings count too."""

from __future__ import annotations

import logging

import pytest

from clients.nats import HubError
from tests.support.tds import SIGN, sign_td
from tests.support.ws import socket

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    "hub_options", [{"nats_enabled": True, "max_requests_per_second": 1.0, "request_burst": 2}]
)
async def test_a_request_over_the_rate_gets_an_error_response(running, nats_hub):
    running.add_thing("sign-agent", sign_td())
    vera = await nats_hub.consumer("vera")
    assert (await vera.read_thing(SIGN))["id"] == SIGN
    refusals = []
    for _ in range(3):  # bounded: the burst is two
        try:
            await vera.read_thing(SIGN)
        except HubError as refused:
            refusals.append(refused)
    assert refusals, "no request was refused"
    problem = refusals[0].problem
    assert problem["status"] == 429 and problem["limit"] == "max_requests_per_second"
    assert problem["retryAfter"] >= 1


@pytest.mark.parametrize("hub_options", [{"nats_enabled": True, "max_connections_per_client": 1}])
async def test_a_client_over_the_connection_limit_is_refused(running, nats_hub, caplog):
    running.add_thing("sign-agent", sign_td())
    token = running.add_client("vera", "consumer", "viewer")
    second = await nats_hub.consumer("vera")  # logs in; counted once it sends something
    async with socket(running, token):  # vera's one connection
        with caplog.at_level(logging.WARNING, "wothub.nats"), pytest.raises(HubError) as refused:
            await second.read_thing(SIGN)
        problem = refused.value.problem
        assert problem["status"] == 429 and problem["limit"] == "max_connections_per_client"
        assert "NATS client vera refused" in caplog.text
    # The WebSocket closed: NATS is within the limit again.
    assert (await second.read_thing(SIGN))["id"] == SIGN
