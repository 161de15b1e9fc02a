"""Eclipse Thingweb node-wot (the WoT reference implementation, pinned in
tests/interop/nodewot/package-lock.json) as a consumer of the hub's twin TDs.

A real hub (HTTPS, the embedded MQTT broker, NATS; 127.0.0.1, free ports) with a lamp
connected as a real WebSocket agent (the project's client on the hub's /ws): it answers
writes and actions and reports a temperature and an event every 100 ms. node-wot runs as
a subprocess (tests/interop/nodewot/consume.js), trusts the hub CA through
NODE_EXTRA_CA_CERTS, and fetches the TDs from the directory.

node-wot is used as published, configured the documented way only: the bearer token
through ``servient.addCredentials``, the hub CA through NODE_EXTRA_CA_CERTS, TLS
verification on; no module of it is patched (test_nodewot_as_released.py checks). It
observes and subscribes through the twins' long-poll forms (its SSE client would send no
credentials; docs/http.md). Last, node-wot uses every
affordance of every demo twin, with `wothub serve` and `wothub demo` as subprocesses.

``make test`` installs node-wot first (``npm ci``); without it (or without node) the
tests fail saying so (tests/requirements.py; WOTHUB_ALLOW_MISSING=1 skips them)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from pathlib import Path

import pytest

from clients.http import HttpConsumer
from digitwin.validation import validate_td
from hub.demo import DOOR, THERMOSTAT
from hub.demo import LAMP as LAMP_ID
from tests.requirements import missing, require_command
from tests.support import devices, tds
from tests.support.running import PASSWORD, RunningHub
from tests.support.served import Process, serve_env, wait_listeners

pytestmark = pytest.mark.timeout(180)

NODEWOT = Path(__file__).parent / "nodewot"
SCRIPT = NODEWOT / "consume.js"
LAMP = "urn:dev:interop:lamp-1"
AGENT = "interop-lamp-agent"
CONSUMER = "nodewot"
FORM_OR_SECURITY = ("form", "security", "credential", "scheme")


@pytest.fixture(autouse=True)
def _needs_nodewot():
    require_command("node", package="nodejs")
    if not (NODEWOT / "node_modules" / "@node-wot" / "core").is_dir():
        missing("node-wot", f"run `npm ci` in {NODEWOT} (`make install` does)")


def lamp_td() -> dict:
    """The shared lamp as node-wot uses it: observable properties (one read-only, reported
    every 100 ms), a fade with output and a calibration that runs a while."""
    scale = {"type": "integer", "minimum": 0, "maximum": 100}
    return tds.lamp_td(
        LAMP,
        "Interop lamp",
        only=("fade", "overheated"),
        properties={
            "brightness": {
                **scale,
                "observable": True,
                "forms": [{"href": "https://lamp.local/brightness"}],
            },
            "temperature": {
                "type": "number",
                "readOnly": True,
                "observable": True,
                "forms": [{"href": "https://lamp.local/temperature"}],
            },
        },
        actions={
            "calibrate": {
                "synchronous": False,
                "input": {"type": "object", "properties": {"passes": {"type": "integer"}}},
                "output": {"type": "object"},
                "forms": [{"href": "https://lamp.local/calibrate"}],
            },
        },
    )


class Lamp:
    """The device: a WebSocket agent (``running.device``)."""

    def __init__(self, running: RunningHub) -> None:
        self.running = running
        self.conn = None
        self.brightness = 10
        self.temperature = 20.0
        self.requests: list[tuple[str, str, object]] = []
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        self.conn = await devices.register(self.running, AGENT, lamp_td())
        await devices.report(self.conn, "brightness", self.brightness)
        await devices.report(self.conn, "temperature", self.temperature)
        self._tasks = [asyncio.create_task(self._serve()), asyncio.create_task(self._tick())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.conn.close()

    async def _tick(self) -> None:
        for _ in range(3000):  # bounded: 5 minutes at most
            await asyncio.sleep(0.1)  # a device reporting every 100 ms
            self.temperature = round(self.temperature + 0.5, 1)
            await devices.report(self.conn, "temperature", self.temperature)
            await devices.emit(self.conn, "overheated", self.temperature)

    async def _serve(self) -> None:
        while True:
            request = await self.conn.next_request(timeout=None)
            data = request.input if isinstance(request.input, dict | int | float) else None
            self.requests.append((request.operation, request.name, data))
            if request.operation == "writeproperty":
                self.brightness = request.input
                await devices.report(self.conn, "brightness", self.brightness)
                await devices.answer(self.conn, request, status="completed")
            elif request.name == "fade":
                await devices.answer(
                    self.conn, request, status="completed", output=request.input["level"]
                )
            elif request.name == "calibrate":
                self._tasks.append(asyncio.create_task(self._calibrate(request)))

    async def _calibrate(self, request) -> None:
        await devices.answer(self.conn, request, status="running")
        await asyncio.sleep(0.3)  # a calibration that takes a while: running, then done
        passes = (request.input or {}).get("passes", 1)
        await devices.answer(
            self.conn, request, status="completed", output={"passes": passes, "offset": 0.25}
        )


@pytest.fixture
def hub_options() -> dict:
    return {"mqtt_enabled": True, "nats_enabled": True}


@pytest.fixture
async def lamp(running):
    """The lamp, connected and registered, serving requests and reporting."""
    lamp = Lamp(running)
    await lamp.start()
    try:
        yield lamp
    finally:
        await lamp.stop()


async def node(running: RunningHub, scenario: str) -> tuple[dict, str]:
    """Run consume.js on the test hub as CONSUMER (a manager: writes need one)."""
    if running.hub.auth.accounts.get(CONSUMER) is None:
        running.add_client(CONSUMER, "consumer", "manager")
    token = running.hub.auth.new_token(CONSUMER)["token"]
    return await run_node(scenario, running.url, token, running.hub.config.home)


async def run_node(scenario: str, url: str, token: str, home: Path) -> tuple[dict, str]:
    """Run consume.js against the hub at ``url`` whose CA is in ``home``; its result
    (stdout's JSON) and its stderr (node-wot's warnings)."""
    ca_file = home / "certs" / "ca.pem"
    assert ca_file.is_file()
    environment = {
        **os.environ,
        "HUB_URL": url,
        "HUB_TOKEN": token,
        "THING_ID": LAMP,
        "MQTT_USER": CONSUMER,
        "NODE_EXTRA_CA_CERTS": str(ca_file),
        "DEBUG": "node-wot:*:warn,node-wot:*:error",
        "DEBUG_COLORS": "0",
    }
    process = await asyncio.create_subprocess_exec(
        "node",
        str(SCRIPT),
        scenario,
        cwd=NODEWOT,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(150):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    stderr = err.decode(errors="replace")
    assert process.returncode == 0, f"node {scenario} failed:\n{stderr}"
    return json.loads(out.decode().strip().splitlines()[-1]), stderr


def warnings_about_forms_or_security(stderr: str) -> list[str]:
    return [
        line
        for line in stderr.splitlines()
        if ":warn" in line or ":error" in line
        if any(word in line.lower() for word in FORM_OR_SECURITY)
    ]


async def test_every_twin_td_validates_and_node_wot_takes_it_without_warnings(running, lamp):
    admin = running.add_client("interop-admin", "consumer", "admin")
    async with running.session(admin) as session:
        response = await session.get("/things", params={"limit": "1000"})
        assert response.status == 200
        tds = await response.json()
    ids = {td["id"] for td in tds}
    assert LAMP in ids and "urn:wothub:clients" in ids
    for td in tds:  # the TD 1.1 JSON Schema (and the hub's own checks)
        validate_td(td)
        assert td["@context"][0] == "https://www.w3.org/2019/wot/td/v1"
        assert td["security"] == ["bearer_sc"]

    result, stderr = await node(running, "validate")
    reports = {report["id"]: report for report in result["things"]}
    assert LAMP in reports
    for report in reports.values():
        assert report["valid"], report
        assert report["consumed"], report
        assert report["clients"] > 0, report
    # The lamp's forms node-wot has a client for: every https:// and mqtts:// one.
    assert set(reports[LAMP]["skipped"]) <= {"wss", "nats"}
    assert warnings_about_forms_or_security(stderr) == [], stderr


async def test_node_wot_reads_writes_invokes_and_observes_over_https(running, lamp):
    result, stderr = await node(running, "http")

    assert result["brightness"] == 10
    assert result["brightnessAfterWrite"] == 42
    assert lamp.brightness == 42
    assert result["all"]["brightness"] == 42
    assert isinstance(result["all"]["temperature"], float | int)

    assert result["fade"] == 7
    accepted = result["calibrateAccepted"]
    assert accepted["status"] in ("pending", "running")
    assert accepted["href"].startswith(running.url)
    final = result["calibrateFinal"]
    assert final["status"] == "completed", final
    assert final["output"] == {"passes": 2, "offset": 0.25}

    observed = result["observed"]
    assert len(observed) == 2 and all(isinstance(v, float | int) for v in observed)
    assert observed[1] >= observed[0]
    assert len(result["events"]) == 1 and isinstance(result["events"][0], float | int)

    assert ("writeproperty", "brightness", None) in [
        (op, name, None) for op, name, _ in lamp.requests
    ]
    assert ("invokeaction", "fade", {"level": 7}) in lamp.requests
    assert ("invokeaction", "calibrate", {"passes": 2}) in lamp.requests
    assert warnings_about_forms_or_security(stderr) == [], stderr


async def test_node_wot_reads_observes_and_subscribes_over_mqtt(running, lamp):
    result, stderr = await node(running, "mqtt")
    assert result["brightness"] == 10  # the twin's value, sent retained on subscribe
    observed = result["observed"]
    assert len(observed) == 2 and all(isinstance(v, float | int) for v in observed)
    assert len(result["events"]) == 1
    assert warnings_about_forms_or_security(stderr) == [], stderr


# -- every demo twin, as `make run` + `make demo` serve them ----------------------------------

JSON_TYPES = {
    "boolean": bool,
    "integer": int,
    "number": float | int,
    "string": str,
    "object": dict,
    "array": list,
}


def of_its_type(value, schema) -> bool:
    wanted = JSON_TYPES.get(schema.get("type"))
    if wanted is None:
        return True
    if schema.get("type") in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, wanted)


async def test_node_wot_uses_every_affordance_of_every_demo_twin(tmp_path):
    home = tmp_path / "home"
    env = serve_env(WOTHUB_HOME=str(home))
    serve, demo = Process("wothub serve"), Process("wothub demo")
    await serve.start("serve", env=env)
    try:
        listeners = await wait_listeners(home, serve)
        # The door stays online (it would queue node-wot's actions while away).
        await demo.start("demo", "--door-online", "600", "--door-offline", "1", env=env)
        for bus in ("MQTT", "NATS", "WebSocket"):
            await demo.wait_for(f"online over {bus}", 30)
        url = listeners["https"]["local_url"]
        ca = (home / "certs" / "ca.pem").read_bytes()
        password = (home / "admin.password").read_text().strip()
        async with HttpConsumer(url, ca=ca) as admin:
            await admin.login("admin", password)
            tds = [td async for td in admin.things() if td["id"] in (THERMOSTAT, LAMP_ID, DOOR)]
            assert len(tds) == 3
            await admin.invoke_service(
                "urn:wothub:clients",
                "addClient",
                {"clientID": CONSUMER, "kind": "consumer", "role": "manager", "password": PASSWORD},
            )
        async with HttpConsumer(url, ca=ca) as consumer:
            token = (await consumer.login(CONSUMER, PASSWORD))["token"]

        result, stderr = await run_node("demo", url, token, home)
    finally:
        await demo.stop(signal.SIGKILL)
        await serve.stop(signal.SIGTERM)

    assert warnings_about_forms_or_security(stderr) == [], stderr
    assert set(result["things"]) == {THERMOSTAT, LAMP_ID, DOOR}
    for td in tds:
        report = result["things"][td["id"]]
        properties = td["properties"]
        for name, prop in properties.items():
            assert of_its_type(report["read"][name], prop), (td["id"], name, report["read"])
            if prop.get("observable"):
                values = report["observed"][name]
                assert values and all(of_its_type(v, prop) for v in values), (name, values)
        writable = {name for name, prop in properties.items() if not prop.get("readOnly")}
        assert set(report["written"]) == writable, td["id"]
        for name, event in td["events"].items():
            data = report["events"][name]
            assert data and all(of_its_type(d, event["data"]) for d in data), (name, data)
        assert set(report["invoked"]) == set(td["actions"])
        for name, action in td["actions"].items():
            output = report["invoked"][name]
            assert of_its_type(output, action["output"]), (td["id"], name, output)
    thermostat, lamp, door = (result["things"][i] for i in (THERMOSTAT, LAMP_ID, DOOR))
    # The writes took (read back from the twin), the actions' outputs are the devices'.
    assert thermostat["written"]["mode"] == "heat"
    assert lamp["written"] == {"brightness": 35, "on": True}
    assert door["written"] == {"armed": False}
    assert thermostat["invoked"]["boost"] == {"boost": True, "minutes": 1}
    assert lamp["invoked"]["fade"] == 80
    assert door["invoked"]["selfTest"]["ok"] is True
