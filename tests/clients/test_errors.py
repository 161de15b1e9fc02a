"""clients/errors.py: the four clients raise the same class for the same situation, against
a real hub with every binding (refused credentials, refused and unknown operations, no hub
listening), and HTTP's lost connections and silent servers on real loopback sockets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from clients import http, mqtt, nats, websocket
from clients.errors import (
    BadRequest,
    ClientError,
    Conflict,
    Disconnected,
    Forbidden,
    HubError,
    HubTimeout,
    HubUnreachable,
    NotFound,
    Unauthorized,
    hub_error,
)
from tests.support.running import PASSWORD
from tests.support.tds import LAMP, lamp_td

pytestmark = pytest.mark.timeout(90)

BINDINGS = ("http", "websocket", "mqtt", "nats")


@pytest.fixture
def hub_options() -> dict:
    return {"mqtt_enabled": True, "nats_enabled": True}


@contextlib.asynccontextmanager
async def consumer(binding: str, url: str, ca: bytes, client_id: str, password: str):
    """A consumer client of ``binding``, logged in with a password; closed after."""
    if binding == "http":
        async with http.HttpConsumer(url, ca=ca, timeout=5) as client:
            await client.login(client_id, password)
            yield client
    elif binding == "websocket":
        async with websocket.WsClient(
            url, ca=ca, basic=(client_id, password), reconnect=False
        ) as client:
            yield client
    elif binding == "mqtt":
        client = mqtt.MqttClient(url, client_id, password=password, ca_pem=ca, timeout=5)
        await client.connect()
        try:
            yield client
        finally:
            await client.close()
    else:
        client = await nats.NatsConsumer.connect(url, client_id, password=password, ca_pem=ca)
        async with client:
            yield client


async def invoke(client, thing_id: str, name: str) -> object:
    if isinstance(client, mqtt.MqttClient):  # the MQTT consumer has request() only
        return await client.request("invokeaction", thing_id, name)
    return await client.invoke_action(thing_id, name)


async def read(client, thing_id: str, name: str) -> object:
    if isinstance(client, mqtt.MqttClient):
        return await client.request("readproperty", thing_id, name)
    return await client.read_property(thing_id, name)


async def raised(call: Callable[[], Awaitable[object]]) -> ClientError:
    with pytest.raises(ClientError) as caught:
        async with asyncio.timeout(20):  # a client that hung would show as a timeout
            await call()
    return caught.value


@pytest.mark.parametrize("binding", BINDINGS)
async def test_refused_credentials_raise_unauthorized(running, binding):
    running.add_client("vera")
    url, ca = running.binding_urls()[binding], running.hub.ca.ca_cert_pem

    async def log_in():
        async with consumer(binding, url, ca, "vera", "not the password"):
            pass

    error = await raised(log_in)
    assert isinstance(error, Unauthorized), repr(error)
    assert error.status == 401 and error.problem["status"] == 401


@pytest.mark.parametrize("binding", BINDINGS)
async def test_unknown_names_raise_not_found(running, binding):
    device = await running.device("lamp-agent")
    await device.client.update_thing(lamp_td())
    running.add_client("vera")
    url, ca = running.binding_urls()[binding], running.hub.ca.ca_cert_pem
    async with consumer(binding, url, ca, "vera", PASSWORD) as client:
        error = await raised(lambda: read(client, LAMP, "no-such-property"))
        assert isinstance(error, NotFound), repr(error)
        assert error.status == 404 and "no-such-property" in str(error)
        error = await raised(lambda: read(client, "urn:dev:no-such-thing", "on"))
        assert isinstance(error, NotFound), repr(error)


@pytest.mark.parametrize("binding", BINDINGS)
async def test_a_viewer_invoking_is_refused(running, binding):
    device = await running.device("lamp-agent")
    await device.client.update_thing(lamp_td())
    running.add_client("vera")  # a viewer
    url, ca = running.binding_urls()[binding], running.hub.ca.ca_cert_pem
    async with consumer(binding, url, ca, "vera", PASSWORD) as client:
        # On NATS the server's own permissions drop the request (docs/nats.md); the
        # client fails it on the server's error instead of waiting for an answer.
        error = await raised(lambda: invoke(client, LAMP, "toggle"))
        assert isinstance(error, Forbidden), repr(error)
        assert error.status == 403 and error.problem["title"]


@pytest.mark.parametrize("binding", BINDINGS)
async def test_no_hub_listening_raises_hub_unreachable(running, binding, unused_tcp_port):
    address = {
        "http": f"https://127.0.0.1:{unused_tcp_port}",
        "websocket": f"wss://127.0.0.1:{unused_tcp_port}/ws",
        "mqtt": f"mqtts://127.0.0.1:{unused_tcp_port}",
        "nats": f"tls://127.0.0.1:{unused_tcp_port}",
    }[binding]

    async def log_in():
        async with consumer(binding, address, running.hub.ca.ca_cert_pem, "vera", PASSWORD):
            pass

    error = await raised(log_in)
    assert isinstance(error, HubUnreachable) and isinstance(error, ConnectionError), repr(error)
    assert not error.tls


# -- HTTP: a connection lost, an answer that does not come -------------------------------


@contextlib.asynccontextmanager
async def tcp_server(
    on_connect: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[str]:
    """A plain TCP server on a free loopback port; its http:// URL."""
    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}"


async def test_http_connection_closed_mid_request_raises_disconnected():
    async def close_after_the_request(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    async with tcp_server(close_after_the_request) as url, http.HttpConsumer(url) as client:
        error = await raised(lambda: client.read_thing(LAMP))
    assert isinstance(error, Disconnected) and isinstance(error, ConnectionError), repr(error)


async def test_http_answer_that_does_not_come_raises_hub_timeout():
    release = asyncio.Event()

    async def never_answer(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        await release.wait()
        writer.close()

    async with tcp_server(never_answer) as url, http.HttpConsumer(url, timeout=0.5) as client:
        error = await raised(lambda: client.read_thing(LAMP))
        release.set()
    assert isinstance(error, HubTimeout) and isinstance(error, TimeoutError), repr(error)


# -- the classes -------------------------------------------------------------------------


def test_a_problem_gets_the_class_of_its_status():
    kinds = (
        (400, BadRequest),
        (401, Unauthorized),
        (403, Forbidden),
        (404, NotFound),
        (409, Conflict),
        (422, HubError),
    )
    for status, kind in kinds:
        error = hub_error({"title": "T", "status": status, "detail": "why"})
        assert type(error) is kind and error.status == status
        assert str(error) == f"{status} T: why"
    assert hub_error(None).status == 500  # a problem without a status is the hub's fault
    assert hub_error({"status": "bad"}, status=400).status == 400


def test_the_old_names_are_the_new_classes():
    assert websocket.WsError is HubError and websocket.WsDisconnected is Disconnected
    assert mqtt.MqttError is ClientError
    assert http.HubError is nats.HubError is HubError and http.HubUnreachable is HubUnreachable
