"""Actions over the WoT HTTP Basic profile: invoke (200 / 204 when the device answers in
time, 504 or 201 + Location otherwise, Prefer: respond-async / wait=N), queryaction,
cancelaction, queryallactions, the offline queue, and the hub's own Things. Real aiohttp
clients over HTTPS; the device is a WebSocket agent (``running.device``)."""

import asyncio
import time

import pytest

from tests.support import tds
from tests.support.devices import AGENT, answer, emit, register
from tests.support.http import norm, url
from tests.support.problems import problem_of
from tests.support.sse import SseReader
from tests.support.tds import SLASHED_LAMP as LAMP
from tests.waiting import until
from vocabulary import clock
from vocabulary.envelope import new_id

pytestmark = pytest.mark.timeout(60)

JSON = "application/json"
PROFILE_STATUSES = {"pending", "running", "completed", "failed"}
# A client of the async profile: the status (201) when the device has not finished in 1 s.
STATUS_WANTED = {"Prefer": "wait=1"}


def lamp_td(thing_id=LAMP):
    """The shared lamp with an action always answered asynchronously and an event the
    tests of a running action watch."""
    return tds.lamp_td(
        thing_id,
        actions={
            "calibrate": {"synchronous": False, "forms": [{"href": "https://lamp.local/calibrate"}]}
        },
        events={
            "faded": {"data": {"type": "integer"}, "forms": [{"href": "https://lamp.local/f"}]}
        },
    )


async def offline(running, conn):
    await conn.close()


async def device(running, conn, *, delay=0.0, **fields):
    """Take the next request, wait ``delay``, answer it with ``fields``."""
    delivered = await conn.next_request()
    if delay:
        await asyncio.sleep(delay)  # a device that takes its time
    await answer(conn, delivered, **fields)
    return delivered


async def accepted(response):
    """A 201: the ActionStatus body, with Location = href."""
    assert response.status == 201, await response.text()
    assert response.content_type == JSON
    status = await response.json()
    assert response.headers["Location"] == status["href"]
    assert status["status"] in PROFILE_STATUSES
    assert status["timeRequested"] and status["id"]
    return status


@pytest.fixture
def otto(running):
    return running.add_client("otto", "consumer", "operator")


@pytest.fixture
async def operator(running, otto):
    async with running.session(otto) as session:
        yield session


# -- invoke, answered within the wait -----------------------------------------------------


async def test_synchronous_invoke_answers_with_the_output(running, operator):
    conn = await register(running, td=lamp_td())
    agent = asyncio.create_task(device(running, conn, output=30))
    async with operator.post(url(LAMP, "actions", "fade"), json={"level": 30}) as response:
        assert response.status == 200, await response.text()
        assert response.content_type == JSON
        assert await response.json() == 30
    delivered = await agent
    assert (delivered.operation, delivered.name, delivered.input) == (
        "invokeaction",
        "fade",
        {"level": 30},
    )
    assert delivered.sender_id == "otto" and delivered.thing_id == LAMP
    status = running.hub.twin.get_request(delivered.action_id).to_status()
    assert status["status"] == "completed" and status["output"] == 30


async def test_an_action_without_output_answers_204(running, operator):
    conn = await register(running, td=lamp_td())
    agent = asyncio.create_task(device(running, conn, status="completed"))
    async with operator.post(url(LAMP, "actions", "toggle")) as response:
        assert response.status == 204, await response.text()
        assert await response.read() == b""
        assert "Content-Type" not in response.headers
    delivered = await agent
    assert "input" not in delivered.to_dict()  # no body, no input


async def test_prefer_wait_waits_longer_than_the_default(running, operator):
    conn = await register(running, td=lamp_td())
    wait = running.hub.config.sync_wait
    agent = asyncio.create_task(device(running, conn, delay=wait + 0.5, output=7))
    headers = {"Prefer": "wait=5"}
    async with operator.post(
        url(LAMP, "actions", "fade"), json={"level": 7}, headers=headers
    ) as response:
        assert response.status == 200, await response.text()
        assert await response.json() == 7
    await agent


