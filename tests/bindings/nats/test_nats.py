"""The NATS binding end to end: nats-py clients against the hub's managed nats-server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
from urllib.parse import quote

import nats
import pytest

from bindings.nats import subjects
from clients.errors import Forbidden, HubError
from tests.support.running import PASSWORD
from tests.waiting import until

from .conftest import LAMP, td

pytestmark = pytest.mark.timeout(90)

FAN = "urn:dev:ops:fan-1"


def test_subject_tokens():
    assert subjects.encode("urn:dev:ops:32473-lamp-1") == "urn:dev:ops:32473-lamp-1"
    token = subjects.encode("urn:a.b/c*>%d é")
    assert not set(token) & set(".*> /")
    assert subjects.decode(token) == "urn:a.b/c*>%d é"


async def test_agent_registers_and_reports_to_nats_and_sse_consumers(nats_hub, running):
    agent = await nats_hub.agent("lamp-agent")
    assert (await agent.register(td())) == {"id": LAMP, "created": True}
    consumer = await nats_hub.consumer("vera")
    seen: asyncio.Queue = asyncio.Queue()
    await consumer.observe(LAMP, seen.put, name="brightness")
    await consumer.flush()

    token = running.add_client("sse-viewer", "consumer", "viewer")
    path = "/things/" + quote(LAMP, safe="") + "/properties/brightness"
    async with running.session(token) as session:
        async with asyncio.timeout(5):
            response = await session.get(path, headers={"Accept": "text/event-stream"})
        assert response.status == 200
        await agent.report_property(LAMP, "brightness", 42)
        async with asyncio.timeout(5):
            note = await seen.get()
            data = None
            while data is None:
                line = (await response.content.readline()).decode().strip()
                if line.startswith("data:"):
                    data = json.loads(line[5:])
        response.close()
    assert note["operation"] == "observeproperty" and note["value"] == 42
    assert note["thingID"] == LAMP and note["name"] == "brightness"
    assert data == 42
    assert await consumer.read_property(LAMP, "brightness") == 42

    # The twin TD carries nats forms with the hub-namespace terms.
    twin = await consumer.read_thing(LAMP)
    forms = [f for f in twin["properties"]["brightness"]["forms"] if "nats:subject" in f]
    assert {"href": nats_hub.binding.forms.url} == {"href": forms[0]["href"]}
    assert any(f["nats:subject"] == subjects.twin(LAMP, "prop", "brightness") for f in forms)

    events: asyncio.Queue = asyncio.Queue()
    await consumer.observe(LAMP, events.put, kind="event", name="clicked")
    await consumer.flush()
    await agent.report_event(LAMP, "clicked")
    async with asyncio.timeout(5):
        assert (await events.get())["name"] == "clicked"


async def test_a_write_only_property_is_written_never_read(nats_hub):
    lamp = td()
    lamp["properties"]["pin"] = {"type": "string", "writeOnly": True, "forms": [{"href": "x"}]}
    agent = await nats_hub.agent("lamp-agent")
    await agent.register(lamp)
    await agent.report_property(LAMP, "brightness", 7)
    consumer = await nats_hub.consumer("max", role="manager")
    await until(lambda: "brightness" in nats_hub.hub.twin.read_all_properties(LAMP))

    twin = await consumer.read_thing(LAMP)
    ops = [f["op"] for f in twin["properties"]["pin"]["forms"] if "nats:subject" in f]
    assert ops and all(op == "writeproperty" for op in ops), ops
    assert any(f.get("op") == "readproperty" for f in twin["properties"]["brightness"]["forms"])
    with pytest.raises(HubError) as refused:
        await consumer.read_property(LAMP, "pin")
    assert refused.value.status == 405
    with pytest.raises(HubError) as refused:
        await consumer.request("readmultipleproperties", LAMP, input=["brightness", "pin"])
    assert refused.value.status == 405
    assert (await consumer.request("readallproperties", LAMP))["output"] == {"brightness": 7}
    accepted = await consumer.write_property(LAMP, "pin", "1234")
    assert accepted["status"] == "delivered"
    async with asyncio.timeout(5):
        request = await agent.requests.get()
    assert (request["operation"], request["name"], request["input"]) == (
        "writeproperty",
        "pin",
        "1234",
    )


async def test_requests_queue_while_the_agent_is_offline(nats_hub):
    agent = await nats_hub.agent("lamp-agent")
    await agent.register(td())
    await agent.close()
    await until(lambda: "lamp-agent" not in nats_hub.binding._peers)

    operator = await nats_hub.consumer("otto", role="operator")
    response = await operator.invoke_action(LAMP, "fade", 30)
    assert response["status"] == "pending"
    action_id = response["actionID"]

    agent = await nats_hub.agent("lamp-agent")  # its hello delivers the queue
    async with asyncio.timeout(5):
        request = await agent.requests.get()
    assert request["operation"] == "invokeaction" and request["input"] == 30
    assert request["actionID"] == action_id and request["senderID"] == "otto"
    await agent.answer(request, output=30)
    async with asyncio.timeout(5):
        while True:
            update = await operator.responses.get()
            if update.get("status") == "completed":
                break
    assert update["actionID"] == action_id and update["output"] == 30

    # Online now: the next request goes straight through and the handler answers it.
    agent.on_request = lambda message: message["input"] * 2
    response = await operator.invoke_action(LAMP, "fade", 21)
    assert response["status"] == "delivered"
    async with asyncio.timeout(5):
        while (update := await operator.responses.get()).get("status") != "completed":
            pass
    assert update["output"] == 42


async def test_later_responses_reach_every_connection_of_the_client(nats_hub):
    agent = await nats_hub.agent("lamp-agent")
    await agent.register(td())
    agent.on_request = lambda message: message["input"] + 1
    asker = await nats_hub.consumer("otto", role="operator")
    watcher = await nats_hub.consumer("otto", role="operator")  # a second connection
    accepted = await asker.invoke_action(LAMP, "fade", 41)
    async with asyncio.timeout(5):
        while (update := await watcher.responses.get()).get("status") != "completed":
            pass
    assert update["actionID"] == accepted["actionID"] and update["output"] == 42


async def test_an_agent_logged_in_with_a_token_goes_offline_when_it_leaves(nats_hub):
    # The server's disconnect event names a token login's user "[REDACTED]": the hub
    # must find the agent from its own record of the login.
    nats_hub.add("lamp-agent", "agent", "agent")
    token = nats_hub.hub.auth.new_token("lamp-agent")["token"]
    agent = await nats_hub.agent("lamp-agent", token=token)
    await agent.register(td())
    await until(lambda: nats_hub.hub.twin.presence(LAMP)["online"])
    await agent.close()
    await until(lambda: not nats_hub.hub.twin.presence(LAMP)["online"])
    assert "lamp-agent" not in nats_hub.binding._peers


async def test_refused_logins(nats_hub):
    hub = nats_hub.hub
    nats_hub.add("vera")
    for user, password in (("vera", "wrong password"), ("nobody", PASSWORD)):
        with pytest.raises(nats.errors.Error, match="'Authorization Violation'"):
            await nats.connect(
                nats_hub.url,
                user=user,
                password=password,
                tls=ssl.create_default_context(cadata=nats_hub.ca_pem.decode()),
                allow_reconnect=False,
                connect_timeout=3,
                max_reconnect_attempts=0,
            )
    # A token works in the token field and in the password field.
    token = hub.auth.new_token("vera")["token"]
    consumer = await nats_hub.consumer("vera", token=token)
    assert consumer.nc.is_connected

    # A client certificate from the hub CA on the mutual-TLS WebSocket listener; refused
    # once revoked.
    nats_hub.add("cert-agent", "agent", "agent")
    issued, key = hub.ca.generate_for("cert-agent")
    home = hub.config.home
    (home / "c.pem").write_bytes(issued.cert_pem)
    (home / "c.key").write_bytes(key)
    tls = ssl.create_default_context(cadata=nats_hub.ca_pem.decode())
    tls.load_cert_chain(home / "c.pem", home / "c.key")
    nc = await nats.connect(nats_hub.ws_url, tls=tls, allow_reconnect=False, connect_timeout=3)
    await nc.close()
    hub.ca.revoke(issued.serial)
    with pytest.raises(nats.errors.Error, match="'Authorization Violation'"):
        await nats.connect(
            nats_hub.ws_url,
            tls=tls,
            allow_reconnect=False,
            connect_timeout=3,
            max_reconnect_attempts=0,
        )


async def test_server_permissions_refuse_other_agents_and_viewer_requests(nats_hub):
    owner = await nats_hub.agent("lamp-agent")
    await owner.register(td())
    intruder = await nats_hub.agent("fan-agent")
    await intruder.nc.publish(
        subjects.agent("lamp-agent", subjects.PROP, LAMP, "brightness"),
        json.dumps(
            {
                "messageType": "notification",
                "operation": "observeproperty",
                "thingID": LAMP,
                "name": "brightness",
                "value": 1,
            }
        ).encode(),
    )
    await intruder.nc.flush()
    await until(lambda: any("permissions violation" in e.lower() for e in intruder.errors))

    # Under its own subject the server lets it through; the router refuses (not its Thing).
    await intruder.report_property(LAMP, "brightness", 2)
    async with asyncio.timeout(5):
        refusal = await _next_refusal(intruder)
    assert refusal["error"]["status"] == 403

    viewer = await nats_hub.consumer("vera")
    # the server drops the publish and reports the violation: the client raises at once
    with pytest.raises(Forbidden, match="may not publish"):
        await viewer.invoke_action(LAMP, "fade", 10, timeout=5)
    await until(lambda: any("permissions violation" in e.lower() for e in viewer.errors))
    assert await viewer.read_property(LAMP, "brightness") is None  # reads are allowed
    assert nats_hub.hub.twin.read_property(LAMP, "brightness").get("value") is None


async def _next_refusal(agent):
    sub = await agent.nc.subscribe(subjects.agent(agent.client_id, subjects.REQ))
    try:
        msg = await sub.next_msg(timeout=5)
    finally:
        await sub.unsubscribe()
    return json.loads(msg.data)


async def test_malformed_and_mismatched_messages_are_refused(nats_hub):
    agent = await nats_hub.agent("lamp-agent")
    await agent.register(td())
    reply = await agent.nc.request(
        subjects.agent("lamp-agent", subjects.PROP, LAMP, "brightness"), b"not json", timeout=5
    )
    assert json.loads(reply.data)["error"]["status"] == 400
    wrong = {
        "messageType": "notification",
        "operation": "observeproperty",
        "thingID": FAN,  # the subject says LAMP
        "name": "brightness",
        "value": 3,
    }
    reply = await agent.nc.request(
        subjects.agent("lamp-agent", subjects.PROP, LAMP, "brightness"),
        json.dumps(wrong).encode(),
        timeout=5,
    )
    assert "thingID" in json.loads(reply.data)["error"]["detail"]
    assert nats_hub.binding.refused == 2

    consumer = await nats_hub.consumer("vera")
    with pytest.raises(HubError) as refused:
        await consumer._request(
            subjects.client_request("vera", "readproperty"),
            {"messageType": "request", "operation": "readthing", "thingID": LAMP},
            5,
        )
    assert refused.value.status == 400


async def test_the_hub_recovers_when_nats_server_is_killed(nats_hub):
    agent = await nats_hub.agent("lamp-agent")
    await agent.register(td())
    operator = await nats_hub.consumer("otto", role="operator")
    seen: asyncio.Queue = asyncio.Queue()
    await operator.observe(LAMP, seen.put, name="brightness")

    server = nats_hub.binding.server
    old_pid = server.process.pid
    os.kill(old_pid, signal.SIGKILL)
    await until(lambda: server.restarts >= 1 and server.process.pid != old_pid, 15)
    await until(lambda: agent.nc.is_connected and operator.nc.is_connected, 15)
    await until(lambda: "lamp-agent" in nats_hub.binding._peers, 10)  # hello again

    await agent.report_property(LAMP, "brightness", 77)
    async with asyncio.timeout(10):
        while (await seen.get())["value"] != 77:
            pass
    agent.on_request = lambda message: "done"
    response = await operator.invoke_action(LAMP, "fade", 5)
    assert response["status"] == "delivered"
