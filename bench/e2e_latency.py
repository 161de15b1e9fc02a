"""End-to-end latency of a property update, from a device to an SSE consumer, per binding.

One process and one event loop hold the real hub (LevelDB store, HTTPS, the embedded
MQTT broker, the managed nats-server; TLS everywhere, 127.0.0.1) and every client. Four
agents each own one Thing with a number property ``t`` and report it at a fixed rate
(``--rate`` updates/s, ``--count`` a round): a NATS agent (clients/nats.py), an
MQTT agent (clients/mqtt.py, paho-mqtt), a WebSocket agent
(clients/websocket.py) and, for the baseline, an agent on the router's own
interface inside the hub process (what a binding hands over after parsing: no network,
no device-side client). The value reported is the sender's ``time.perf_counter()``; one
SSE consumer over HTTPS (aiohttp) has a stream open on each Thing's property and takes
``now - value`` as the latency of each update it receives.

- Figures: p50 and p99 latency in milliseconds per device binding (``nats``, ``mqtt``,
  ``websocket``), over every update of every round (each round sends ``--count`` updates
  per binding, the bindings one after the other).
- Baseline (same run, same SSE consumer, same rate): the in-process agent. So
  ``ratio`` = figure / baseline (lower is better) is what the device binding (its
  client, the network hop, the broker for NATS and MQTT, the binding's parsing and
  checks) adds to the hub's core path (router, twin, SSE fan-out), which both share.
- Also given for NATS (``raw_nats_p50_ms``, ``raw_nats_p99_ms``): raw nats-py publish ->
  subscribe through the same nats-server at the same rate, no hub. The embedded MQTT
  broker never forwards one client's messages to another and the WebSocket endpoint is
  the hub's own, so MQTT and WebSocket have no raw counterpart here (bench/mqtt.py
  compares the broker on its own).

    python bench/e2e_latency.py [--json] [--rounds N] [--rate N] [--count N]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import ssl
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import quote

from _harness import arguments, bench_config, unshadow_packages

unshadow_packages()
import aiohttp  # noqa: E402
import nats  # noqa: E402
import orjson  # noqa: E402

from bucketstore import open_store  # noqa: E402
from clients.mqtt import MqttClient  # noqa: E402
from clients.nats import NatsAgent  # noqa: E402
from clients.websocket import WsClient  # noqa: E402
from hub.runtime import Hub  # noqa: E402
from vocabulary.envelope import parse_message  # noqa: E402
from vocabulary.identity import Client  # noqa: E402

PASSWORD = "bench password 123"
BINDINGS = ("nats", "mqtt", "websocket")
BASELINE = "in-process agent on the router (no device binding), same SSE consumer and rate"
WARMUP = 20


def thing_id(binding: str) -> str:
    return f"urn:dev:bench:e2e-{binding}"


def td(binding: str) -> dict:
    return {
        "@context": "https://www.w3.org/2022/wot/td/v1.1",
        "id": thing_id(binding),
        "title": f"e2e {binding}",
        "securityDefinitions": {"nosec_sc": {"scheme": "nosec"}},
        "security": "nosec_sc",
        "properties": {"t": {"type": "number", "observable": True, "forms": [{"href": "x"}]}},
    }


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


class Receiver:
    """Latencies of the values that arrive, per Thing."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.received = 0
        self.changed = asyncio.Event()
        self.recording = False

    def hit(self, sent: float) -> None:
        latency = time.perf_counter() - sent
        self.received += 1
        if self.recording:
            self.latencies.append(latency)
        self.changed.set()

    async def wait_for(self, count: int, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.received < count:
                    self.changed.clear()
                    await self.changed.wait()
        return self.received >= count


async def sse_stream(session: aiohttp.ClientSession, thing: str, receiver: Receiver, ready):
    path = f"/things/{quote(thing, safe='')}/properties/t"
    async with session.get(path, headers={"Accept": "text/event-stream"}) as response:
        response.raise_for_status()
        ready.set()
        async for line in response.content:
            if line.startswith(b"data:"):
                value = orjson.loads(line[5:])
                if isinstance(value, float):
                    receiver.hit(value)


async def paced(send: Callable[[float], Awaitable[None]], count: int, rate: float) -> None:
    """``count`` sends at ``rate`` a second, each carrying its send time."""
    started = time.perf_counter()
    for i in range(count):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await send(time.perf_counter())


async def measure(args) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        config = bench_config(Path(tmp) / "home", mqtt_enabled=True, nats_enabled=True)
        config.home.mkdir(mode=0o700)
        store = open_store(config.store_path, "leveldb")
        hub = Hub(config, store)
        await hub.start()
        try:
            return await _measure(args, hub)
        finally:
            await hub.stop()
            store.close()


async def _measure(args, hub: Hub) -> list[dict]:
    ca = hub.ca.ca_cert_pem
    tls = ssl.create_default_context(cadata=ca.decode())
    for name in (*BINDINGS, "local"):
        hub.auth.add_client(f"e2e-{name}", "agent", "agent", password=PASSWORD)
    hub.auth.add_client("e2e-viewer", "consumer", "viewer", password=PASSWORD)

    # The device side of each binding, registered and reporting a first value.
    nats_agent = await NatsAgent.connect(hub.nats.url, "e2e-nats", password=PASSWORD, ca_pem=ca)
    await nats_agent.update_thing(td("nats"))
    mqtt_agent = MqttClient(
        f"mqtts://127.0.0.1:{hub.mqtt.port}", "e2e-mqtt", password=PASSWORD, ca_pem=ca, agent=True
    )
    await mqtt_agent.connect()
    await mqtt_agent.update_thing(td("mqtt"))
    ws_url = hub.http_server.url.replace("https://", "wss://") + "/ws"
    ws_agent = WsClient(ws_url, ca=ca, basic=("e2e-websocket", PASSWORD), reconnect=False)
    await ws_agent.connect()
    await ws_agent.update_thing(td("websocket"))
    local = hub.router.connect(Client("e2e-local", "agent"), "bench")
    register = {"messageType": "request", "operation": "updatething", "correlationID": "r"}
    assert hub.router.handle(local, parse_message({**register, "input": td("local")}, "e2e-local"))

    def local_envelope(value: float) -> dict:
        return {
            "messageType": "notification",
            "operation": "observeproperty",
            "thingID": thing_id("local"),
            "name": "t",
            "value": value,
        }

    async def send_local(value: float) -> None:
        hub.router.handle(local, parse_message(local_envelope(value), "e2e-local"))

    async def send_nats(value: float) -> None:
        await nats_agent.report_property(thing_id("nats"), "t", value)

    async def send_mqtt(value: float) -> None:
        mqtt_agent.report_property(thing_id("mqtt"), "t", value)

    async def send_ws(value: float) -> None:
        await ws_agent.report_property(thing_id("websocket"), "t", value)

    # Raw NATS: two connections of the hub's own user, no hub in the path.
    raw_receiver = Receiver()
    raw_pub = await nats.connect(hub.nats.url, tls=tls, nkeys_seed_str=hub.nats.keys.hub_user.seed)
    raw_sub = await nats.connect(hub.nats.url, tls=tls, nkeys_seed_str=hub.nats.keys.hub_user.seed)

    async def on_raw(msg) -> None:
        raw_receiver.hit(orjson.loads(msg.data)["value"])

    await raw_sub.subscribe("bench.e2e.raw", cb=on_raw)
    await raw_sub.flush()

    async def send_raw(value: float) -> None:
        message = {**local_envelope(value), "thingID": thing_id("nats")}
        await raw_pub.publish("bench.e2e.raw", orjson.dumps(message))

    senders = {
        "local": send_local,
        "nats": send_nats,
        "mqtt": send_mqtt,
        "websocket": send_ws,
    }
    receivers = {name: Receiver() for name in senders}
    token = hub.auth.new_token("e2e-viewer")["token"]
    session = aiohttp.ClientSession(
        hub.http_server.url,
        headers={"Authorization": f"Bearer {token}"},
        connector=aiohttp.TCPConnector(ssl=tls),
    )
    streams = []
    try:
        for name, receiver in receivers.items():
            ready = asyncio.Event()
            streams.append(
                asyncio.create_task(sse_stream(session, thing_id(name), receiver, ready))
            )
            await asyncio.wait_for(ready.wait(), 10)
        lost = dict.fromkeys([*senders, "raw"], 0)
        order = [*senders.items(), ("raw", send_raw)]
        all_receivers = {**receivers, "raw": raw_receiver}
        for round_ in range(args.rounds + 1):  # round 0 warms up
            count = WARMUP if round_ == 0 else args.count
            for name, send in order:
                receiver = all_receivers[name]
                receiver.recording = round_ > 0
                expected = receiver.received + count
                await paced(send, count, args.rate)
                if not await receiver.wait_for(expected, timeout=10 + count / args.rate):
                    lost[name] += expected - receiver.received
                    receiver.received = expected  # so the next round's count starts right
                receiver.recording = False
    finally:
        for task in streams:
            task.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
        await session.close()
        for connection in (raw_pub, raw_sub):
            await connection.close()
        await nats_agent.close()
        await mqtt_agent.close()
        await ws_agent.close()
        hub.router.disconnect(local)

    def ms(name: str, fraction: float) -> float:
        return round(1000 * percentile(all_receivers[name].latencies, fraction), 3)

    results = []
    for binding in BINDINGS:
        for stat, fraction in (("p50", 0.50), ("p99", 0.99)):
            figure, baseline = ms(binding, fraction), ms("local", fraction)
            line = {
                "bench": f"e2e_latency_{stat}",
                "backend": f"{binding}->sse",
                "figure": figure,
                "unit": "ms",
                "baseline_figure": baseline,
                "baseline": BASELINE,
                "ratio": figure / baseline if baseline else None,
                "rate": args.rate,
                "updates": len(all_receivers[binding].latencies),
                "lost": lost[binding],
            }
            if binding == "nats":
                line[f"raw_nats_{stat}_ms"] = ms("raw", fraction)
            results.append(line)
    return results


def report(results: list[dict], as_json: bool) -> None:
    if as_json:
        for line in results:
            print(json.dumps(line), flush=True)
        return
    print(f"{'bench':<18}{'backend':<16}{'ms':>9}{'baseline ms':>13}{'ratio':>8}  extra")
    for r in results:
        extra = {k: v for k, v in r.items() if k not in ("bench", "backend", "figure", "unit")}
        extra = {k: v for k, v in extra.items() if k not in ("baseline_figure", "ratio")}
        extra.pop("baseline")
        print(
            f"{r['bench']:<18}{r['backend']:<16}{r['figure']:>9.2f}{r['baseline_figure']:>13.2f}"
            f"{r['ratio']:>8.2f}  " + "  ".join(f"{k}={v}" for k, v in extra.items())
        )
    print(f"baseline: {BASELINE}; ratio = figure / baseline (lower is better)")


def main() -> None:
    args = arguments(
        __doc__.splitlines()[0],
        **{
            "--rate": {"type": float, "default": 200.0, "help": "updates a second"},
            "--count": {"type": int, "default": 1000, "help": "updates per binding a round"},
        },
    )
    logging.getLogger("asyncio").setLevel(logging.ERROR)  # TLS EOF notes from clients
    if args.rounds == 15:  # the harness default is for throughput; latency pools rounds
        args.rounds = 2
    report(asyncio.run(measure(args)), args.json)


if __name__ == "__main__":
    main()