async def test_prefer_respond_async_answers_201_at_once(running, operator):
    conn = await register(running, td=lamp_td())
    started = time.monotonic()
    headers = {"Prefer": "respond-async"}
    async with operator.post(
        url(LAMP, "actions", "fade"), json={"level": 3}, headers=headers
    ) as response:
        status = await accepted(response)
    assert time.monotonic() - started < running.hub.config.sync_wait
    assert (status["status"], status["state"]) == ("pending", "delivered")
    assert norm(status["href"]).startswith(norm(running.url + url(LAMP, "actions", "fade")))
    assert norm(status["href"]).endswith("/" + status["id"])
    delivered = await conn.next_request()
    assert delivered.action_id == status["id"]


async def test_an_action_declared_asynchronous_answers_201_at_once(running, operator):
    await register(running, td=lamp_td())
    started = time.monotonic()
    async with operator.post(url(LAMP, "actions", "calibrate")) as response:
        status = await accepted(response)
    assert time.monotonic() - started < running.hub.config.sync_wait
    assert status["state"] == "delivered"


# -- invoke, answered later -----------------------------------------------------------------


async def test_slow_device_201_after_the_wait_then_queryaction_follows_it(running, operator):
    conn = await register(running, td=lamp_td())
    started = time.monotonic()
    async with operator.post(
        url(LAMP, "actions", "fade"), json={"level": 60}, headers=STATUS_WANTED
    ) as response:
        status = await accepted(response)
        location = response.headers["Location"]
    waited = time.monotonic() - started
    assert 0.9 <= waited < 3
    assert (status["status"], status["state"]) == ("pending", "delivered")
    assert status["input"] == {"level": 60}

    delivered = await conn.next_request()
    await answer(conn, delivered, status="running")
    async with operator.get(location) as response:
        assert response.status == 200 and response.content_type == JSON
        now = await response.json()
    assert (now["status"], now["state"], now["href"]) == ("running", "running", location)
    assert "timeEnded" not in now

    await answer(conn, delivered, output=60)
    async with operator.get(location) as response:
        done = await response.json()
    assert (done["status"], done["state"], done["output"]) == ("completed", "completed", 60)
    assert done["timeEnded"] >= done["timeRequested"]


# -- invoke by a client that expects the output (no Prefer) ----------------------------------


async def test_without_prefer_an_unfinished_action_is_504_and_goes_on(running, operator):
    """A client that knows nothing of the async profile must not take a status for the
    output: after action_timeout it gets an error that says where the status is."""
    conn = await register(running, td=lamp_td())
    started = time.monotonic()
    async with operator.post(url(LAMP, "actions", "fade"), json={"level": 9}) as response:
        problem = await problem_of(response, 504)
        location = response.headers["Location"]
    assert time.monotonic() - started >= running.hub.config.action_timeout * 0.9
    assert problem["title"] == "Gateway Timeout"
    assert "has not finished" in problem["detail"] and "Prefer: respond-async" in problem["detail"]
    assert problem["actionStatus"]["href"] == location
    assert problem["actionStatus"]["state"] == "delivered"

    delivered = await conn.next_request()  # the action still reached the device
    await answer(conn, delivered, output=9)
    async with operator.get(location) as response:
        done = await response.json()
    assert (done["status"], done["output"]) == ("completed", 9)


async def test_without_prefer_the_output_of_a_device_back_in_time_is_the_answer(running, operator):
    await offline(running, await register(running, td=lamp_td()))

    async def comes_back():
        await until(lambda: running.hub.twin.requests_of(LAMP, "fade"), timeout=5)  # queued
        conn = await running.device(AGENT)
        delivered = await conn.next_request()
        await answer(conn, delivered, output=delivered.input["level"])

    back = asyncio.create_task(comes_back())
    async with operator.post(url(LAMP, "actions", "fade"), json={"level": 4}) as response:
        assert response.status == 200, await response.text()
        assert await response.json() == 4
    await back


async def test_without_prefer_an_action_for_an_offline_device_is_504_and_stays_queued(
    running, operator
):
    await offline(running, await register(running, td=lamp_td()))
    async with operator.post(url(LAMP, "actions", "toggle")) as response:
        problem = await problem_of(response, 504)
    assert "offline" in problem["detail"]
    assert problem["actionStatus"]["state"] == "pending"
    conn = await running.device(AGENT)  # when it connects, it gets it
    delivered = await conn.next_request()
    assert delivered.action_id == problem["actionStatus"]["id"]


