"""HttpConsumer against a real hub over HTTPS: logins and token renewal, the directory,
twins (a device played by a router connection), the hub's own Things, and SSE streams
that resume after the hub drops them."""

from __future__ import annotations

import asyncio

import pytest

from clients.http import (
    ActionStatus,
    EventStream,
    HttpConsumer,
    HubError,
    HubUnreachable,
    SseEvent,
)
from tests.support.devices import answer, emit, register, report
from tests.support.running import PASSWORD
from tests.support.tds import SLASHED_LAMP as LAMP
from tests.support.tds import http_lamp_td, lamp_td
from tests.waiting import until

pytestmark = pytest.mark.timeout(60)


def consumer(running, **kwargs) -> HttpConsumer:
    return HttpConsumer(running.url, ca=running.hub.ca.ca_cert_pem, **kwargs)


@pytest.fixture
async def admin(running):
    running.add_client("ada", "consumer", "admin")
    async with consumer(running) as client:
        await client.login("ada", PASSWORD)
        yield client


@pytest.fixture
async def manager(running):
    running.add_client("mia", "consumer", "manager")
    async with consumer(running) as client:
        await client.login("mia", PASSWORD)
        yield client


@pytest.fixture
async def device(running):
    """A lamp: a real WebSocket agent (``running.device``) that registered its TD."""
    return await register(running, td=http_lamp_td())


async def next_event(stream, timeout=5.0) -> SseEvent:
    return await asyncio.wait_for(anext(stream), timeout)


# -- logging in --------------------------------------------------------------------------


async def test_login_refresh_logout(running):
    running.add_client("vera", "consumer", "viewer")
    async with consumer(running) as client:
        answer = await client.login("vera", PASSWORD)
        assert answer["clientID"] == "vera" and answer["role"] == "viewer"
        assert client.token == answer["token"]
        refreshed = await client.refresh()
        assert refreshed["token"] == client.token != answer["token"]
        old = client.token
        await client.logout()
        assert client.token is None
    # The session ended: the old token no longer works, and without a password the
    # client cannot renew it.
    async with consumer(running, token=old) as client:
        with pytest.raises(HubError) as refused:
            await client.read_thing("urn:wothub:authn")
        assert refused.value.status == 401


async def test_wrong_password_is_a_401_hub_error(running):
    running.add_client("vera", "consumer", "viewer")
    async with consumer(running) as client:
        with pytest.raises(HubError) as refused:
            await client.login("vera", "not the password")
    assert refused.value.status == 401
    assert "Unauthorized" in str(refused.value) or "credentials" in str(refused.value)


async def test_a_given_token_is_used_as_is(running, device):
    token = running.add_client("vera", "consumer", "viewer")
    async with consumer(running, token=token) as client:
        assert (await client.read_thing(LAMP))["id"] == LAMP


async def test_an_expired_token_is_refreshed_and_the_request_sent_again(running, device):
    auth = running.hub.auth
    running.add_client("vera", "consumer", "viewer")
    async with consumer(running) as client:
        await client.login("vera", PASSWORD)
        session_id = auth.authenticate_token(client.token).session_id
        # the login's token as it is once its lifetime has passed (no waiting for it)
        expired = auth.signer.issue("vera", "viewer", session_id, lifetime=-10)
        client.token = expired
        assert (await client.read_thing(LAMP))["id"] == LAMP
        assert client.token != expired
        # refreshed in the same session, not a new login
        assert auth.authenticate_token(client.token).session_id == session_id


async def test_a_revoked_session_is_replaced_by_a_new_login(running, device):
    running.add_client("vera", "consumer", "viewer")
    async with consumer(running) as client:
        await client.login("vera", PASSWORD)
        first = client.token
        running.hub.auth.sessions.revoke_all("vera")  # refresh is refused now too
        assert (await client.read_thing(LAMP))["id"] == LAMP
        assert client.token != first
        # Concurrent 401s renew once and all succeed.
        running.hub.auth.sessions.revoke_all("vera")
        results = await asyncio.gather(*(client.read_thing(LAMP) for _ in range(5)))
        assert all(td["id"] == LAMP for td in results)


async def test_client_certificate(running, device, tmp_path):
    running.hub.auth.add_client("sensor-1", "consumer", "viewer")
    issued, key_pem = running.hub.ca.generate_for("sensor-1")
    cert, key = tmp_path / "c.pem", tmp_path / "c.key"
    cert.write_bytes(issued.cert_pem)
    key.write_bytes(key_pem)
    async with consumer(running, client_cert=(cert, key)) as client:
        assert (await client.read_thing(LAMP))["id"] == LAMP


