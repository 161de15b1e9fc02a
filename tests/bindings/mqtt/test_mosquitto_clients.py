"""The mosquitto command-line clients (mosquitto_pub, mosquitto_sub) against the hub's
broker: what a person trying the hub from a shell would do. The project's setup
installs them (Makefile, system packages); where they are missing the tests say so."""

from __future__ import annotations

import asyncio
import json

import pytest

from bindings.mqtt import topics
from tests.requirements import require_command

from ..conftest import PASSWORD
from .conftest import TD, THING, wait_until


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
    await wait_until(lambda: mqtt_hub.hub.twin.thing(THING) is not None)

    # The consumer waits for two messages: the retained value on subscribe, then a new one.
    value_topic = topics.twin_property(THING, "level")
    mqtt_hub.hub.twin.report_property(THING, "level", 10)
    consumer = asyncio.create_task(
        run(
            "mosquitto_sub",
            *common(mqtt_hub, ca_file, "vera"),
            "-i",
            "vera/shell",
            "-t",
            value_topic,
            "-C",
            "2",
            "-v",
        )
    )
    await asyncio.sleep(1.0)  # let it subscribe
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
    code, out, err = await consumer
    assert code == 0, err
    assert out.splitlines() == [f"{value_topic} 10", f"{value_topic} 55"]


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
    topic = topics.agent_topic("lamp-agent", "prop", THING, "level")
    await run(
        "mosquitto_pub",
        *common(mqtt_hub, ca_file, "vera"),
        "-i",
        "vera/shell",
        "-t",
        topic,
        "-m",
        '{"value": 1}',
    )
    await asyncio.sleep(0.5)
    assert mqtt_hub.hub.twin.thing(THING) is None  # nothing registered, nothing stored
