"""The MQTT binding end to end: paho-mqtt clients, the embedded broker, the real hub."""

from __future__ import annotations

import json
import logging

import orjson

from bindings.mqtt import topics
from tests.support.http import url
from tests.support.mqtt import Paho
from tests.support.running import PASSWORD
from tests.support.sse import stream
from tests.waiting import until

from .conftest import TD, THING, agent_with_lamp, running_mqtt_hub

LAMP = topics.encode(THING)
PROP = f"wot/twin/{LAMP}/prop/level"
EVENT = f"wot/twin/{LAMP}/event/overheated"
BAD_CREDENTIALS = 135  # CONNACK 5 "not authorized" (nats-server; docs/mqtt.md)


# -- reports, consumers on MQTT and on SSE ---------------------------------------------------


async def test_agent_reports_reach_an_mqtt_and_an_sse_consumer(mqtt_hub):
    agent = await agent_with_lamp(mqtt_hub)
    token = mqtt_hub.add_client("vera", "consumer", "viewer")
    viewer = mqtt_hub.paho("vera")
    assert await viewer.connect() == 0
    assert await viewer.subscribe(PROP, 0) == 0
    assert await viewer.subscribe(EVENT, 0) == 0
    async with mqtt_hub.session(token) as session:
        async with stream(session, url(THING, "properties", "level")) as sse:
            agent.publish(topics.agent_topic("lamp-agent", "prop", THING, "level"), {"value": 42})
            agent.publish(
                topics.agent_topic("lamp-agent", "event", THING, "overheated"), {"value": 81.5}
            )
            _, payload, retain = await viewer.next(PROP)
            assert (orjson.loads(payload), retain) == (42, False)
            _topic, payload, _ = await viewer.next(EVENT)
            assert orjson.loads(payload) == 81.5
            assert (await sse.next())["data"] == 42
        async with session.get(url(THING, "properties", "level")) as response:
            assert await response.json() == 42


async def test_a_fresh_subscriber_reads_the_retained_value(mqtt_hub):
    agent = await agent_with_lamp(mqtt_hub)
    agent.publish(topics.agent_topic("lamp-agent", "prop", THING, "level"), {"value": 7})
    await until(lambda: mqtt_hub.hub.twin.read_property(THING, "level").get("value") == 7)
    mqtt_hub.add_client("vera", "consumer", "viewer")
    reader = mqtt_hub.paho("vera")
    assert await reader.connect() == 0
    assert await reader.subscribe(PROP, 1) == 1
    _topic, payload, retain = await reader.next(PROP)
    assert (orjson.loads(payload), retain) == (7, True)
    # the twin TD, retained as well, with mqtts forms
    assert await reader.subscribe(f"wot/twin/{LAMP}/td", 0) == 0
    _, payload, retain = await reader.next(f"wot/twin/{LAMP}/td")
    td = orjson.loads(payload)
    assert retain and td["id"] == THING
    form = next(f for f in td["properties"]["level"]["forms"] if f["href"].startswith("mqtts://"))
    assert form["mqv:filter"] == PROP and form["mqv:retain"] is True
    assert form["href"] == f"mqtts://127.0.0.1:{mqtt_hub.mqtt.port}/{PROP}"
    assert "readproperty" in form["op"] and "observeproperty" in form["op"]


async def test_twin_td_over_http_carries_mqtts_forms(
    mqtt_hub,
):
    await agent_with_lamp(mqtt_hub)
    token = mqtt_hub.add_client("vera", "consumer", "viewer")
    async with mqtt_hub.session(token) as session, session.get(url(THING)) as response:
        td = await response.json()
    hrefs = [f["href"] for f in td["events"]["overheated"]["forms"]]
    assert f"mqtts://127.0.0.1:{mqtt_hub.mqtt.port}/{EVENT}" in hrefs
    assert any(f.get("mqv:filter") == f"wot/twin/{LAMP}/prop/+" for f in td["forms"])


# -- requests: the offline queue, consumers over MQTT --------------------------------------------