async def test_respond_async_with_a_wait_waits_for_the_output(running, operator):
    conn = await register(running, td=lamp_td())
    agent = asyncio.create_task(device(running, conn, delay=0.2, output=5))
    headers = {"Prefer": "respond-async, wait=5"}
    async with operator.post(
        url(LAMP, "actions", "fade"), json={"level": 5}, headers=headers
    ) as response:
        assert response.status == 200, await response.text()
        assert await response.json() == 5
    await agent


async def test_device_failure_is_a_problem_from_the_device(running, operator):
    conn = await register(running, td=lamp_td())
    error = {
        "type": "https://lamp.example/errors/jammed",
        "title": "Jammed",
        "status": 503,
        "detail": "the dimmer is jammed",
    }
    agent = asyncio.create_task(device(running, conn, status="failed", error=error))
    async with operator.post(url(LAMP, "actions", "fade"), json={"level": 1}) as response:
        problem = await problem_of(response, 503)
    await agent
    assert problem["detail"] == "the dimmer is jammed"
    assert (problem["title"], problem["type"]) == ("Jammed", error["type"])
    assert problem["actionStatus"]["status"] == "failed"
    assert problem["actionStatus"]["name"] == "fade"


async def test_device_failure_with_a_status_that_is_no_error_is_500(running, operator):
    conn = await register(running, td=lamp_td())
    error = {"title": "Odd", "status": 200, "detail": "not an error status"}
    agent = asyncio.create_task(device(running, conn, status="failed", error=error))
    async with operator.post(url(LAMP, "actions", "toggle")) as response:
        problem = await problem_of(response, 500)
    await agent
    assert problem["detail"] == "not an error status"


@pytest.mark.parametrize("agent_status", [401, 403, 429])
async def test_a_device_failure_never_speaks_of_the_consumers_credentials(
    running, operator, agent_status
):
    # A 401 would make clients log in again and send the action twice; a 429 back off.
    conn = await register(running, td=lamp_td())
    error = {"title": "Locked", "status": agent_status, "detail": "no", "retryAfter": 60}
    agent = asyncio.create_task(device(running, conn, status="failed", error=error))
    async with operator.post(url(LAMP, "actions", "toggle")) as response:
        problem = await problem_of(response, 502)
        assert "WWW-Authenticate" not in response.headers
        assert "Retry-After" not in response.headers
    await agent
    assert (problem["agentStatus"], problem["detail"]) == (agent_status, "no")


async def test_a_failure_after_the_wait_shows_in_the_status(running, operator):
    conn = await register(running, td=lamp_td())
    async with operator.post(url(LAMP, "actions", "toggle"), headers=STATUS_WANTED) as response:
        location = (await accepted(response))["href"]
    delivered = await conn.next_request()
    error = {"title": "Broken", "status": 500, "detail": "bulb gone"}
    await answer(conn, delivered, status="failed", error=error)
    async with operator.get(location) as response:
        status = await response.json()
    assert (status["status"], status["state"]) == ("failed", "failed")
    assert status["error"]["detail"] == "bulb gone"


# -- cancel -----------------------------------------------------------------------------


async def test_cancel_a_pending_action(running, operator):
    await offline(running, await register(running, td=lamp_td()))
    async with operator.post(
        url(LAMP, "actions", "fade"), json={"level": 2}, headers=STATUS_WANTED
    ) as response:
        status = await accepted(response)
    assert (status["status"], status["state"]) == ("pending", "pending")
    location = status["href"]

    async with operator.delete(location) as response:
        assert response.status == 204, await response.text()
    async with operator.get(location) as response:
        after = await response.json()
    assert (after["status"], after["state"]) == ("failed", "cancelled")
    assert after["error"]["status"] == 410 and "otto" in after["error"]["detail"]
    async with operator.delete(location) as response:
        await problem_of(response, 409)  # already ended

    # Nothing reaches the device when it comes back.
    conn = await running.device(AGENT)
    assert conn.pending() == 0


async def test_an_operator_cancels_only_its_own_actions(running, operator):
    await offline(running, await register(running, td=lamp_td()))
    olga = running.add_client("olga", "consumer", "operator")
    vera = running.add_client("vera", "consumer", "viewer")
    async with operator.post(url(LAMP, "actions", "toggle"), headers=STATUS_WANTED) as response:
        location = (await accepted(response))["href"]
    for token in (olga, vera):
        async with running.session(token) as other, other.delete(location) as response:
            await problem_of(response, 403)
    async with operator.get(location) as response:
        assert (await response.json())["state"] == "pending"

    # Its invoker may; so may an administrator (olga's action this time).
    async with operator.delete(location) as response:
        assert response.status == 204
    toggle = url(LAMP, "actions", "toggle")
    async with (
        running.session(olga) as other,
        other.post(toggle, headers=STATUS_WANTED) as response,
    ):
        theirs = (await accepted(response))["href"]
    ada = running.add_client("ada", "consumer", "admin")
    async with running.session(ada) as admin, admin.delete(theirs) as response:
        assert response.status == 204


