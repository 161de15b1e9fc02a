"""``wothub demo``: simulated devices against a running hub, to see it alive.

- a **thermostat** over MQTT (``urn:wothub:demo:thermostat``): ``temperature`` drifts
  towards ``setpoint`` every second; write ``setpoint`` or ``mode``; action ``boost``;
  event ``setpointReached``;
- a **lamp** over NATS (``urn:wothub:demo:lamp``): ``on``, ``brightness``, ``power``;
  actions ``toggle`` and ``fade`` (takes a second); event ``switched``;
- a **door sensor** over WebSocket (``urn:wothub:demo:door``): ``open``, ``battery``,
  ``armed``; action ``selfTest``; events ``opened`` and ``closed``. It goes offline and
  comes back periodically (``--door-online`` / ``--door-offline`` seconds): actions
  asked of it meanwhile are queued by the hub (201 + Location) and carried out when it
  is back, which the log shows.

The hub is found like the admin commands find it (``--url`` or ``<home>/listeners.json``,
its CA, the ``admin`` login from ``<home>/admin.password``); the MQTT and NATS addresses
come from ``listeners.json``. The demo adds (or resets the password of) one agent client
per device through the hub's clients Thing, then connects each device with it. It runs
until Ctrl-C (or SIGTERM), or for ``--duration`` seconds.

It is the reference example of a device on the client API (docs/client.md): each
``connect``s over its binding, ``expose``s its TD, sets handlers for the actions and
property writes, and emits its values and events; the API reconnects it and keeps what
it emitted meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import secrets
import signal
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from vocabulary.things import CLIENTS_THING

from .admin_cli import add_connection_arguments, find_target, run_action
from .commands import add_command
from .config import default_home
from .listeners import read_listeners

if TYPE_CHECKING:  # the clients are imported when the demo runs, not with every command
    from clients import ExposedThing

THERMOSTAT = "urn:wothub:demo:thermostat"
LAMP = "urn:wothub:demo:lamp"
DOOR = "urn:wothub:demo:door"
AGENTS = {"thermostat": "demo-thermostat", "lamp": "demo-lamp", "door": "demo-door"}
_LOOPBACK = ("", "0.0.0.0", "::", "localhost", "127.0.0.1", "::1")

log = logging.getLogger("wothub.demo")


def _say(device: str, text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {device:<10} {text}", flush=True)


def _td(thing_id: str, title: str, properties: dict, actions: dict, events: dict) -> dict:
    """A device's own TD (the hub replaces forms and security in the twin TD)."""

    def with_forms(affordances: dict) -> dict:
        return {
            name: {**spec, "forms": [{"href": f"demo:{name}"}]}
            for name, spec in affordances.items()
        }

    return {
        "@context": "https://www.w3.org/2022/wot/td/v1.1",
        "id": thing_id,
        "title": title,
        "securityDefinitions": {"nosec_sc": {"scheme": "nosec"}},
        "security": "nosec_sc",
        "properties": with_forms(properties),
        "actions": with_forms(actions),
        "events": with_forms(events),
    }


def thermostat_td() -> dict:
    return _td(
        THERMOSTAT,
        "Demo thermostat (MQTT)",
        {
            "temperature": {"type": "number", "unit": "°C", "readOnly": True, "observable": True},
            "setpoint": {"type": "number", "minimum": 5, "maximum": 30, "observable": True},
            "mode": {"type": "string", "enum": ["heat", "cool", "off"], "observable": True},
        },
        {
            "boost": {
                "description": "heat fast for a few minutes",
                "input": {"type": "integer", "minimum": 1, "maximum": 60},
                "output": {"type": "object"},
            }
        },
        {"setpointReached": {"data": {"type": "number"}}},
    )