async def test_queued_request_reaches_the_agent_when_it_reconnects(mqtt_hub):
    agent = await agent_with_lamp(mqtt_hub)
    agent.close()
    await until(lambda: not mqtt_hub.hub.router.connections_of("lamp-agent"))
    token = mqtt_hub.add_client("otto", "consumer", "operator")
    async with mqtt_hub.session(token) as session:
        fade = url(THING, "actions", "fade")
        # Offline: take the queued status (201) rather than wait for the output.
        async with session.post(fade, json=30, headers={"Prefer": "respond-async"}) as response:
            assert response.status == 201, await response.text()
            status = await response.json()
        assert status["status"] == "pending"

        again = mqtt_hub.paho("lamp-agent")
        assert await again.connect() == 0
        assert await again.subscribe("wot/agent/lamp-agent/req") == 1
        _, payload, _ = await again.next("wot/agent/lamp-agent/req")
        request = orjson.loads(payload)
        assert (request["operation"], request["name"], request["input"]) == (
            "invokeaction",
            "fade",
            30,
        )
        assert request["actionID"] == status["id"] and request["senderID"] == "otto"
        again.publish(
            "wot/agent/lamp-agent/resp",
            {
                "correlationID": request["correlationID"],
                "operation": "invokeaction",
                "thingID": THING,
                "name": "fade",
                "status": "completed",
                "output": 30,
            },
        )
        await until(lambda: mqtt_hub.hub.twin.get_request(status["id"]).final)
        async with session.get(status["href"]) as response:
            done = await response.json()
        assert (done["status"], done["output"]) == ("completed", 30)


async def test_consumer_request_over_mqtt_gets_its_responses(mqtt_hub):
    agent = await agent_with_lamp(mqtt_hub)
    assert await agent.subscribe("wot/agent/lamp-agent/req") == 1
    mqtt_hub.add_client("otto", "consumer", "operator")
    consumer = mqtt_hub.paho("otto")
    assert await consumer.connect() == 0
    assert await consumer.subscribe("wot/client/otto/resp") == 1
    consumer.publish(
        "wot/client/otto/req",
        {
            "messageType": "request",
            "operation": "invokeaction",
            "thingID": THING,
            "name": "fade",
            "input": 55,
            "correlationID": "c-1",
        },
    )
    _, payload, _ = await consumer.next("wot/client/otto/resp")
    first = orjson.loads(payload)
    assert first["correlationID"] == "c-1" and first["status"] == "delivered"
    _, payload, _ = await agent.next("wot/agent/lamp-agent/req")
    request = orjson.loads(payload)
    agent.publish(
        "wot/agent/lamp-agent/resp",
        {
            "correlationID": request["correlationID"],
            "operation": "invokeaction",
            "thingID": THING,
            "name": "fade",
            "status": "completed",
            "output": 55,
        },
    )
    _, payload, _ = await consumer.next("wot/client/otto/resp")
    last = orjson.loads(payload)
    assert (last["correlationID"], last["status"], last["output"]) == ("c-1", "completed", 55)
    # a read is answered from the twin
    consumer.publish(
        "wot/client/otto/req",
        {
            "messageType": "request",
            "operation": "readthing",
            "thingID": THING,
            "correlationID": "c-2",
        },
    )
    _, payload, _ = await consumer.next("wot/client/otto/resp")
    assert orjson.loads(payload)["output"]["id"] == THING


# -- refusals ------------------------------------------------------------------------------------


async def test_wrong_password_and_unknown_client_are_refused(mqtt_hub):
    mqtt_hub.add_agent("lamp-agent")
    wrong = mqtt_hub.paho("lamp-agent", password="not it")
    # paho reports MQTT 3.1.1 CONNACK codes as MQTT 5 reason codes: 5 -> 135, 2 -> 133
    assert await wrong.connect() == BAD_CREDENTIALS
    nobody = mqtt_hub.paho("nobody", password="whatever")
    assert await nobody.connect() == BAD_CREDENTIALS


async def test_only_the_clients_own_mqtt_ids_are_accepted_and_refusals_kick_nobody(mqtt_hub):
    agent = await agent_with_lamp(mqtt_hub)
    mqtt_hub.add_client("vera", "consumer", "viewer")
    # vera's own id and ids under it connect as vera (docs/mqtt.md).
    for mqtt_id in ("vera", "vera/2"):
        viewer = mqtt_hub.paho(mqtt_id, username="vera")
        assert await viewer.connect() == 0, mqtt_id
        assert await viewer.subscribe(PROP, 1) == 1
    # Any other id is refused: paho's empty one (the server makes one up), mosquitto_sub's
    # own kind, and another client's id, which would take over its session; the agent stays.
    for mqtt_id in ("", "mosq-3f9a1c", "veraX", "lamp-agent", "lamp-agent/x"):
        thief = mqtt_hub.paho(mqtt_id, username="vera")
        assert await thief.connect() == BAD_CREDENTIALS, mqtt_id
    agent.publish(topics.agent_topic("lamp-agent", "prop", THING, "level"), {"value": 9})
    _, payload, _ = await viewer.next(PROP)
    assert orjson.loads(payload) == 9
    assert not agent.disconnected.is_set()