async def test_cancel_of_an_action_at_the_device_tells_the_device(running, operator):
    conn = await register(running, td=lamp_td())
    async with operator.post(
        url(LAMP, "actions", "toggle"), headers={"Prefer": "respond-async"}
    ) as response:
        location = (await accepted(response))["href"]
    delivered = await conn.next_request()
    async with operator.delete(location) as response:
        assert response.status == 204
    told = await conn.next_request()
    assert (told.operation, told.action_id) == ("cancelaction", delivered.action_id)


async def test_query_and_cancel_of_unknown_actions_are_404(running, operator):
    await offline(running, await register(running, td=lamp_td()))
    missing = url(LAMP, "actions", "toggle", new_id())
    async with operator.get(missing) as response:
        await problem_of(response, 404)
    async with operator.delete(missing) as response:
        await problem_of(response, 404)
    async with operator.post(url(LAMP, "actions", "toggle"), headers=STATUS_WANTED) as response:
        action_id = (await accepted(response))["id"]
    # The right id under another Thing is not found either.
    other = await register(running, "fan-agent", lamp_td("urn:dev:ops:fan-1"))
    await offline(running, other)
    async with operator.get(url("urn:dev:ops:fan-1", "actions", "toggle", action_id)) as response:
        await problem_of(response, 404)
    async with operator.get(url(LAMP, "nonsense", "toggle", action_id)) as response:
        await problem_of(response, 404)


async def test_an_action_id_under_another_action_name_is_404(running, operator):
    await offline(running, await register(running, td=lamp_td()))
    async with operator.post(url(LAMP, "actions", "toggle"), headers=STATUS_WANTED) as response:
        action_id = (await accepted(response))["id"]
    for path in (
        url(LAMP, "actions", "fade", action_id),
        url(LAMP, "properties", "brightness", action_id),
    ):
        async with operator.get(path) as response:
            await problem_of(response, 404)


# -- queryallactions ------------------------------------------------------------------------


async def invoke_four(running, operator):
    """Three fades and a toggle, for a device that is away; their ids in order."""
    await offline(running, await register(running, td=lamp_td()))
    fades = []
    for level in (1, 2, 3):
        async with operator.post(
            url(LAMP, "actions", "fade"), json={"level": level}, headers=STATUS_WANTED
        ) as response:
            status = await accepted(response)
            fades.append(status["id"])
        # distinct timeRequested: the hub's clock (milliseconds) has moved past this one
        requested = status["timeRequested"]
        await until(lambda: clock.rfc3339_now() > requested, 1)  # noqa: B023 (awaited here)
    async with operator.post(url(LAMP, "actions", "toggle"), headers=STATUS_WANTED) as response:
        toggle = (await accepted(response))["id"]
    return fades, toggle


async def test_queryallactions_groups_statuses_by_action(running, operator):
    fades, toggle = await invoke_four(running, operator)
    async with operator.get(url(LAMP, "actions")) as response:
        assert response.status == 200 and response.content_type == JSON
        grouped = await response.json()
    assert set(grouped) == {"fade", "toggle"}
    assert sorted(s["id"] for s in grouped["fade"]) == sorted(fades)
    assert [s["id"] for s in grouped["toggle"]] == [toggle]
    for status in grouped["fade"] + grouped["toggle"]:
        assert status["status"] == "pending" and status["state"] == "pending"
        assert norm(status["href"]).endswith("/" + status["id"])
        async with operator.get(status["href"]) as response:
            assert (await response.json())["id"] == status["id"]

    vera = running.add_client("vera", "consumer", "viewer")
    async with running.session(vera) as viewer, viewer.get(url(LAMP, "actions")) as response:
        assert response.status == 200  # viewers query too
    async with operator.get(url("urn:dev:ops:nothing", "actions")) as response:
        await problem_of(response, 404)