async def test_ca_as_a_file_and_as_text(running, tmp_path):
    path = tmp_path / "ca.pem"
    path.write_bytes(running.hub.ca.ca_cert_pem)
    running.add_client("vera", "consumer", "viewer")
    for ca in (path, str(path), running.hub.ca.ca_cert_pem.decode()):
        async with HttpConsumer(running.url, ca=ca) as client:
            login = await client.login("vera", PASSWORD)
            assert login["clientID"] == "vera"
            assert [td async for td in client.things()]  # the hub's own Things at least


async def test_unreachable_and_untrusted_hubs(running, unused_tcp_port):
    async with HttpConsumer(f"https://127.0.0.1:{unused_tcp_port}", ca=None) as client:
        with pytest.raises(HubUnreachable) as unreachable:
            await client.login("vera", PASSWORD)
    assert not unreachable.value.tls
    async with HttpConsumer(running.url) as client:  # the system's CAs: not the hub's
        with pytest.raises(HubUnreachable) as untrusted:
            await client.login("vera", PASSWORD)
    assert untrusted.value.tls


# -- the directory -----------------------------------------------------------------------


async def test_directory_crud_paging_and_search(admin):
    ids = [f"urn:dev:test:{i}" for i in range(5)]
    for thing_id in ids:
        created = await admin.update_thing(lamp_td(thing_id, f"Lamp {thing_id[-1]}"))
        assert created == {"id": thing_id, "created": True}
    replaced = await admin.update_thing(lamp_td(ids[0], "Lamp zero"))
    assert replaced == {"id": ids[0], "created": False}

    listed = [td["id"] async for td in admin.things(page_size=2)]
    assert len(listed) == len(set(listed))  # no TD twice across pages
    assert set(ids) <= set(listed)
    assert (await admin.read_thing(ids[0]))["title"] == "Lamp zero"

    await admin.patch_thing(ids[1], {"title": "Patched"})
    assert (await admin.read_thing(ids[1]))["title"] == "Patched"

    found = await admin.search("$[?@.title == 'Patched'].id")
    assert found == [ids[1]]

    anonymous = lamp_td(None)
    new_id = await admin.create_thing(anonymous)
    assert new_id and (await admin.read_thing(new_id))["title"] == "Lamp"

    await admin.delete_thing(ids[2])
    with pytest.raises(HubError) as missing:
        await admin.read_thing(ids[2])
    assert missing.value.status == 404
    assert missing.value.problem["status"] == 404
    assert ids[2] in str(missing.value)


async def test_bad_requests_are_hub_errors_with_the_problem(admin):
    with pytest.raises(HubError) as bad:
        await admin.search("$[")
    assert bad.value.status == 400 and bad.value.title
    with pytest.raises(HubError) as invalid:
        await admin.update_thing({"id": "urn:x", "title": 5})
    assert invalid.value.status == 400


# -- twins -------------------------------------------------------------------------------


async def test_read_properties(manager, device):
    await report(device, "brightness", 40)
    await report(device, "on", True)
    assert await manager.read_property(LAMP, "brightness") == 40
    assert await manager.read_all_properties(LAMP) == {"brightness": 40, "on": True}
    with pytest.raises(HubError) as unknown:
        await manager.read_property(LAMP, "nope")
    assert unknown.value.status == 404


async def test_write_property_taken_or_queued(manager, device):
    async def device_takes_it():
        request = await device.next_request()
        assert (request.operation, request.name, request.input) == ("writeproperty", "on", True)
        await answer(device, request)

    answering = asyncio.create_task(device_takes_it())
    assert await manager.write_property(LAMP, "on", True, wait=5) is None
    await answering

    await device.close()  # offline: the write waits in the queue
    status = await manager.write_property(LAMP, "brightness", 70)
    assert isinstance(status, ActionStatus)
    assert status.status == "pending" and status.href and not status.done
    assert (await manager.query_action(status.href))["status"] == "pending"