async def test_a_refused_connection_does_not_kick_the_real_client(mqtt_hub):
    agent = await agent_with_lamp(mqtt_hub)
    intruder = mqtt_hub.paho("lamp-agent", password="guess")
    assert await intruder.connect() == BAD_CREDENTIALS
    agent.publish(topics.agent_topic("lamp-agent", "prop", THING, "level"), {"value": 3})
    await until(lambda: mqtt_hub.hub.twin.read_property(THING, "level").get("value") == 3)
    assert not agent.disconnected.is_set()


async def test_a_token_authenticates(mqtt_hub):
    token = mqtt_hub.add_client("vera", "consumer", "viewer")
    by_token = mqtt_hub.paho("vera", password=token)
    assert await by_token.connect() == 0


async def test_a_client_certificate_authenticates_and_revocation_refuses(mqtt_cert_hub):
    mqtt_cert_hub.add_agent("cert-agent")
    certfile, keyfile = mqtt_cert_hub.certificate("cert-agent")
    by_cert = mqtt_cert_hub.paho(
        "cert-agent", username=None, password=None, certfile=certfile, keyfile=keyfile
    )
    assert await by_cert.connect() == 0
    mqtt_cert_hub.hub.ca.revoke_client("cert-agent")
    revoked = mqtt_cert_hub.paho(
        "cert-agent/2", username=None, password=None, certfile=certfile, keyfile=keyfile
    )
    assert await revoked.connect() == BAD_CREDENTIALS


async def test_without_a_certificate_the_require_listener_refuses_at_the_handshake(
    mqtt_cert_hub,
):
    mqtt_cert_hub.add_agent("lamp-agent")
    no_cert = mqtt_cert_hub.paho("lamp-agent")
    no_cert.client.connect_async("127.0.0.1", mqtt_cert_hub.mqtt.port)
    no_cert.client.loop_start()
    await until(no_cert.disconnected.is_set, 5)
    assert no_cert.connack is None
    assert mqtt_cert_hub.mqtt.listeners()["mqtts"]["client_certificate"] == "require"


async def test_agent_cannot_report_for_another_agents_thing(mqtt_hub):
    await agent_with_lamp(mqtt_hub)
    mqtt_hub.add_agent("mallory")
    mallory = mqtt_hub.paho("mallory")
    assert await mallory.connect() == 0
    assert await mallory.subscribe("wot/client/mallory/resp") == 1
    # under its own topics: the router refuses (not its Thing)
    mallory.publish(topics.agent_topic("mallory", "prop", THING, "level"), {"value": 99})
    _, payload, _ = await mallory.next("wot/client/mallory/resp")
    assert orjson.loads(payload)["error"]["status"] == 403
    # under the owner's topics: nats-server drops it and logs it, no 403 (docs/mqtt.md)
    owners = topics.agent_topic("lamp-agent", "prop", THING, "level")
    mallory.publish(owners, {"value": 98})
    await publish_violation_logged(mqtt_hub, owners)
    # barrier: its next report is answered, and nothing came before that answer
    mallory.publish(topics.agent_topic("mallory", "prop", THING, "level"), {"value": 97})
    assert await mallory.before("wot/client/mallory/resp", is_error(403)) == []
    assert "value" not in mqtt_hub.hub.twin.read_property(THING, "level")
    assert not mallory.disconnected.is_set()
    # nor may it listen to the owner's requests or to the twins
    assert await mallory.subscribe("wot/agent/lamp-agent/req") == 0x80
    assert await mallory.subscribe(f"wot/twin/{LAMP}/prop/+") == 0x80


