"""`wothub demo` end to end: `wothub serve` (HTTPS, MQTT, NATS on free loopback ports)
and `wothub demo` as subprocesses; the devices' values arrive over HTTP and SSE, an
action for the door sensor while it is offline is queued and carried out when it comes
back, and both processes stop cleanly."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from clients.http import ActionStatus, HttpConsumer
from hub.demo import DOOR, LAMP, THERMOSTAT
from tests.support.served import Process, serve_env, wait_listeners

pytestmark = pytest.mark.timeout(150)


async def until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        result = await predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.2)


async def test_demo_devices_report_values_and_the_offline_door_gets_its_queued_action(tmp_path):
    home = tmp_path / "home"
    env = serve_env(WOTHUB_HOME=str(home))
    serve, demo = Process("wothub serve"), Process("wothub demo")
    await serve.start("serve", env=env)
    try:
        listeners = await wait_listeners(home, serve)
        await demo.start(
            "demo",
            "--duration",
            "90",
            "--door-online",
            "4",
            "--door-offline",
            "5",
            env=env,
        )
        await demo.wait_for("online over MQTT", 30)
        await demo.wait_for("online over NATS", 30)
        await demo.wait_for("online over WebSocket", 30)

        ca = (home / "certs" / "ca.pem").read_bytes()
        password = (home / "admin.password").read_text().strip()
        async with HttpConsumer(listeners["https"]["local_url"], ca=ca) as hub:
            await hub.login("admin", password)
            ids = {td["id"] async for td in hub.things()}
            assert {THERMOSTAT, LAMP, DOOR} <= ids

            # Live values: the thermostat's temperature over SSE, the lamp's power by GET.
            seen = []
            async with asyncio.timeout(20):
                async with hub.observe_property(THERMOSTAT, "temperature") as stream:
                    async for event in stream:
                        seen.append(event)
                        if len(seen) == 2:
                            break
            assert all(isinstance(e.data, float | int) for e in seen), seen
            assert isinstance(await hub.read_property(LAMP, "power"), float | int)
            assert await hub.invoke(LAMP, "toggle") is True
            assert await hub.read_property(LAMP, "on") is True

            # The door goes offline: an action for it is queued, and done once it is back.
            offline = await demo.wait_for("going offline", 30)
            status = await hub.invoke(DOOR, "selfTest")
            assert isinstance(status, ActionStatus), status
            assert status.status == "pending" and status.get("state") == "pending", status
            await demo.wait_for("online over WebSocket", 20, start=offline)

            async def completed():
                current = await hub.query_action(status.href)
                return current if current.status == "completed" else None

            final = await until(completed, 20, "the queued selfTest completed")
            assert final.output["ok"] is True
            await demo.wait_for("selfTest done", 5, start=offline)

        # Requests to the NATS lamp were not heard back by the hub as if the lamp sent them.
        assert "refused a NATS message" not in serve.output, serve.output
        assert await demo.stop(signal.SIGINT) == 0, demo.output
        assert "wothub demo: stopped" in demo.output
        assert "Traceback" not in demo.output, demo.output
    finally:
        if demo.process is not None and demo.process.returncode is None:
            await demo.stop(signal.SIGKILL)
        code = await serve.stop(signal.SIGTERM)
    assert code == 0, serve.output
    assert not (home / "listeners.json").exists()
