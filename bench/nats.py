"""NATS binding throughput, each figure next to a raw nats-py baseline from the same run.

Process layout: the real hub (LevelDB store, HTTPS for SSE, its NATS binding and managed
nats-server with TLS on 127.0.0.1) runs in its own process (bench/_hub.py), as ``wothub
serve`` does beside its devices; the clients and the raw baseline share this process, so
the baseline and the hub path are driven by the same client code on the same core.

- property_updates_nats: a NATS agent (clients/nats.py) reports ``--values``
  property values a round; a NATS consumer subscribed to ``wot.twin.{thing}.prop.*``
  receives them (agent -> nats-server -> hub: parse, authorize, twin update, fan-out ->
  nats-server -> consumer). The sender keeps at most 200 values in flight. The NATS
  consumer is the only subscriber then. ``hub_cpu_us`` is the hub process's CPU time per
  update over these parts of all rounds: it does not depend on who waited for whom.
- property_updates_sse: the same reports, received by an SSE consumer over HTTPS (its
  stream is open only during this part).
- Baseline of both: raw nats-py publish -> subscribe of the same envelope bytes between
  two connections through the same nats-server, with the same pacing.
- nats_py_relay, the floor of any hub written on nats-py: the same envelopes published
  to a bare relay in the hub's process (a nats-py subscription that republishes each
  message with two headers and does nothing else), received by the raw subscriber,
  same pacing; ``relay_cpu_us`` is that process's CPU per message, and the NATS line's
  ``of_relay`` is the hub's rate over the relay's.
- request_reply: sequential ``readproperty`` round trips from a NATS consumer through the
  hub (request-reply with an inbox). Baseline: raw nats-py request-reply to a responder
  that answers with the same response bytes, through the same server.

    python bench/nats.py [--json] [--rounds N] [--values N] [--requests N]
"""

from __future__ import annotations

import asyncio
import ssl
import time
from urllib.parse import quote

import orjson
from _harness import (
    Counter,
    Result,
    ServerProcess,
    arguments,
    hub_process,
    paced,
    report,
    unshadow_packages,
)
from _hub import PASSWORD, THING

unshadow_packages()
import aiohttp  # noqa: E402
import nats  # noqa: E402

from clients.nats import NatsAgent, NatsConsumer  # noqa: E402


async def sse_reader(session: aiohttp.ClientSession, counter: Counter, ready: asyncio.Event):
    path = "/things/" + quote(THING, safe="") + "/properties/level"
    async with session.get(path, headers={"Accept": "text/event-stream"}) as response:
        ready.set()
        async for line in response.content:
            if line.startswith(b"data:"):
                counter.hit()


async def measure(args) -> list[Result]:
    async with hub_process() as (hello, server):
        return await _measure(args, hello, server)


async def _measure(args, hello: dict, server: ServerProcess) -> list[Result]:
    ca, url = hello["ca"], hello["nats_url"]
    tls = ssl.create_default_context(cadata=ca)
    agent = await NatsAgent.connect(url, "bench-agent", password=PASSWORD, ca_pem=ca.encode())
    consumer = await NatsConsumer.connect(
        url, "bench-viewer", password=PASSWORD, ca_pem=ca.encode()
    )
    await agent.report_property(THING, "level", 0)

    nats_counter, sse_counter, raw_counter = Counter(), Counter(), Counter()
    await consumer.observe_property(THING, "level", callback=lambda _: nats_counter.hit())
    await consumer.nc.flush()

    # Raw baseline: two connections of the hub's own user (full permissions in APP).
    raw_pub = await nats.connect(url, tls=tls, nkeys_seed_str=hello["hub_seed"])
    raw_sub = await nats.connect(url, tls=tls, nkeys_seed_str=hello["hub_seed"])

    async def on_raw(msg) -> None:
        raw_counter.hit()

    await raw_sub.subscribe("bench.raw", cb=on_raw)

    # The floor: the same envelopes republished by a bare nats-py relay in the hub's
    # process (bench/_hub.py start_relay), the hub idle meanwhile.
    relay_counter = Counter()

    async def on_relayed(msg) -> None:
        relay_counter.hit()

    relay = await server.ask("relay")
    await raw_sub.subscribe(relay["out"], cb=on_relayed)
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

    session = aiohttp.ClientSession(
        hello["http_url"],
        headers={"Authorization": f"Bearer {hello['token']}"},
        connector=aiohttp.TCPConnector(ssl=tls),
    )

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

    async def relay_value(i: int) -> None:
        await raw_pub.publish(relay["relay"], envelope(i))

    best = {"nats": 0.0, "sse": 0.0, "raw": 0.0, "relay": 0.0, "rpc": 0.0, "raw_rpc": 0.0}
    values, requests = args.values, args.requests
    updates, cpu_used, relay_cpu = 0, 0.0, 0.0
    for _ in range(args.rounds):
        # Through the hub to the NATS consumer (the only subscriber in this part).
        cpu_before = (await server.ask("cpu"))["cpu"]
        elapsed = await paced(report_value, nats_counter, values)
        cpu_used += (await server.ask("cpu"))["cpu"] - cpu_before
        updates += values
        best["nats"] = max(best["nats"], values / elapsed)

        # The same to an SSE consumer, whose stream is open only in this part.
        ready = asyncio.Event()
        sse_task = asyncio.create_task(sse_reader(session, sse_counter, ready))
        await asyncio.wait_for(ready.wait(), 10)
        await paced(report_value, sse_counter, 1)  # the stream is live once one arrives
        elapsed = await paced(report_value, sse_counter, values)
        best["sse"] = max(best["sse"], values / elapsed)
        sse_task.cancel()
        await asyncio.gather(sse_task, return_exceptions=True)

        cpu_before = (await server.ask("cpu"))["cpu"]
        elapsed = await paced(relay_value, relay_counter, values)
        relay_cpu += (await server.ask("cpu"))["cpu"] - cpu_before
        best["relay"] = max(best["relay"], values / elapsed)

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

    await session.close()
    for connection in (raw_pub, raw_sub):
        await connection.close()
    await agent.close()
    await consumer.close()
    common = {
        "values": values,
        "hub_cpu_us": round(1e6 * cpu_used / updates, 1),
        "of_relay": round(best["nats"] / best["relay"], 2),
    }
    raw = "raw nats-py pub/sub of the same envelopes, same server"
    relay_figures = {"values": values, "relay_cpu_us": round(1e6 * relay_cpu / updates, 1)}
    return [
        Result("property_updates_nats", "nats", best["nats"], best["raw"], raw, common),
        Result("nats_py_relay", "nats", best["relay"], best["raw"], raw, relay_figures),
        Result(
            "property_updates_sse", "nats+sse", best["sse"], best["raw"], raw, {"values": values}
        ),
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
