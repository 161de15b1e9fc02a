"""The mosquitto command-line clients (mosquitto_pub, mosquitto_sub) against the hub's
broker: what a person trying the hub from a shell would do. The project's setup
installs them (Makefile, system packages); where they are missing the tests say so."""

from __future__ import annotations

import asyncio
import json

import pytest

from bindings.mqtt import topics
from tests.requirements import require_command
from tests.support.running import PASSWORD
from tests.waiting import until

from .conftest import TD, THING


@pytest.fixture(autouse=True)
def _needs_mosquitto_clients():
    for command in ("mosquitto_pub", "mosquitto_sub"):
        require_command(command, package="mosquitto-clients")


def common(mqtt_hub, ca_file, user: str, password: str = PASSWORD) -> list[str]:
    return [
        "-h",
        "127.0.0.1",
        "-p",
        str(mqtt_hub.mqtt.port),
        "--cafile",
        str(ca_file),
        "-u",
        user,
        "-P",
        password,
        "-V",
        "mqttv311",
    ]


async def run(*argv: str, timeout: float = 20.0) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    return process.returncode, out.decode(), err.decode()


@pytest.fixture
def ca_file(mqtt_hub, tmp_path):
    path = tmp_path / "ca.pem"
    path.write_bytes(mqtt_hub.hub.ca.ca_cert_pem)
    return path


async def test_an_agent_on_mosquitto_pub_and_a_consumer_on_mosquitto_sub(mqtt_hub, ca_file):
    mqtt_hub.add_agent("lamp-agent")
    mqtt_hub.add_client("vera", "consumer", "viewer")
    td_topic = topics.agent_topic("lamp-agent", "td", THING)
    register = {"messageType": "request", "operation": "updatething", "input": TD}
    code, _, err = await run(
        "mosquitto_pub",
        *common(mqtt_hub, ca_file, "lamp-agent"),
        "-i",
        "lamp-agent",
        "-t",
        td_topic,
        "-m",
        json.dumps(register),
    )
    assert code == 0, err
    await until(lambda: mqtt_hub.hub.twin.thing(THING) is not None)

    # The consumer waits for two messages: the retained value on subscribe, then a new one.
    value_topic = topics.twin_property(THING, "level")
    mqtt_hub.hub.twin.report_property(THING, "level", 10)
    consumer = await asyncio.create_subprocess_exec(
        "mosquitto_sub",
        *common(mqtt_hub, ca_file, "vera"),
        "-i",
        "vera/shell",
        "-t",
        value_topic,
        "-C",
        "2",
        "-v",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(20):
            # the retained value: it has subscribed
            assert await consumer.stdout.readline() == f"{value_topic} 10\n".encode()
    except BaseException:
        consumer.kill()
        await consumer.wait()
        raise
    code, _, err = await run(
        "mosquitto_pub",
        *common(mqtt_hub, ca_file, "lamp-agent"),
        "-i",
        "lamp-agent",
        "-t",
        topics.agent_topic("lamp-agent", "prop", THING, "level"),
        "-m",
        '{"value": 55}',
    )
    assert code == 0, err
    async with asyncio.timeout(20):
        out, err = await consumer.communicate()
    assert consumer.returncode == 0, err
    assert out.decode().splitlines() == [f"{value_topic} 55"]


async def test_mosquitto_clients_with_a_wrong_password_are_refused(mqtt_hub, ca_file):
    mqtt_hub.add_client("vera", "consumer", "viewer")
    code, _, err = await run(
        "mosquitto_sub",
        *common(mqtt_hub, ca_file, "vera", "not the password"),
        "-t",
        "wot/twin/#",
        "-C",
        "1",
        "-W",
        "5",
    )
    assert code != 0
    assert "not authorised" in err.lower() or "refused" in err.lower(), err


async def test_a_viewer_cannot_publish_for_an_agent(mqtt_hub, ca_file):
    mqtt_hub.add_agent("lamp-agent")
    mqtt_hub.add_client("vera", "consumer", "viewer")
    watcher = mqtt_hub.paho("vera/watch")
    assert await watcher.connect() == 0
    value_topic = topics.twin_property(THING, "level")
    assert await watcher.subscribe(value_topic) == 1
    await publish(
        mqtt_hub,
        ca_file,
        "lamp-agent",
        topics.agent_topic("lamp-agent", "td", THING),
        {"input": TD},
    )
    await until(lambda: mqtt_hub.hub.twin.thing(THING) is not None)

    topic = topics.agent_topic("lamp-agent", "prop", THING, "level")
    await publish(mqtt_hub, ca_file, "vera", topic, {"value": 1})
    # barrier: the agent's own value comes through, and the viewer's did not before it
    await publish(mqtt_hub, ca_file, "lamp-agent", topic, {"value": 2})
    assert await watcher.before(value_topic, lambda payload: payload == b"2") == []
    assert mqtt_hub.hub.twin.read_property(THING, "level")["value"] == 2


async def publish(mqtt_hub, ca_file, user: str, topic: str, message: dict) -> None:
    """One message with mosquitto_pub at QoS 1: it has reached the broker when this returns."""
    code, _, err = await run(
        "mosquitto_pub",
        *common(mqtt_hub, ca_file, user),
        "-i",
        f"{user}/shell",
        "-q",
        "1",
        "-t",
        topic,
        "-m",
        json.dumps(message),
    )
    assert code == 0, err