async def test_viewer_requests_are_refused(mqtt_hub):
    agent = await agent_with_lamp(mqtt_hub)
    assert await agent.subscribe("wot/agent/lamp-agent/req") == 1
    mqtt_hub.add_client("vera", "consumer", "viewer")
    viewer = mqtt_hub.paho("vera")
    assert await viewer.connect() == 0
    assert await viewer.subscribe("wot/client/vera/resp") == 1
    viewer.publish(
        "wot/client/vera/req",
        {
            "messageType": "request",
            "operation": "invokeaction",
            "thingID": THING,
            "name": "fade",
            "input": 1,
            "correlationID": "v1",
        },
    )
    _, payload, _ = await viewer.next("wot/client/vera/resp")
    refused = orjson.loads(payload)
    assert refused["correlationID"] == "v1" and refused["error"]["status"] == 403
    # another client's request topic, and the agent's topics, are not the viewer's:
    # nats-server drops those publishes and logs them, no 403 comes (docs/mqtt.md)
    viewer.publish(
        "wot/client/otto/req",
        {"messageType": "request", "operation": "readthing", "thingID": THING},
    )
    viewer.publish("wot/agent/lamp-agent/resp", {"correlationID": "x"})
    await publish_violation_logged(mqtt_hub, "wot/client/otto/req")
    await publish_violation_logged(mqtt_hub, "wot/agent/lamp-agent/resp")
    assert not viewer.disconnected.is_set()
    # barrier: an operator's request reaches the agent, and nothing of the viewer's before it
    operator = await operator_connected(mqtt_hub)
    operator.publish("wot/client/otto/req", fade_request(77, "o1"))
    before = await agent.before(
        "wot/agent/lamp-agent/req", lambda p: orjson.loads(p)["input"] == 77
    )
    assert before == []


def is_error(status: int):
    return lambda payload: orjson.loads(payload).get("error", {}).get("status") == status


async def publish_violation_logged(mqtt_hub, topic: str) -> None:
    """nats-server logged that it dropped a publish on ``topic`` (its log file)."""
    log_path = mqtt_hub.hub.nats.server.log_path
    line = "Publish Violation"
    subject = topic.replace("/", ".")

    def logged() -> bool:
        text = log_path.read_text()
        return any(line in row and f'Subject "{subject}"' in row for row in text.splitlines())

    await until(logged)


def fade_request(level: int, correlation_id: str) -> dict:
    return {
        "messageType": "request",
        "operation": "invokeaction",
        "thingID": THING,
        "name": "fade",
        "input": level,
        "correlationID": correlation_id,
    }


async def operator_connected(mqtt_hub):
    """Otto, an operator, connected and subscribed to his responses."""
    mqtt_hub.add_client("otto", "consumer", "operator")
    operator = mqtt_hub.paho("otto")
    assert await operator.connect() == 0
    assert await operator.subscribe("wot/client/otto/resp") == 1
    return operator


async def test_viewer_wildcard_subscription_gets_only_permitted_data(mqtt_hub):
    agent = await agent_with_lamp(mqtt_hub)
    assert await agent.subscribe("wot/agent/lamp-agent/req") == 1
    mqtt_hub.add_client("vera", "consumer", "viewer")
    viewer = mqtt_hub.paho("vera")
    assert await viewer.connect() == 0
    # "#" covers more than a viewer may see: refused whole (docs/mqtt.md)
    assert await viewer.subscribe("#", 0) == 0x80
    assert await viewer.subscribe("wot/twin/#", 0) == 0
    operator = await operator_connected(mqtt_hub)
    operator.publish("wot/client/otto/req", fade_request(5, "o1"))
    _, _payload, _ = await agent.next("wot/agent/lamp-agent/req")
    level = topics.agent_topic("lamp-agent", "prop", THING, "level")
    agent.publish(level, {"value": 5})
    await operator.next("wot/client/otto/resp")
    # barrier: the next value; everything the viewer saw before it was its own to see
    agent.publish(level, {"value": 6})
    seen = await viewer.before(PROP, lambda payload: orjson.loads(payload) == 6)
    assert (PROP, b"5") in [(topic, payload) for topic, payload, _ in seen]
    for topic, _, _ in seen:
        assert topic.startswith("wot/twin/") or topic == "wot/client/vera/resp", topic