def lamp_td() -> dict:
    return _td(
        LAMP,
        "Demo lamp (NATS)",
        {
            "on": {"type": "boolean", "observable": True},
            "brightness": {"type": "integer", "minimum": 0, "maximum": 100, "observable": True},
            "power": {"type": "number", "unit": "W", "readOnly": True, "observable": True},
        },
        {
            "toggle": {"output": {"type": "boolean"}},
            "fade": {
                "input": {
                    "type": "object",
                    "properties": {"level": {"type": "integer", "minimum": 0, "maximum": 100}},
                    "required": ["level"],
                },
                "output": {"type": "integer"},
            },
        },
        {"switched": {"data": {"type": "boolean"}}},
    )


def door_td() -> dict:
    return _td(
        DOOR,
        "Demo door sensor (WebSocket, offline now and then)",
        {
            "open": {"type": "boolean", "readOnly": True, "observable": True},
            "battery": {"type": "integer", "unit": "%", "readOnly": True, "observable": True},
            "armed": {"type": "boolean", "observable": True},
        },
        {"selfTest": {"output": {"type": "object"}}},
        {"opened": {"data": {"type": "string"}}, "closed": {"data": {"type": "string"}}},
    )


# -- where the hub is ----------------------------------------------------------------------


def _local(url: str) -> str:
    """``url`` with an any-address or loopback host as 127.0.0.1 (in the certificate)."""
    parts = urlsplit(url)
    if (parts.hostname or "") not in _LOOPBACK:
        return url
    netloc = f"127.0.0.1:{parts.port}" if parts.port else "127.0.0.1"
    return urlunsplit(parts._replace(netloc=netloc))


def _bus_urls(args: argparse.Namespace) -> dict[str, str]:
    """The MQTT and NATS URLs of the hub, from its listeners.json."""
    document = read_listeners(args.home if args.home is not None else default_home()) or {}
    listeners = document.get("listeners", {})
    urls = {}
    if mqtts := listeners.get("mqtts"):
        urls["mqtt"] = _local(f"mqtts://{mqtts.get('host', '')}:{mqtts['port']}")
    if nats := listeners.get("nats"):
        urls["nats"] = _local(nats.get("local_url") or nats["url"])
    return urls


async def _agent_password(client, client_id: str) -> str:
    """A fresh password for the device's agent client (added if it is not there)."""
    from clients.errors import HubError

    password = secrets.token_urlsafe(18)
    data = {"clientID": client_id, "password": password}
    try:
        await client.invoke_service(
            CLIENTS_THING, "addClient", {**data, "kind": "agent", "role": "agent"}
        )
    except HubError as exc:
        if exc.status != 409:
            raise
        await client.invoke_service(CLIENTS_THING, "setPassword", data)
    return password


# -- the devices ---------------------------------------------------------------------------
# Each is a device as docs/client.md shows one: connect(), expose(td), handlers, emit.


class Thermostat:
    def __init__(self, url: str, password: str, ca: bytes | None) -> None:
        self.url, self.password, self.ca = url, password, ca
        self.temperature = 19.0
        self.setpoint = 21.0
        self.mode = "heat"
        self.boost_until = 0.0
        self.reached = False

    async def run(self) -> None:
        from clients import connect

        agent = AGENTS["thermostat"]
        async with connect(self.url, client_id=agent, password=self.password, ca=self.ca) as hub:
            thermostat = await hub.expose(thermostat_td())
            for name in ("setpoint", "mode"):
                thermostat.set_property_write_handler(name, self._writer(thermostat, name))
            thermostat.set_action_handler("boost", self._boost)
            await thermostat.emit_property_change("setpoint", self.setpoint)
            await thermostat.emit_property_change("mode", self.mode)
            _say("thermostat", f"online over MQTT ({self.url})")
            while True:
                await self._step(thermostat)
                await asyncio.sleep(1.0)  # the simulated room's pace

    def _writer(self, thermostat: ExposedThing, name: str) -> Callable[[Any], Awaitable[None]]:
        async def write(value: Any) -> None:
            setattr(self, name, value)
            await thermostat.emit_property_change(name, value)
            _say("thermostat", f"{name} set to {value}")

        return write

    def _boost(self, minutes: Any) -> dict[str, Any]:
        minutes = int(minutes or 5)
        self.boost_until = time.monotonic() + 60 * minutes
        _say("thermostat", f"boost for {minutes} min")
        return {"boost": True, "minutes": minutes}

    async def _step(self, thermostat: ExposedThing) -> None:
        target = {"heat": self.setpoint, "cool": self.setpoint, "off": 16.0}[self.mode]
        speed = 0.6 if time.monotonic() < self.boost_until else 0.2
        self.temperature += max(-speed, min(speed, target - self.temperature))
        self.temperature = round(self.temperature + random.uniform(-0.05, 0.05), 2)
        await thermostat.emit_property_change("temperature", self.temperature)
        reached = abs(self.temperature - self.setpoint) < 0.2
        if reached and not self.reached:
            await thermostat.emit_event("setpointReached", self.temperature)
            _say("thermostat", f"event setpointReached at {self.temperature} °C")
        self.reached = reached


