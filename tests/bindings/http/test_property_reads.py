"""Plain property reads are answered in front of Starlette (bindings/http/property_reads.py):
the same answers as the full application gives, and every guarantee kept: credentials
checked on every request (a token refused at once after logout or when its client is
disabled, even though it was just admitted), authorization per Thing, problem details.
Real aiohttp clients over HTTPS against a real hub."""

import pytest

from bindings.http.app import HttpBinding
from bindings.http.property_reads import PropertyReads
from tests.support.devices import register, report
from tests.support.http import url
from tests.support.metrics import scrape, value
from tests.support.problems import problem_of
from tests.support.tds import SLASHED_LAMP as LAMP
from tests.support.tds import http_lamp_td

pytestmark = pytest.mark.timeout(60)

BRIGHTNESS = url(LAMP, "properties", "brightness")


async def reported(running, value=40):
    device = await register(running, td=http_lamp_td())
    await report(device, "brightness", value)
    return device


async def answer(session, path, **kwargs):
    async with session.get(path, **kwargs) as response:
        return response.status, response.content_type, await response.read(), response.headers


async def test_a_plain_read_is_answered_as_the_application_answers_it(running, viewer):
    await reported(running)
    fast = await answer(viewer, BRIGHTNESS)
    # A query sends the same read through Starlette's route (ThingsApi.property).
    routed = await answer(viewer, BRIGHTNESS, params={"unused": "1"})
    assert fast[:3] == routed[:3] == (200, "application/json", b"40")
    assert fast[3]["Last-Modified-Time"] == routed[3]["Last-Modified-Time"]
    assert fast[3]["Content-Length"] == "2"


async def test_the_fast_read_is_the_route_the_application_would_take(running):
    """No route before the property route answers GET /things/{id}/properties/{name}:
    otherwise PropertyReads would answer what the application answers differently."""
    app = running.hub.http.app().app  # the Starlette application behind PropertyReads
    scope = {"type": "http", "method": "GET", "path": "/things/urn:x/properties/on"}
    matching = [route for route in app.routes if route.matches(scope)[0].name == "FULL"]
    assert matching[0].endpoint == running.hub.http.things.property
    assert isinstance(running.hub.http, HttpBinding)


async def test_without_credentials_401_is_a_problem_and_counted(running):
    await reported(running)
    before = await scrape(running)
    async with running.session() as anonymous, anonymous.get(BRIGHTNESS) as response:
        await problem_of(response, 401)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    after = await scrape(running)
    refused = {"status": "401", "reason": "unauthorized"}
    name = "wothub_refused_total"
    assert value(after, name, **refused) - value(before, name, **refused) == 1


async def test_a_logged_out_token_is_refused_at_once(running):
    await reported(running)
    token = running.add_client("lou", "consumer", "viewer")
    async with running.session(token) as session:
        assert (await answer(session, BRIGHTNESS))[0] == 200  # admitted, and remembered
        async with session.post("/authn/logout") as response:
            assert response.status in (200, 204)
        async with session.get(BRIGHTNESS) as response:
            await problem_of(response, 401)


async def test_a_disabled_client_is_refused_at_once(running):
    await reported(running)
    token = running.add_client("dee", "consumer", "viewer")
    async with running.session(token) as session:
        assert (await answer(session, BRIGHTNESS))[0] == 200
        running.hub.auth.update_client("dee", enabled=False)
        async with session.get(BRIGHTNESS) as response:
            await problem_of(response, 401)


async def test_an_agent_is_refused_another_agents_thing(running):
    await reported(running)
    other = running.add_client("other-agent", "agent", "agent")
    async with running.session(other) as session, session.get(BRIGHTNESS) as response:
        await problem_of(response, 403)


async def test_refusals_are_problems(running, viewer):
    device = await register(running, td=http_lamp_td())
    await report(device, "on", True)
    async with viewer.get(BRIGHTNESS) as response:  # never reported
        assert "brightness" in (await problem_of(response, 503))["detail"]
    async with viewer.get(url(LAMP, "properties", "colour")) as response:
        await problem_of(response, 404)
    async with viewer.get(url("urn:dev:ops:nothing", "properties", "on")) as response:
        await problem_of(response, 404)
    async with viewer.get("/things/%FF/properties/on") as response:  # not UTF-8
        await problem_of(response, 400)


async def test_a_read_with_a_body_still_meets_the_size_limit(running, viewer):
    await reported(running)
    too_large = b"x" * (running.hub.http.max_body_bytes + 1)
    async with viewer.get(BRIGHTNESS, data=too_large) as response:
        await problem_of(response, 413)


async def test_only_plain_reads_skip_the_application(running):
    """Which requests PropertyReads answers itself, with the hub's own ThingsApi; the rest
    reach the application behind it (here one that records them)."""
    await reported(running)
    token = running.add_client("ria", "consumer", "viewer")
    passed_on = []

    async def application(scope, receive, send):
        passed_on.append(scope)

    reads = PropertyReads(application, running.hub.http.things)
    path = BRIGHTNESS.encode()

    async def call(method="GET", raw_path=path, query=b"", headers=()):
        scope = {
            "type": "http",
            "method": method,
            "path": raw_path.decode(),
            "raw_path": raw_path,
            "query_string": query,
            "headers": [(b"authorization", f"Bearer {token}".encode()), *headers],
            "client": ("127.0.0.1", 50000),
            "extensions": {},
        }
        sent = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            sent.append(message)

        before = len(passed_on)
        await reads(scope, receive, send)
        return None if len(passed_on) > before else sent[0]["status"]

    assert await call() == 200
    assert passed_on == []
    for passed in (
        {"method": "HEAD"},
        {"method": "PUT"},
        {"query": b"detail=true"},
        {"headers": [(b"accept", b"text/event-stream")]},
        {"headers": [(b"content-length", b"2")]},
        {"raw_path": path + b"/more"},
        {"raw_path": b"/things//properties/on"},
        {"raw_path": b"/things/x/actions/on"},
    ):
        assert await call(**passed) is None, passed