async def test_invoke_with_output_without_output_and_async(manager, device):
    async def device_answers(count):
        for _ in range(count):
            request = await device.next_request()
            if request.input:  # fade has an output, toggle none
                await answer(device, request, output=request.input["level"])
            else:
                await answer(device, request)

    answering = asyncio.create_task(device_answers(2))
    assert await manager.invoke_action(LAMP, "fade", {"level": 30}, wait=5) == 30
    assert await manager.invoke_action(LAMP, "toggle", wait=5) is None
    await answering

    status = await manager.invoke_action(LAMP, "fade", {"level": 7}, respond_async=True)
    assert isinstance(status, ActionStatus) and status.href
    assert status["name"] == "fade" and status.status == "pending"
    request = await device.next_request()
    await answer(device, request, status="running")
    assert (await manager.query_action(status.href)).status == "running"
    await answer(device, request, output=7)
    final = await manager.query_action(status.href)
    assert final.status == "completed" and final.output == 7 and final.done

    everything = await manager.query_all_actions(LAMP)
    assert len(everything["fade"]) == 2 and len(everything["toggle"]) == 1
    assert status["id"] in [s["id"] for s in everything["fade"]]
    assert all(isinstance(s, ActionStatus) for s in everything["fade"])


async def test_cancel_a_queued_action(manager, device):
    await device.close()
    status = await manager.invoke_action(LAMP, "toggle")
    assert isinstance(status, ActionStatus) and status.status == "pending"
    await manager.cancel_action(status.href)
    cancelled = await manager.query_action(status.href)
    assert cancelled.status == "failed" and cancelled["state"] == "cancelled"


async def test_failed_action_and_invalid_input_raise(manager, device):
    with pytest.raises(HubError) as invalid:
        await manager.invoke_action(LAMP, "fade", {"level": 500})
    assert invalid.value.status == 400


async def test_forbidden_is_a_403_hub_error(running, device):
    running.add_client("vera", "consumer", "viewer")
    async with consumer(running) as viewer:
        await viewer.login("vera", PASSWORD)
        with pytest.raises(HubError) as refused:
            await viewer.invoke_action(LAMP, "toggle")
        assert refused.value.status == 403
        with pytest.raises(HubError) as admin_only:
            await viewer.invoke_service("urn:wothub:clients", "listClients")
        assert admin_only.value.status == 403
        assert str(admin_only.value).startswith("403 ")


async def test_the_hubs_own_things(admin):
    account = await admin.invoke_service(
        "urn:wothub:clients",
        "addClient",
        {"clientID": "bob", "kind": "consumer", "role": "viewer", "password": "long enough"},
    )
    assert account["clientID"] == "bob" and account["hasPassword"]
    listed = await admin.invoke_service("urn:wothub:clients", "listClients")
    assert {"ada", "bob"} <= {a["clientID"] for a in listed}
    generated = await admin.invoke_service(
        "urn:wothub:certs", "generateCertificate", {"clientID": "bob"}
    )
    assert "PRIVATE KEY" in generated["privateKey"]
    certificates = await admin.invoke_service(
        "urn:wothub:certs", "listCertificates", {"clientID": "bob"}
    )
    assert [c["serial"] for c in certificates] == [generated["serial"]]


# -- notifications -----------------------------------------------------------------------


async def test_observe_property_and_all_and_events(manager, device):
    async with (
        manager.observe_property(LAMP, "brightness") as one,
        manager.observe_property(LAMP) as every,
        manager.subscribe_event(LAMP, "overheated") as event,
        manager.subscribe_event(LAMP) as events,
    ):
        await report(device, "brightness", 10)
        await report(device, "on", False)
        await emit(device, "overheated", 81.5)
        got = await next_event(one)
        assert (got.event, got.data) == ("brightness", 10) and got.id
        assert [(e.event, e.data) for e in [await next_event(every), await next_event(every)]] == [
            ("brightness", 10),
            ("on", False),
        ]
        event_name, data, event_id = await next_event(event)
        assert (event_name, data) == ("overheated", 81.5) and event_id
        assert (await next_event(events)).data == 81.5


async def test_a_dropped_stream_resumes_without_losing_a_notification(manager, device):
    stream = manager.observe_property(LAMP, "brightness")
    async with stream:
        await report(device, "brightness", 1)
        assert (await next_event(stream)).data == 1
        before = stream.last_event_id

        manager_streams = manager._streams
        assert stream in manager_streams
        device.running.hub.http.context.close_streams()  # the hub ends every stream
        await report(device, "brightness", 2)  # while the consumer is away, or just back
        await report(device, "brightness", 3)

        assert [(await next_event(stream)).data for _ in range(2)] == [2, 3]
        assert stream.reconnects == 1 and stream.last_event_id != before

        await report(device, "brightness", 4)  # and the new connection carries on
        assert (await next_event(stream)).data == 4


async def test_a_stream_opened_lazily_by_iterating(manager, device):
    stream = manager.observe_property(LAMP, "brightness")
    reading = asyncio.create_task(next_event(stream))
    await until(lambda: stream in manager._streams)
    await report(device, "brightness", 55)
    assert (await reading).data == 55
    await stream.aclose()
    with pytest.raises(StopAsyncIteration):
        await anext(stream)