def refusals(caplog) -> list[str]:
    """The hub's log lines for refused messages (bindings/common/receive.py)."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "wothub.nats" and "refused a message from" in record.getMessage()
    ]


async def test_malformed_oversized_and_garbage_loop(mqtt_hub, caplog):
    caplog.set_level(logging.INFO, "wothub.nats")
    agent = await agent_with_lamp(mqtt_hub)
    bad_topic = topics.agent_topic("lamp-agent", "prop", THING, "level")
    agent.publish(bad_topic, b"{not json")
    _, payload, _ = await agent.next("wot/client/lamp-agent/resp")
    assert orjson.loads(payload)["error"]["status"] == 400
    agent.publish(bad_topic, orjson.dumps({"operation": [], "value": 1}))  # not a string
    _, payload, _ = await agent.next("wot/client/lamp-agent/resp")
    error = orjson.loads(payload)["error"]
    assert error["status"] == 400 and "operation" in error["detail"]
    agent.publish(bad_topic, orjson.dumps({"value": "x" * (70 * 1024)}))
    _, payload, _ = await agent.next("wot/client/lamp-agent/resp")
    too_big = orjson.loads(payload)["error"]
    assert too_big["status"] == 413
    assert not agent.disconnected.is_set()
    # each refusal logged with its client and the reason its error response gives
    logged = refusals(caplog)
    assert len(logged) == 3, logged
    assert all(line.startswith("refused a message from lamp-agent: ") for line in logged)
    assert "JSON" in logged[0] and "operation" in logged[1]
    assert logged[1].endswith(error["detail"]) and logged[2].endswith(too_big["detail"])

    # over nats-server's max_payload (1 MiB): cut off before it is read, logged by the
    # broker (the hub never sees it)
    huge = mqtt_hub.paho("lamp-agent/huge")
    assert await huge.connect() == 0
    huge.publish(bad_topic, b"x" * (1100 * 1024))
    await until(huge.disconnected.is_set)
    server_log = mqtt_hub.hub.nats.server.directory / "nats-server.log"

    def payload_refusal_logged() -> bool:
        lines = server_log.read_text().splitlines()
        return any('"lamp-agent/huge"' in x and "maximum payload exceeded" in x for x in lines)

    await until(payload_refusal_logged)

    # garbage in a loop: each refused (400) and logged, the connection stays (docs/mqtt.md)
    for _ in range(25):
        agent.publish(bad_topic, b"\xff garbage", qos=0)
    for _ in range(25):
        _, payload, _ = await agent.next("wot/client/lamp-agent/resp")
        assert orjson.loads(payload)["error"]["status"] == 400
    assert not agent.disconnected.is_set()
    assert len(refusals(caplog)) == 3 + 25

    # the hub and the broker carry on
    fresh = mqtt_hub.paho("lamp-agent/again")
    assert await fresh.connect() == 0
    fresh.publish(bad_topic, {"value": 11})
    await until(lambda: mqtt_hub.hub.twin.read_property(THING, "level").get("value") == 11)


async def test_no_plain_port_by_default_and_no_mqtt_without_tls_on_the_tls_port(mqtt_hub):
    listeners = mqtt_hub.mqtt.listeners()
    assert listeners["mqtts"]["port"] == mqtt_hub.mqtt.port
    assert listeners["mqtts"]["url"] == f"mqtts://127.0.0.1:{mqtt_hub.mqtt.port}"
    assert "mqtt" not in listeners
    plain = mqtt_hub.paho("x", tls=False)
    plain.client.connect_async("127.0.0.1", mqtt_hub.mqtt.port)
    plain.client.loop_start()
    await until(plain.disconnected.is_set, 5)  # the TLS handshake fails at once
    assert plain.connack is None


async def test_a_plain_port_when_configured_serves_mqtt_without_tls(tmp_path):
    async with running_mqtt_hub(tmp_path, mqtt_plain_port=0) as mqtt_hub:
        listeners = mqtt_hub.mqtt.listeners()
        port = mqtt_hub.mqtt.port
        # instead of TLS: nats-server has one MQTT listener (docs/mqtt.md)
        assert listeners == {
            "mqtt": {"host": "127.0.0.1", "port": port, "url": f"mqtt://127.0.0.1:{port}"}
        }
        mqtt_hub.add_agent("lamp-agent")
        agent = Paho(port, b"", "lamp-agent", username="lamp-agent", password=PASSWORD, tls=False)
        mqtt_hub.clients.append(agent)
        assert await agent.connect() == 0
        assert await agent.subscribe("wot/client/lamp-agent/resp") == 1
        agent.publish(topics.agent_topic("lamp-agent", "td", THING), {"input": TD})
        _, payload, _ = await agent.next("wot/client/lamp-agent/resp")
        assert orjson.loads(payload)["output"]["id"] == THING
        # the same credentials rules as on the TLS port
        wrong = Paho(port, b"", "lamp-agent/x", username="lamp-agent", password="no", tls=False)
        mqtt_hub.clients.append(wrong)
        assert await wrong.connect() == BAD_CREDENTIALS


# -- write-only properties -------------------------------------------------------------------


async def test_a_write_only_property_is_written_never_read(mqtt_hub):
    td = json.loads(json.dumps(TD))
    td["properties"]["pin"] = {"type": "string", "writeOnly": True, "forms": [{"href": "x"}]}
    agent = await agent_with_lamp(mqtt_hub, td=td)
    assert await agent.subscribe("wot/agent/lamp-agent/req") == 1
    mqtt_hub.add_client("max", "consumer", "manager")
    consumer = mqtt_hub.paho("max")
    assert await consumer.connect() == 0
    assert await consumer.subscribe("wot/client/max/resp") == 1
    pin = f"wot/twin/{LAMP}/prop/pin"
    assert await consumer.subscribe(pin, 1) == 1
    assert await consumer.subscribe(PROP, 1) == 1

    def ask(correlation_id, operation, **fields):
        request = {"messageType": "request", "operation": operation, "thingID": THING}
        consumer.publish(
            "wot/client/max/req", {**request, "correlationID": correlation_id, **fields}
        )

    async def answer(correlation_id):
        while True:
            _, payload, _ = await consumer.next("wot/client/max/resp")
            response = orjson.loads(payload)
            if response["correlationID"] == correlation_id:
                return response

    ask("r-1", "readthing")
    twin = (await answer("r-1"))["output"]
    assert not [f for f in twin["properties"]["pin"]["forms"] if f["href"].startswith("mqtt")]
    assert [f for f in twin["properties"]["level"]["forms"] if f["href"].startswith("mqtt")]
    ask("r-2", "readproperty", name="pin")
    assert (await answer("r-2"))["error"]["status"] == 405
    ask("r-3", "readmultipleproperties", input=["level", "pin"])
    assert (await answer("r-3"))["error"]["status"] == 405
    ask("r-4", "writeproperty", name="pin", input="1234")
    assert (await answer("r-4"))["status"] == "delivered"
    _, payload, _ = await agent.next("wot/agent/lamp-agent/req")
    assert (orjson.loads(payload)["name"], orjson.loads(payload)["input"]) == ("pin", "1234")

    # A device's report of it is refused, so no value is ever published or retained: the
    # level report after it (a barrier) arrives, the pin never did.
    agent.publish(topics.agent_topic("lamp-agent", "prop", THING, "pin"), {"value": "1234"})
    agent.publish(topics.agent_topic("lamp-agent", "prop", THING, "level"), {"value": 5})
    seen = []
    while not seen or seen[-1][0] != PROP:
        seen.append(await consumer.next())
    assert [topic for topic, _, _ in seen if topic == pin] == []


async def test_a_response_reaches_every_connection_of_the_client_that_listens_for_it(mqtt_hub):
    # mosquitto_sub in one terminal, mosquitto_pub in another: the answer to the second
    # connection's request arrives on the first.
    await agent_with_lamp(mqtt_hub)
    mqtt_hub.add_client("otto", "consumer", "operator")
    watcher, asker = mqtt_hub.paho("otto/watch"), mqtt_hub.paho("otto/ask")
    assert await watcher.connect() == 0 and await asker.connect() == 0
    assert await watcher.subscribe("wot/client/otto/resp") == 1
    request = {"messageType": "request", "operation": "readthing", "thingID": THING}
    asker.publish("wot/client/otto/req", {**request, "correlationID": "from-the-other"})
    _, payload, _ = await watcher.next("wot/client/otto/resp")
    answer = orjson.loads(payload)
    assert answer["correlationID"] == "from-the-other" and answer["output"]["id"] == THING


async def test_an_agents_invalid_report_is_answered_on_its_response_topic(mqtt_hub):
    agent = await agent_with_lamp(mqtt_hub)  # subscribed to wot/client/lamp-agent/resp
    agent.publish(topics.agent_topic("lamp-agent", "prop", THING, "level"), {"value": 300})
    _, payload, _ = await agent.next("wot/client/lamp-agent/resp")
    error = orjson.loads(payload)["error"]
    assert error["status"] == 400 and "level" in json.dumps(error)
    assert "value" not in mqtt_hub.hub.twin.read_property(THING, "level")