class Lamp:
    def __init__(self, url: str, password: str, ca: bytes | None) -> None:
        self.url, self.password, self.ca = url, password, ca
        self.on = False
        self.brightness = 60

    def _power(self) -> float:
        return round(0.3 + (9.0 * self.brightness / 100 if self.on else 0.0), 2)

    async def run(self) -> None:
        from clients import connect

        agent = AGENTS["lamp"]
        async with connect(self.url, client_id=agent, password=self.password, ca=self.ca) as hub:
            lamp = self.lamp = await hub.expose(lamp_td())
            lamp.set_property_write_handler("on", self._switch)
            lamp.set_property_write_handler("brightness", self._dim)
            lamp.set_action_handler("toggle", lambda _input: self._switch(not self.on))
            lamp.set_action_handler("fade", self._fade)
            for name, value in (("on", self.on), ("brightness", self.brightness)):
                await lamp.emit_property_change(name, value)
            await lamp.emit_property_change("power", self._power())
            _say("lamp", f"online over NATS ({self.url})")
            while True:
                await asyncio.sleep(2.0)  # the power meter's pace
                await lamp.emit_property_change("power", self._power())

    async def _switch(self, on: bool) -> bool:
        self.on = on
        await self.lamp.emit_property_change("on", on)
        await self.lamp.emit_event("switched", on)
        _say("lamp", f"switched {'on' if on else 'off'}")
        return on

    async def _dim(self, brightness: int) -> None:
        self.brightness = brightness
        await self.lamp.emit_property_change("brightness", brightness)
        _say("lamp", f"brightness set to {brightness}")

    async def _fade(self, input: dict[str, Any]) -> int:
        level = int(input["level"])
        start = self.brightness
        for step in range(1, 6):  # a second, in five steps
            await asyncio.sleep(0.2)
            self.brightness = round(start + (level - start) * step / 5)
            await self.lamp.emit_property_change("brightness", self.brightness)
        _say("lamp", f"faded to {level}")
        return level