async def test_a_stream_ends_when_the_client_closes(running, device):
    running.add_client("vera", "consumer", "viewer")
    client = consumer(running)
    await client.login("vera", PASSWORD)
    stream = client.observe_property(LAMP, "brightness")
    await stream.open()
    waiting = asyncio.create_task(anext(stream))
    await asyncio.sleep(0)  # one turn of the loop: the reader is waiting on the open stream
    await client.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 5)


async def test_breaking_out_of_a_stream_closes_it(manager, device):
    async with manager.observe_property(LAMP, "brightness") as stream:
        await report(device, "brightness", 5)
        async for _, value, _ in stream:
            assert value == 5
            break
    assert stream not in manager._streams
    await until(lambda: not device.running.hub.http.context.streams)  # the hub sees it go


async def test_streams_renew_an_expired_token_when_reconnecting(running, device):
    running.add_client("vera", "consumer", "viewer")
    async with consumer(running) as client:
        await client.login("vera", PASSWORD)
        async with client.observe_property(LAMP, "brightness") as stream:
            await report(device, "brightness", 8)
            assert (await next_event(stream)).data == 8
            first = client.token
            running.hub.auth.sessions.revoke_all("vera")
            running.hub.http.context.close_streams()
            await report(device, "brightness", 9)  # while the stream is away, or just back
            assert (await next_event(stream)).data == 9
            assert client.token != first


async def test_stream_errors_are_raised(manager, admin, device):
    with pytest.raises(HubError) as missing:
        async with manager.observe_property("urn:dev:none", "x"):
            pass
    assert missing.value.status == 404
    with pytest.raises(ValueError):
        admin.directory_events(type="nope")


async def test_directory_events(admin):
    async with (
        admin.directory_events() as every,
        admin.directory_events(type="thing_created", diff=True) as created,
    ):
        await admin.update_thing(lamp_td("urn:dev:dir:1"))
        await admin.patch_thing("urn:dev:dir:1", {"title": "Renamed"})
        await admin.delete_thing("urn:dev:dir:1")
        kinds = [await next_event(every) for _ in range(3)]
        assert [(e.event, e.data["id"]) for e in kinds] == [
            ("thing_created", "urn:dev:dir:1"),
            ("thing_updated", "urn:dev:dir:1"),
            ("thing_deleted", "urn:dev:dir:1"),
        ]
        full = await next_event(created)
        assert full.event == "thing_created" and full.data["title"] == "Lamp"


async def test_a_read_that_times_out_keeps_the_stream(manager, device):
    async with manager.observe_property(LAMP, "brightness") as stream:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(stream), 0.2)
        await report(device, "brightness", 12)
        assert (await next_event(stream)).data == 12
        assert stream.reconnects == 0


class Chunks:
    """A response body arriving in the given pieces."""

    def __init__(self, *chunks):
        self.chunks = list(chunks)

    async def readany(self):
        return self.chunks.pop(0) if self.chunks else b""


async def test_sse_parsing():
    from clients.http import _SseParser

    parser = _SseParser(
        Chunks(
            b": ping\r\n\r\nid: 1-5\r\n\r\n",  # a comment; an id without data
            b"event: brightness\r\nid: 1-6\r\ndata: 4",  # split inside a line
            b"0\r\n\r\nevent: note\ndata: first\ndata:second\n\n",  # LF too
            b'data: {"a": 1}\n\n' + b"data: " + b"x" * 200_000 + b"\n\n",
            b"event: partial\ndata: 1",  # the stream ends in the middle of an event
        ),
        None,
    )
    assert await parser.next_event() == SseEvent("brightness", 40, "1-6")
    assert await parser.next_event() == SseEvent("note", "first\nsecond", "1-6")
    assert await parser.next_event() == SseEvent("message", {"a": 1}, "1-6")
    assert (await parser.next_event()).data == "x" * 200_000
    assert await parser.next_event() is None
    assert parser.last_id == "1-6"
    # An id in a block without data still moves the stream's last event id.
    parser = _SseParser(Chunks(b"id: 3-1\n\n: ping\n\n"), "2-9")
    assert await parser.next_event() is None and parser.last_id == "3-1"


async def test_streams_are_event_streams(manager):
    stream = manager.directory_events(type="thing_deleted")
    assert isinstance(stream, EventStream) and stream.last_event_id is None
    await stream.aclose()
