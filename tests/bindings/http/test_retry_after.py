"""docs/operations.md, Limits: each 429 says how long to wait, in the problem's
``retryAfter`` and the ``Retry-After`` header alike: 60 s for a new Thing over
``max_things_per_agent``, 30 s for an action over ``max_queued_actions``, the time until
the client's token bucket has a token for ``max_requests_per_second``, and 5 s for a
stream over ``max_connections_per_client``."""

from __future__ import annotations

import pytest

from tests.support.http import ASYNC
from tests.support.tds import SIGN, sign_td

pytestmark = pytest.mark.timeout(60)


async def retry_after(response, limit: str) -> int:
    """The wait a 429 names; the header and the problem must agree."""
    assert response.status == 429, await response.text()
    problem = await response.json()
    assert problem["limit"] == limit, problem
    assert int(response.headers["Retry-After"]) == problem["retryAfter"]
    return problem["retryAfter"]


@pytest.mark.parametrize("hub_options", [{"max_things_per_agent": 1}])
async def test_one_thing_too_many_waits_60_s(running):
    token = running.add_client("sign-agent", "agent", "agent")
    async with running.session(token) as agent:
        async with agent.put("/things/urn:s:1", json=sign_td("urn:s:1")) as ok:
            assert ok.status == 201
        async with agent.put("/things/urn:s:2", json=sign_td("urn:s:2")) as refused:
            assert await retry_after(refused, "max_things_per_agent") == 60


@pytest.mark.parametrize("hub_options", [{"max_queued_actions": 1}])
async def test_one_queued_action_too_many_waits_30_s(running):
    running.add_thing("sign-agent", sign_td())  # offline: the action stays queued
    token = running.add_client("otto", "consumer", "operator")
    async with running.session(token) as consumer:
        url = f"/things/{SIGN}/actions/say"
        async with consumer.post(url, json="hi", headers=ASYNC) as accepted:
            assert accepted.status == 201
        async with consumer.post(url, json="hi", headers=ASYNC) as refused:
            assert await retry_after(refused, "max_queued_actions") == 30


# One token every 4 s, a bucket of one: the second request waits for the next token.
@pytest.mark.parametrize("hub_options", [{"max_requests_per_second": 0.25, "request_burst": 1}])
async def test_a_request_over_the_rate_waits_for_the_next_token(running):
    running.add_thing("sign-agent", sign_td())
    token = running.add_client("vic", "consumer", "viewer")
    async with running.session(token) as consumer:
        async with consumer.get(f"/things/{SIGN}") as ok:
            assert ok.status == 200
        async with consumer.get(f"/things/{SIGN}") as refused:
            assert await retry_after(refused, "max_requests_per_second") == 4


@pytest.mark.parametrize("hub_options", [{"max_connections_per_client": 1}])
async def test_one_stream_too_many_waits_5_s(running):
    running.add_thing("sign-agent", sign_td())
    token = running.add_client("vic", "consumer", "viewer")
    stream = {"Accept": "text/event-stream"}
    url = f"/things/{SIGN}/events/said"
    async with running.session(token) as first, first.get(url, headers=stream) as opened:
        assert opened.status == 200
        async with running.session(token) as second, second.get(url, headers=stream) as refused:
            assert await retry_after(refused, "max_connections_per_client") == 5
