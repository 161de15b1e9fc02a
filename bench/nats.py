"""NATS binding throughput, each figure next to a raw nats-py baseline from the same run.

One process, one event loop: the real hub (LevelDB store, HTTPS for SSE) with its NATS
binding and managed nats-server (TLS on 127.0.0.1), and the clients.

- property_updates_nats: a NATS agent (clients/nats.py) reports ``--values``
  property values a round; a NATS consumer subscribed to ``wot.twin.{thing}.prop.*``
  receives them (agent -> nats-server -> hub: parse, authorize, twin update, fan-out ->
  nats-server -> consumer). The sender keeps at most 200 values in flight.
- property_updates_sse: the same reports, received by an SSE consumer over HTTPS.
- Baseline of both: raw nats-py publish -> subscribe of the same envelope bytes between
  two connections through the same nats-server, with the same pacing.
- request_reply: sequential ``readproperty`` round trips from a NATS consumer through the
  hub (request-reply with an inbox). Baseline: raw nats-py request-reply to a responder
  that answers with the same response bytes, through the same server.

    python bench/nats.py [--json] [--rounds N] [--values N] [--requests N]
"""

from __future__ import annotations

import asyncio
import ssl
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import orjson
from _harness import Result, arguments, bench_config, report, unshadow_packages

unshadow_packages()
import aiohttp  # noqa: E402
import nats  # noqa: E402

from bindings.nats import NatsBinding  # noqa: E402
from bucketstore import open_store  # noqa: E402
from clients.nats import NatsAgent, NatsConsumer  # noqa: E402
from hub.runtime import Hub  # noqa: E402

THING = "urn:dev:bench:lamp-1"
PASSWORD = "bench password 123"
WINDOW = 200
TD = {
    "@context": "https://www.w3.org/2022/wot/td/v1.1",
    "id": THING,
    "title": "Lamp",
    "securityDefinitions": {"nosec_sc": {"scheme": "nosec"}},
    "security": "nosec_sc",
    "properties": {"level": {"type": "integer", "forms": [{"href": "x"}]}},
}


class Counter:
    def __init__(self) -> None:
        self.count = 0
        self.changed = asyncio.Event()

    def hit(self) -> None:
        self.count += 1
        self.changed.set()

    async def wait_for(self, count: int, timeout: float = 60.0) -> None:
        async with asyncio.timeout(timeout):
            while self.count < count:
                self.changed.clear()
                await self.changed.wait()


async def paced(send, counter: Counter, values: int) -> float:
    """Send ``values`` messages keeping at most WINDOW unreceived; seconds until the
    last one arrived."""
    start_count = counter.count
    started = time.perf_counter()
    for i in range(values):
        while i - (counter.count - start_count) >= WINDOW:
            counter.changed.clear()
            await counter.changed.wait()
        await send(i)
    await counter.wait_for(start_count + values)
    return time.perf_counter() - started


async def sse_reader(session: aiohttp.ClientSession, counter: Counter, ready: asyncio.Event):
    path = "/things/" + quote(THING, safe="") + "/properties/level"
    async with session.get(path, headers={"Accept": "text/event-stream"}) as response:
        ready.set()
        async for line in response.content:
            if line.startswith(b"data:"):
                counter.hit()


async def measure(args) -> list[Result]:
    with tempfile.TemporaryDirectory() as tmp:
        config = bench_config(Path(tmp) / "home", nats_enabled=True, nats_ws_port=None)
        config.home.mkdir(mode=0o700)
        store = open_store(config.store_path, "leveldb")
        hub = Hub(config, store)
        await hub.start()
        binding = hub.nats
        try:
            return await _measure(args, hub, binding)
        finally:
            await hub.stop()
            store.close()