async def test_queryallactions_newest_first(running, operator):
    fades, _ = await invoke_four(running, operator)
    async with operator.get(url(LAMP, "actions")) as response:
        grouped = await response.json()
    assert [s["input"] for s in grouped["fade"]] == [{"level": 3}, {"level": 2}, {"level": 1}]
    assert [s["id"] for s in grouped["fade"]] == fades[::-1]
    times = [s["timeRequested"] for s in grouped["fade"]]
    assert times == sorted(times, reverse=True)


# -- the offline queue ------------------------------------------------------------------------


async def test_an_action_waits_for_its_device_and_the_consumer_sees_it_end(running, operator):
    await offline(running, await register(running, td=lamp_td()))
    started = time.monotonic()
    async with operator.post(
        url(LAMP, "actions", "fade"), json={"level": 80}, headers=STATUS_WANTED
    ) as response:
        status = await accepted(response)
    assert time.monotonic() - started < running.hub.config.sync_wait  # offline: at once
    assert (status["status"], status["state"]) == ("pending", "pending")
    location = status["href"]

    stream_headers = {"Accept": "text/event-stream"}
    async with asyncio.timeout(10):
        async with operator.get(url(LAMP, "events", "faded"), headers=stream_headers) as stream:
            assert stream.status == 200
            events = SseReader(stream)

            conn = await running.device(AGENT)  # the device comes back and gets the queued action
            delivered = await conn.next_request()
            assert (delivered.name, delivered.input) == ("fade", {"level": 80})
            assert delivered.action_id == status["id"] and delivered.sender_id == "otto"
            await answer(conn, delivered, status="running")
            await answer(conn, delivered, output=80)
            await emit(conn, "faded", 80)

            event = await events.next()
            assert (event["event"], event["data"]) == ("faded", 80)

    async with operator.get(location) as response:
        done = await response.json()
    assert (done["status"], done["state"], done["output"]) == ("completed", "completed", 80)


# -- refusals ---------------------------------------------------------------------------


async def test_invalid_input_is_400_with_details(running, operator):
    await register(running, td=lamp_td())
    for body in ({"level": -1}, {"level": "high"}, {}, 5):
        async with operator.post(url(LAMP, "actions", "fade"), json=body) as response:
            problem = await problem_of(response, 400)
        assert problem["validationErrors"], problem
    async with operator.post(url(LAMP, "actions", "fade")) as response:
        problem = await problem_of(response, 400)  # input required
    assert "input" in problem["detail"]
    async with operator.post(
        url(LAMP, "actions", "fade"), data=b"{level", headers={"Content-Type": JSON}
    ) as response:
        await problem_of(response, 400)
    async with operator.post(
        url(LAMP, "actions", "fade"), data=b"level=1", headers={"Content-Type": "text/plain"}
    ) as response:
        await problem_of(response, 415)
    async with operator.post(url(LAMP, "actions", "explode")) as response:
        await problem_of(response, 404)
    assert running.hub.twin.requests_of(LAMP) == []


async def test_a_viewer_may_not_invoke(running):
    await register(running, td=lamp_td())
    vera = running.add_client("vera", "consumer", "viewer")
    toggle = url(LAMP, "actions", "toggle")
    async with running.session(vera) as viewer, viewer.post(toggle) as response:
        await problem_of(response, 403)
    async with running.session() as anonymous, anonymous.post(toggle) as response:
        await problem_of(response, 401)
    assert running.hub.twin.requests_of(LAMP) == []


# -- the hub's own Things -----------------------------------------------------------------


async def test_the_hubs_own_things_answer_at_once(running, admin):
    running.add_client("vera", "consumer", "viewer")
    list_clients = url("urn:wothub:clients", "actions", "listClients")
    async with admin.post(list_clients) as response:
        assert response.status == 200, await response.text()
        assert response.content_type == JSON
        clients = await response.json()
    assert isinstance(clients, list)
    assert {"ada", "vera"} <= {c["clientID"] for c in clients}
    assert running.hub.twin.requests_of("urn:wothub:clients") == []  # nothing queued


async def test_a_viewer_may_not_use_the_clients_thing(running):
    vera = running.add_client("vera", "consumer", "viewer")
    async with running.session(vera) as viewer:
        list_clients = url("urn:wothub:clients", "actions", "listClients")
        async with viewer.post(list_clients) as response:
            await problem_of(response, 403)
        async with viewer.get(url("urn:wothub:clients")) as response:
            await problem_of(response, 403)
