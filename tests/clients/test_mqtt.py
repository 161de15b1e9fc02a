"""clients.mqtt against the real hub: an agent and a consumer over MQTT."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from bindings.nats import ejection
from clients.mqtt import MqttClient, MqttError
from tests.support.running import PASSWORD
from tests.support.tds import LAMP, lamp_td
from tests.waiting import until


@pytest.fixture
def hub_options() -> dict:
    return {"mqtt_enabled": True}


def client(running, client_id, **kwargs):
    kwargs.setdefault("password", PASSWORD)
    return MqttClient(
        f"mqtts://127.0.0.1:{running.hub.mqtt.port}",
        client_id,
        ca_pem=running.hub.ca.ca_cert_pem,
        timeout=5,
        **kwargs,
    )


async def test_agent_and_consumer_clients(running):
    running.add_client("lamp-agent", "agent", "agent")
    agent = client(running, "lamp-agent", agent=True)
    await agent.connect()
    token = running.add_client("otto", "consumer", "operator")
    consumer = client(running, "otto", password=None, token=token)
    await consumer.connect()
    try:
        assert await agent.register(lamp_td()) == {"id": LAMP, "created": True}
        agent.report_property(LAMP, "brightness", 12)

        values = consumer.observe_property(LAMP, "brightness")
        _, value = await asyncio.wait_for(anext(values), 5)
        assert value == 12  # the retained latest value

        async def serve():
            async for request in agent.requests():
                agent.answer(request, output=request["input"]["level"])
                return

        # subscribed yet or not, the agent gets the request (queued while it was away)
        server = asyncio.create_task(serve())
        response = await consumer.request("invokeaction", LAMP, "fade", {"level": 40})
        assert response["status"] in ("pending", "delivered")
        await asyncio.wait_for(server, 5)
        agent.report_property(LAMP, "brightness", 40)
        _topic, value = await asyncio.wait_for(anext(values), 5)
        assert value == 40
        await values.aclose()

        with pytest.raises(MqttError):
            await consumer.request("deletething", LAMP)
    finally:
        await agent.close()
        await consumer.close()


async def test_wrong_password_raises(running):
    running.add_client("lamp-agent", "agent", "agent")
    with pytest.raises(MqttError):
        await client(running, "lamp-agent", password="wrong").connect()


async def test_clients_past_fd_1024_connect_and_close_without_loop_errors(running):
    """paho runs on the asyncio loop (epoll), not on a select() thread each: past file
    descriptor 1024 nothing breaks, and closing leaves no callback on a closed socket."""
    errors = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda loop, context: errors.append(context))
    for number in range(3):
        running.add_client(f"agent-{number}", "agent", "agent")
    try:
        with contextlib.ExitStack() as held:
            for _ in range(1100):  # the clients' fds come after 1024
                held.enter_context(open("/dev/null"))
            clients = [client(running, f"agent-{number}") for number in range(3)]
            await asyncio.gather(*(c.connect() for c in clients))
            assert all(c._paho.socket().fileno() > 1024 for c in clients)
            things = [lamp_td(f"{LAMP}-{n}") for n in range(3)]
            created = await asyncio.gather(
                *(c.register(td) for c, td in zip(clients, things, strict=True))
            )
            assert [answer["created"] for answer in created] == [True] * 3
            await asyncio.gather(*(c.close() for c in clients))
            assert all(c._paho.socket() is None for c in clients)
            await asyncio.sleep(0)  # one pass of the loop: what the closes handed to it runs
    finally:
        loop.set_exception_handler(None)
    assert errors == []


async def test_an_agent_says_hello_on_connect_and_after_a_reconnect(running):
    """The hub holds an MQTT agent's requests until its hello (docs/mqtt.md): with the
    hub's fallback wait longer than the test, they arrive only because the client said
    hello, at connect and again after the server closed its connection."""
    running.add_client("lamp-agent", "agent", "agent")
    running.add_thing("lamp-agent", lamp_td())
    running.hub.nats.mqtt_hello_wait = 60.0
    token = running.add_client("otto", "consumer", "operator")
    consumer = client(running, "otto", password=None, token=token)
    await consumer.connect()
    agent = client(running, "lamp-agent", agent=True)
    try:
        await consumer.request("invokeaction", LAMP, "fade", {"level": 10})  # queued
        await agent.connect()
        requests = agent.requests()
        request = await asyncio.wait_for(anext(requests), 5)
        assert request["input"] == {"level": 10}
        agent.answer(request, output=10)
        await until(lambda: running.hub.twin.get_request(request["actionID"]).final)

        # The server closes the agent's connection (a kick: its login still holds), the
        # client reconnects by itself.
        running.hub.nats.eject(ejection.of_client("lamp-agent"), "a test")
        await until(lambda: not running.hub.router.connections_of("lamp-agent"))
        await consumer.request("invokeaction", LAMP, "fade", {"level": 20})
        request = await asyncio.wait_for(anext(requests), 10)
        assert request["input"] == {"level": 20}
    finally:
        await agent.close()
        await consumer.close()