async def _measure(args, hub: Hub, binding: NatsBinding) -> list[Result]:
    ca = hub.ca.ca_cert_pem
    tls = ssl.create_default_context(cadata=ca.decode())
    hub.auth.add_client("bench-agent", "agent", "agent", password=PASSWORD)
    hub.auth.add_client("bench-viewer", "consumer", "viewer", password=PASSWORD)
    agent = await NatsAgent.connect(binding.url, "bench-agent", password=PASSWORD, ca_pem=ca)
    consumer = await NatsConsumer.connect(binding.url, "bench-viewer", password=PASSWORD, ca_pem=ca)
    await agent.update_thing(TD)
    await agent.report_property(THING, "level", 0)

    nats_counter, sse_counter, raw_counter = Counter(), Counter(), Counter()
    await consumer.observe_property(THING, "level", callback=lambda _: nats_counter.hit())
    await consumer.nc.flush()

    # Raw baseline: two connections of the hub's own user (full permissions in APP).
    raw_pub = await nats.connect(binding.url, tls=tls, nkeys_seed_str=binding.keys.hub_user.seed)
    raw_sub = await nats.connect(binding.url, tls=tls, nkeys_seed_str=binding.keys.hub_user.seed)

    async def on_raw(msg) -> None:
        raw_counter.hit()

    await raw_sub.subscribe("bench.raw", cb=on_raw)
    response_bytes = orjson.dumps(
        {
            "messageType": "response",
            "operation": "readproperty",
            "thingID": THING,
            "name": "level",
            "output": 1,
            "correlationID": "x",
        }
    )

    async def responder(msg) -> None:
        await msg.respond(response_bytes)

    await raw_sub.subscribe("bench.rpc", cb=responder)
    await raw_sub.flush()

    token = hub.auth.new_token("bench-viewer")["token"]
    session = aiohttp.ClientSession(
        hub.http_server.url,
        headers={"Authorization": f"Bearer {token}"},
        connector=aiohttp.TCPConnector(ssl=tls),
    )
    ready = asyncio.Event()
    sse_task = asyncio.create_task(sse_reader(session, sse_counter, ready))
    await asyncio.wait_for(ready.wait(), 10)
    await asyncio.sleep(0.2)

    async def report_value(i: int) -> None:
        await agent.report_property(THING, "level", i)

    def envelope(i: int) -> bytes:
        return orjson.dumps(
            {
                "messageType": "notification",
                "operation": "observeproperty",
                "thingID": THING,
                "name": "level",
                "value": i,
            }
        )

    async def raw_value(i: int) -> None:
        await raw_pub.publish("bench.raw", envelope(i))

    best = {"nats": 0.0, "sse": 0.0, "raw": 0.0, "rpc": 0.0, "raw_rpc": 0.0}
    values, requests = args.values, args.requests
    for _ in range(args.rounds):
        # Through the hub, both consumers subscribed; each figure is its own receiver.
        base_sse = sse_counter.count
        started = time.perf_counter()
        elapsed = await paced(report_value, nats_counter, values)
        await sse_counter.wait_for(base_sse + values)
        sse_elapsed = time.perf_counter() - started
        best["nats"] = max(best["nats"], values / elapsed)
        best["sse"] = max(best["sse"], values / sse_elapsed)
        elapsed = await paced(raw_value, raw_counter, values)
        best["raw"] = max(best["raw"], values / elapsed)

        started = time.perf_counter()
        for _ in range(requests):
            await consumer.read_property(THING, "level")
        best["rpc"] = max(best["rpc"], requests / (time.perf_counter() - started))
        started = time.perf_counter()
        for _ in range(requests):
            await raw_pub.request("bench.rpc", b"{}", timeout=5)
        best["raw_rpc"] = max(best["raw_rpc"], requests / (time.perf_counter() - started))

    sse_task.cancel()
    await session.close()
    for connection in (raw_pub, raw_sub):
        await connection.close()
    await agent.close()
    await consumer.close()
    common = {"values": values}
    raw = "raw nats-py pub/sub of the same envelopes, same server"
    return [
        Result("property_updates_nats", "nats", best["nats"], best["raw"], raw, dict(common)),
        Result("property_updates_sse", "nats+sse", best["sse"], best["raw"], raw, dict(common)),
        Result(
            "request_reply",
            "nats",
            best["rpc"],
            best["raw_rpc"],
            "raw nats-py request-reply, same server",
            {"requests": requests},
        ),
    ]


def main() -> None:
    args = arguments(
        __doc__.splitlines()[0],
        **{
            "--values": {"type": int, "default": 5000, "help": "property values a round"},
            "--requests": {"type": int, "default": 1000, "help": "round trips a round"},
        },
    )
    report(asyncio.run(measure(args)), args.json)


if __name__ == "__main__":
    main()