class Door:
    """Online for ``online`` seconds, offline for ``offline``, and again."""

    def __init__(
        self, url: str, password: str, ca: bytes | None, online: float, offline: float
    ) -> None:
        self.url, self.password, self.ca = url, password, ca
        self.online, self.offline = online, offline
        self.open = False
        self.battery = 97
        self.armed = True

    async def run(self) -> None:
        while True:
            await self._online_period()
            _say("door", f"going offline for {self.offline:g} s: actions for it wait at the hub")
            await asyncio.sleep(self.offline)  # the simulated outage

    async def _online_period(self) -> None:
        from clients import connect

        agent = AGENTS["door"]
        async with connect(self.url, client_id=agent, password=self.password, ca=self.ca) as hub:
            # What the hub queued while the door was away goes to these handlers.
            door = self.door = await hub.expose(door_td())
            door.set_action_handler("selfTest", self._self_test)
            door.set_property_write_handler("armed", self._arm)
            for name in ("open", "battery", "armed"):
                await door.emit_property_change(name, getattr(self, name))
            _say("door", f"online over WebSocket ({self.url}) for {self.online:g} s")
            deadline = time.monotonic() + self.online
            while (left := deadline - time.monotonic()) > 0:
                await asyncio.sleep(min(left, random.uniform(2.0, 4.0)))  # someone walks by
                if time.monotonic() >= deadline:
                    break
                self.open = not self.open
                await door.emit_property_change("open", self.open)
                await door.emit_event("opened" if self.open else "closed", "front door")
                _say("door", "opened" if self.open else "closed")

    async def _self_test(self, _input: Any) -> dict[str, Any]:
        await asyncio.sleep(0.5)  # the simulated test takes a while
        self.battery = max(5, self.battery - 1)
        await self.door.emit_property_change("battery", self.battery)
        output = {"ok": True, "battery": self.battery}
        _say("door", f"selfTest done: {output}")
        return output

    async def _arm(self, armed: Any) -> None:
        self.armed = bool(armed)
        await self.door.emit_property_change("armed", self.armed)
        _say("door", f"armed set to {self.armed}")


# -- running them --------------------------------------------------------------------------


async def _supervise(name: str, run: Callable[[], Awaitable[None]]) -> None:
    """Run a device; should it fail (the hub restarting, say), start it again."""
    delay = 1.0
    while True:
        started = time.monotonic()
        try:
            await run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            _say(name, f"stopped: {type(exc).__name__}: {exc}; again in {delay:g} s")
        if time.monotonic() - started > 30:
            delay = 1.0
        await asyncio.sleep(delay)
        delay = min(delay * 2, 30.0)


async def _demo(client, args: argparse.Namespace) -> int:
    target = find_target(args)
    https = _local(target.url)
    buses = _bus_urls(args)
    ca = target.ca
    devices: dict[str, Callable[[], Awaitable[None]]] = {}

    password = await _agent_password(client, AGENTS["door"])
    ws_url = "wss://" + https.split("://", 1)[1] + "/ws"
    devices["door"] = Door(ws_url, password, ca, args.door_online, args.door_offline).run
    if "mqtt" in buses:
        password = await _agent_password(client, AGENTS["thermostat"])
        devices["thermostat"] = Thermostat(buses["mqtt"], password, ca).run
    else:
        _say("thermostat", "skipped: the hub has no MQTT listener in listeners.json")
    if "nats" in buses:
        password = await _agent_password(client, AGENTS["lamp"])
        devices["lamp"] = Lamp(buses["nats"], password, ca).run
    else:
        _say("lamp", "skipped: the hub has no NATS listener in listeners.json")

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks = [
        asyncio.create_task(_supervise(n, run), name=f"demo {n}") for n, run in devices.items()
    ]
    print(
        f"wothub demo: {len(tasks)} devices against {https}; "
        + (f"stopping after {args.duration:g} s" if args.duration else "Ctrl-C stops")
        + f'\n  try: curl --cacert <home>/certs/ca.pem -H "Authorization: Bearer $TOKEN" '
        f"{https}/things/{THERMOSTAT}/properties/temperature",
        flush=True,
    )
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(args.duration):
                await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    print("wothub demo: stopped", flush=True)
    return 0


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--duration",
        type=float,
        metavar="SECONDS",
        help="stop after this many seconds (default: until Ctrl-C)",
    )
    parser.add_argument(
        "--door-online",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long the door sensor stays online each time (default 30)",
    )
    parser.add_argument(
        "--door-offline",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="how long it then stays offline (default 20)",
    )
    add_connection_arguments(parser)


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("asyncio").setLevel(logging.ERROR)  # TLS EOF notes from the clients
    return run_action(args, _demo)


add_command("demo", "simulated devices (MQTT, NATS, WebSocket) on a running hub", _configure, _run)
