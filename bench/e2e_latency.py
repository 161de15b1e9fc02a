"""End-to-end latency of a property update, agent -> hub -> consumer, at fixed rates.

Process layout: the real hub (LevelDB store, HTTPS, the NATS binding with its managed
nats-server, whose MQTT listener is the MQTT broker; TLS everywhere, 127.0.0.1) runs in
its own process (bench/_hub.py), as ``wothub serve`` does beside its devices. Every
agent and consumer is in this process, on one event loop, so a send time and a receive
time are read from the same clock (``time.perf_counter()``).

Paths, each measured on its own (only its consumer listens, only its agent sends):

- ``nats->nats``: a NATS agent (clients/nats.py) -> a NATS consumer (clients/nats.py,
  subscribed to the Thing's property) — agent -> nats-server -> hub -> nats-server.
- ``nats->sse``, ``mqtt->sse``, ``websocket->sse``: a NATS, MQTT (paho-mqtt) or
  WebSocket agent (the project's clients) -> one SSE stream over HTTPS (aiohttp).

Each agent owns one Thing with an integer property ``t`` and reports it at a fixed rate
(``--rates``, updates/s) for ``--seconds`` a phase: the value is a sequence number and
this process keeps each one's send time, so the latency of an update is its arrival time
minus its send time, and an update that never arrives is counted as lost (one that had
not arrived when nothing had arrived for QUIET seconds). Figures: p50, p99 and p99.9 in
milliseconds per path and rate, over every update of every round (the rounds interleave
the paths and the baseline). The p50 line of each path also says what happened at that
rate:

- ``sent_per_s``: the rate the sender kept; ``sender_gap_ms``: the longest pause between
  two sends (this process's own stalls, which delay the arrivals it times too);
- ``max_ms``; ``growth_ms``: the median latency of the last tenth of a phase minus that
  of the first tenth (a queue building up when the hub cannot keep up); ``drain_ms``:
  the last arrival after the last send (each the worst round's);
- ``hub_cpu_us``: the hub process's CPU per update; ``client_cpu_share``: this process's
  CPU over the phases' wall time (near 1.0, the clients set the pace, not the hub).

Baseline (same run, same rate and pacing, same nats-py client in this process): raw
nats-py publish -> subscribe of the same envelope bytes the NATS agent sends, between
two connections through the same nats-server, no hub. ``ratio`` = figure / baseline
(lower is better).

    python bench/e2e_latency.py [--json] [--rounds N] [--rates 1000,5000] [--seconds S]
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
import logging
import math
import ssl
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import quote

import orjson
from _harness import (
    Result,
    ServerProcess,
    arguments,
    hub_process,
    percentile,
    unshadow_packages,
)
from _hub import PASSWORD

unshadow_packages()
import aiohttp  # noqa: E402
import nats  # noqa: E402

from clients.mqtt import MqttClient  # noqa: E402
from clients.nats import NatsAgent, NatsConsumer  # noqa: E402
from clients.websocket import WsClient  # noqa: E402

AGENTS = ("e2e-nats", "e2e-mqtt", "e2e-websocket")
BASELINE = "raw nats-py publish -> subscribe of the same envelope bytes, same server and rate"
RAW_SUBJECT = "bench.e2e.raw"
WARMUP = 50  # updates before each measured phase, not recorded
QUIET = 2.0  # a phase ends when every update arrived or none arrived for this long
STATS = (("p50", 0.50), ("p99", 0.99), ("p99.9", 0.999))


def thing_id(binding: str) -> str:
    return f"urn:dev:bench:e2e-{binding}"


def td(binding: str) -> dict:
    return {
        "@context": "https://www.w3.org/2022/wot/td/v1.1",
        "id": thing_id(binding),
        "title": f"e2e {binding}",
        "securityDefinitions": {"nosec_sc": {"scheme": "nosec"}},
        "security": "nosec_sc",
        "properties": {"t": {"type": "integer", "observable": True, "forms": [{"href": "x"}]}},
    }


def envelope(thing: str, value: int) -> dict:
    """A property report as the NATS agent publishes it."""
    return {
        "messageType": "notification",
        "operation": "observeproperty",
        "thingID": thing,
        "name": "t",
        "value": value,
    }


class Phase:
    """One paced run of ``count`` updates on one path: the send and arrival time of each,
    by sequence number (``first`` .. ``first + count - 1``)."""

    def __init__(self, first: int, count: int) -> None:
        self.first = first
        self.sent = [0.0] * count
        self.arrived = [0.0] * count  # 0.0: not (yet)
        self.received = 0
        self.duplicates = 0
        self.changed = asyncio.Event()

    def hit(self, seq: object) -> None:
        now = time.perf_counter()
        index = seq - self.first if isinstance(seq, int) else -1
        if not 0 <= index < len(self.sent):
            return  # a value from another phase (a late one, or the stream's first)
        if self.arrived[index]:
            self.duplicates += 1
        else:
            self.arrived[index] = now
            self.received += 1
        self.changed.set()

    async def settle(self, quiet: float) -> None:
        """Until every update arrived, or none arrived for ``quiet`` seconds."""
        while self.received < len(self.sent):
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), quiet)
            except TimeoutError:
                return

    @property
    def lost(self) -> int:
        return len(self.sent) - self.received

    def latencies(self) -> list[float]:
        """Seconds, in sending order, of the updates that arrived."""
        return [a - s for s, a in zip(self.sent, self.arrived, strict=True) if a]


class Tally:
    """One path at one rate over the rounds: its phases, and the CPU the hub and this
    process used in them."""

    def __init__(self) -> None:
        self.phases: list[Phase] = []
        self.hub_cpu = self.own_cpu = self.wall = 0.0

    async def measure(self, server: ServerProcess, run: Awaitable[Phase]) -> None:
        hub_cpu = (await server.ask("cpu"))["cpu"]
        own_cpu, wall = time.process_time(), time.perf_counter()
        self.phases.append(await run)
        self.own_cpu += time.process_time() - own_cpu
        self.wall += time.perf_counter() - wall
        self.hub_cpu += (await server.ask("cpu"))["cpu"] - hub_cpu

    @property
    def received(self) -> int:
        return sum(phase.received for phase in self.phases)

    @property
    def lost(self) -> int:
        return sum(phase.lost for phase in self.phases)

    def ms(self, fraction: float) -> float | None:
        latencies = [latency for phase in self.phases for latency in phase.latencies()]
        return round(1000 * percentile(latencies, fraction), 3) if latencies else None

    def outcome(self) -> dict:
        """What happened at this rate (the worst round's): the rate the sender kept, the
        worst latency, the queue's growth over a phase, how long the last ones took, and
        the CPU each side used."""
        sent_per_s, gap, growth, drain, worst = math.inf, 0.0, 0.0, 0.0, 0.0
        for phase in self.phases:
            sent = phase.sent
            if len(sent) > 1:
                sent_per_s = min(sent_per_s, (len(sent) - 1) / (sent[-1] - sent[0]))
                gap = max(gap, max(b - a for a, b in itertools.pairwise(sent)))
            latencies = phase.latencies()
            if not latencies:
                continue
            tenth = max(1, len(latencies) // 10)
            first, last = latencies[:tenth], latencies[-tenth:]
            growth = max(growth, statistics.median(last) - statistics.median(first))
            drain = max(drain, max(phase.arrived) - sent[-1])
            worst = max(worst, max(latencies))
        updates = sum(len(phase.sent) for phase in self.phases)
        return {
            "sent_per_s": round(sent_per_s) if sent_per_s != math.inf else None,
            "sender_gap_ms": round(1000 * gap, 2),
            "max_ms": round(1000 * worst, 2),
            "growth_ms": round(1000 * growth, 2),
            "drain_ms": round(1000 * drain, 2),
            "duplicates": sum(phase.duplicates for phase in self.phases) or None,
            "hub_cpu_us": round(1e6 * self.hub_cpu / updates, 1),
            "client_cpu_share": round(self.own_cpu / self.wall, 2),
        }


async def paced(send: Callable[[int], Awaitable[None]], phase: Phase, rate: float) -> None:
    """Send the phase's updates at ``rate`` a second, each scheduled at a fixed time from
    the start; its send time is read just before it goes. The sleeps are the pacing (the
    loop wakes at millisecond granularity, so at 5,000/s updates leave in small bursts);
    an update that is late goes at once, after one turn of the loop for the receivers."""
    started = time.perf_counter()
    for index in range(len(phase.sent)):
        await asyncio.sleep(max(0.0, started + index / rate - time.perf_counter()))
        phase.sent[index] = time.perf_counter()
        await send(phase.first + index)


class Route:
    """A path from a sender to a receiver: ``send(seq)`` reports one value; ``listening``
    opens the receiver for one phase, calling ``deliver(seq)`` for each value."""

    # Sequence numbers are unique over the run and every route (two share the NATS
    # agent's Thing), so a value of another phase is never taken for one of this phase.
    next_seq = 1

    def __init__(
        self,
        name: str,
        send: Callable[[int], Awaitable[None]],
        listening: Callable[[Callable[[object], None]], contextlib.AbstractAsyncContextManager],
    ) -> None:
        self.name, self.send, self.listening = name, send, listening
        self.current: Phase | None = None

    def deliver(self, seq: object) -> None:
        if self.current is not None:
            self.current.hit(seq)

    async def run(self, rate: float, count: int, quiet: float = QUIET) -> Phase:
        phase = Phase(Route.next_seq, count)
        Route.next_seq += count
        self.current = phase
        try:
            await paced(self.send, phase, rate)
            await phase.settle(quiet)
        finally:
            self.current = None
        return phase

    async def warm_up(self, rate: float) -> None:
        """One update at a time until one arrives (the receiver is live), then a short
        burst at the rate."""
        for _ in range(40):
            if (await self.run(rate, 1, quiet=0.5)).received:
                break
        else:
            raise RuntimeError(f"{self.name}: no update arrived in 20 s")
        await self.run(rate, WARMUP)


@contextlib.asynccontextmanager
async def sse_stream(
    session: aiohttp.ClientSession, thing: str, deliver: Callable[[object], None]
) -> AsyncIterator[None]:
    """An SSE stream on the Thing's property ``t``, open for one phase."""
    ready = asyncio.Event()

    async def read() -> None:
        path = f"/things/{quote(thing, safe='')}/properties/t"
        async with session.get(path, headers={"Accept": "text/event-stream"}) as response:
            response.raise_for_status()
            ready.set()
            async for line in response.content:
                if line.startswith(b"data:"):
                    deliver(orjson.loads(line[5:]))

    task = asyncio.create_task(read())
    opened = asyncio.create_task(ready.wait())
    try:
        await asyncio.wait({task, opened}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # raises what went wrong
        if not ready.is_set():
            raise RuntimeError(f"SSE stream on {thing}: no response in 10 s")
        yield
        if task.done():  # the hub ended it (its updates count as lost): say why
            reason = task.exception() or "the hub ended the stream"
            print(f"SSE stream on {thing} ended early: {reason!r}", file=sys.stderr)
    finally:
        for waiting in (task, opened):
            waiting.cancel()
        await asyncio.gather(task, opened, return_exceptions=True)


@contextlib.asynccontextmanager
async def nats_subscription(
    consumer: NatsConsumer, thing: str, deliver: Callable[[object], None]
) -> AsyncIterator[None]:
    """The NATS consumer observing the Thing's property ``t``, for one phase."""
    subscription = await consumer.observe_property(
        thing, "t", callback=lambda message: deliver(message.get("value"))
    )
    await consumer.nc.flush()
    try:
        yield
    finally:
        await subscription.unsubscribe()


@contextlib.asynccontextmanager
async def raw_subscription(
    connection: nats.NATS, deliver: Callable[[object], None]
) -> AsyncIterator[None]:
    async def on_message(msg) -> None:
        deliver(orjson.loads(msg.data).get("value"))

    subscription = await connection.subscribe(RAW_SUBJECT, cb=on_message)
    await connection.flush()
    try:
        yield
    finally:
        await subscription.unsubscribe()


async def measure(args) -> list[Result]:
    async with hub_process("--mqtt", "--agents=" + ",".join(AGENTS)) as (hello, server):
        return await _measure(args, hello, server)


async def _measure(args, hello: dict, server: ServerProcess) -> list[Result]:
    ca = hello["ca"].encode()
    tls = ssl.create_default_context(cadata=hello["ca"])
    nats_agent = await NatsAgent.connect(
        hello["nats_url"], "e2e-nats", password=PASSWORD, ca_pem=ca
    )
    await nats_agent.update_thing(td("nats"))
    mqtt_agent = MqttClient(
        f"mqtts://127.0.0.1:{hello['mqtt_port']}",
        "e2e-mqtt",
        password=PASSWORD,
        ca_pem=ca,
        agent=True,
    )
    await mqtt_agent.connect()
    await mqtt_agent.update_thing(td("mqtt"))
    ws_url = hello["http_url"].replace("https://", "wss://") + "/ws"
    ws_agent = WsClient(ws_url, ca=ca, basic=("e2e-websocket", PASSWORD), reconnect=False)
    await ws_agent.connect()
    await ws_agent.update_thing(td("websocket"))
    consumer = await NatsConsumer.connect(
        hello["nats_url"], "bench-viewer", password=PASSWORD, ca_pem=ca
    )
    session = aiohttp.ClientSession(
        hello["http_url"],
        headers={"Authorization": f"Bearer {hello['token']}"},
        connector=aiohttp.TCPConnector(ssl=tls),
    )
    # The baseline: two connections of the hub's own user (full permissions), no hub.
    raw_pub = await nats.connect(hello["nats_url"], tls=tls, nkeys_seed_str=hello["hub_seed"])
    raw_sub = await nats.connect(hello["nats_url"], tls=tls, nkeys_seed_str=hello["hub_seed"])

    async def send_nats(seq: int) -> None:
        await nats_agent.report_property(thing_id("nats"), "t", seq)

    async def send_mqtt(seq: int) -> None:
        mqtt_agent.report_property(thing_id("mqtt"), "t", seq)

    async def send_ws(seq: int) -> None:
        await ws_agent.report_property(thing_id("websocket"), "t", seq)

    async def send_raw(seq: int) -> None:
        await raw_pub.publish(RAW_SUBJECT, orjson.dumps(envelope(thing_id("nats"), seq)))

    def sse(binding: str) -> Callable:
        return lambda deliver: sse_stream(session, thing_id(binding), deliver)

    raw = Route("raw", send_raw, lambda deliver: raw_subscription(raw_sub, deliver))
    routes = [
        Route(
            "nats->nats",
            send_nats,
            lambda deliver: nats_subscription(consumer, thing_id("nats"), deliver),
        ),
        Route("nats->sse", send_nats, sse("nats")),
        Route("mqtt->sse", send_mqtt, sse("mqtt")),
        Route("websocket->sse", send_ws, sse("websocket")),
    ]
    tallies: dict[tuple[int, str], Tally] = {}
    # What exists now lives to the end: keep the collector from walking it in the
    # measured phases (it would add its pauses to both sides' tails).
    gc.collect()
    gc.freeze()
    try:
        for _ in range(args.rounds):
            for rate in args.rates:
                count = max(1, round(rate * args.seconds))
                for route in (raw, *routes):
                    tally = tallies.setdefault((rate, route.name), Tally())
                    async with route.listening(route.deliver):
                        await route.warm_up(rate)
                        await tally.measure(server, route.run(rate, count))
    finally:
        gc.unfreeze()
        await session.close()
        for connection in (raw_pub, raw_sub):
            await connection.close()
        await consumer.close()
        await nats_agent.close()
        await mqtt_agent.close()
        await ws_agent.close()
    results = []
    for rate in args.rates:
        base = tallies[(rate, "raw")]
        for route in routes:
            tally = tallies[(rate, route.name)]
            for stat, fraction in STATS:
                extra = {
                    "rate": rate,
                    "updates": tally.received,
                    "lost": tally.lost,
                    "baseline_lost": base.lost,
                }
                if stat == "p50":
                    extra |= tally.outcome()
                figure = tally.ms(fraction)
                results.append(
                    Result(
                        f"e2e_latency_{stat}",
                        f"{route.name} {rate}/s",
                        figure,
                        base.ms(fraction),
                        BASELINE,
                        extra,
                    )
                )
    return results


def report(results: list[Result], as_json: bool) -> None:
    """The harness's lines with the figure in ms (``figure``, ``baseline_figure`` and
    ``unit``, as bench/_report.py reads them)."""
    lines = []
    for r in results:
        line = {
            "bench": r.bench,
            "backend": r.backend,
            "figure": r.ops_per_s,
            "unit": "ms",
            "baseline_figure": r.baseline_ops_per_s,
            "baseline": r.baseline,
            "ratio": r.ratio if r.ops_per_s is not None else None,
        }
        lines.append(line | {k: v for k, v in r.extra.items() if v is not None})
    if as_json:
        for line in lines:
            print(json.dumps(line), flush=True)
        return
    print(f"{'bench':<20}{'backend':<22}{'ms':>9}{'baseline ms':>13}{'ratio':>7}  notes")
    for line in lines:
        notes = {k: v for k, v in line.items() if k not in ("bench", "backend", "figure", "unit")}
        for key in ("baseline_figure", "baseline", "ratio", "rate"):
            notes.pop(key)
        ratio = f"{line['ratio']:>7.2f}" if line["ratio"] else f"{'-':>7}"
        print(
            f"{line['bench']:<20}{line['backend']:<22}{_ms(line['figure'])}"
            f"{_ms(line['baseline_figure'], 13)}{ratio}  "
            + "  ".join(f"{k}={v}" for k, v in notes.items())
        )
    print(f"baseline: {BASELINE}; ratio = figure / baseline (lower is better)")


def _ms(value: float | None, width: int = 9) -> str:
    return f"{value:>{width}.3f}" if value is not None else f"{'-':>{width}}"


def rates(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main() -> None:
    args = arguments(
        __doc__.splitlines()[0],
        **{
            "--rates": {
                "type": rates,
                "default": [1000, 5000],
                "help": "updates a second, comma-separated",
            },
            "--seconds": {"type": float, "default": 2.0, "help": "length of a phase"},
        },
    )
    logging.getLogger("asyncio").setLevel(logging.ERROR)  # TLS EOF notes from clients
    if args.rounds == 15:  # the harness default is for throughput; latency pools rounds
        args.rounds = 2
    report(asyncio.run(measure(args)), args.json)


if __name__ == "__main__":
    main()
