"""WebSocket binding throughput over TLS, each figure next to a baseline from the same run.

- ws_fanout_1 / ws_fanout_50: one agent connection (aiohttp) sends ``--values``
  property notifications a round (``observeproperty``, the envelope as JSON) to the
  real hub (LevelDB store, the hub CA's TLS context, ``/ws``), which checks each one
  (envelope parser, authorization, the property's schema), stores it and fans it out
  to 1 and to 50 consumer connections (aiohttp) that sent ``observeproperty``. Figure:
  notifications received by all consumers / time from the first send until the last
  consumer got the last value. Every consumer must get every value in order; otherwise
  the line reports ``lost`` / ``out_of_order``. The agent stays at most ``WINDOW``
  (200) values ahead of the slowest consumer, so the hub's overflow limit (1,000
  queued notifications) is never the point.
  Baseline: an echo of the same messages: a bare Starlette WebSocket endpoint on the
  same ``HttpServer`` class with the same TLS context and WebSocket settings
  (``ws_max_size``, pings) that parses each frame from the agent with orjson, encodes
  it once and sends the text to every consumer connection; no envelope checks, no
  authorization, no store. Same clients, same pacing.

Process layout (as bench/http.py). Each server runs in its own subprocess (this script
with ``--serve hub|bare``) with its own event loop; the agent and the consumers run in
this process. In one process the clients' TLS and WebSocket work would take turns with
the server's on one loop and the GIL, and each figure would be half of each; with two
cores, the server under test has one to itself. Rounds alternate hub, baseline, hub...;
the best of ``--rounds`` is kept. Each line also gives the server process's CPU time per
delivered notification (``server_cpu_us``) over all rounds and ``cpu_ratio`` (baseline
CPU per notification / ours): the steadier comparison when ``client_cpu_share`` (this
process's CPU / wall time) is near 1, i.e. when the clients, not the server, set the
pace (likely with 50 consumers: one Python process decrypts and parses every copy).

    python bench/websocket.py [--json] [--rounds N] [--values N] [--consumers 1,50]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import ssl
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _harness import (
    Result,
    ServerProcess,
    arguments,
    bench_config,
    bench_td,
    command_lines,
    report,
    run_server,
    say,
    unshadow_packages,
)

unshadow_packages()
import aiohttp  # noqa: E402
import orjson  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.routing import WebSocketRoute  # noqa: E402
from starlette.websockets import WebSocket, WebSocketDisconnect  # noqa: E402

from bindings.common.asgi_server import HttpServer  # noqa: E402
from bucketstore import open_store  # noqa: E402
from certs import CertificateAuthority  # noqa: E402
from hub.runtime import Hub  # noqa: E402

THING = "urn:dev:bench:thermostat-1"
PROPERTY = "temperature"
PASSWORD = "bench password, not a secret"
WINDOW = 200  # the most values the agent may be ahead of the slowest consumer
TD = bench_td(THING, "Thermostat", **{PROPERTY: {"type": "integer", "readOnly": True}})
WS_SETTINGS = {"ws_max_size": 2 * 1_048_576, "ws_ping_interval": 20.0, "ws_ping_timeout": 20.0}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- the servers (child processes) ----------------------------------------------------------


async def control(hello: dict[str, Any]) -> None:
    """Say where the server is, then answer "cpu" and "quit" from stdin."""
    stdin = await command_lines()
    say(**hello, pid=os.getpid())
    while line := (await stdin.readline()).decode().split():
        if line[0] == "quit":
            break
        say(cpu=cpu_seconds())


async def serve_hub() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = bench_config(Path(tmp) / "home")
        config.home.mkdir(mode=0o700)
        store = open_store(config.store_path, "leveldb")
        try:
            hub = Hub(config, store)
            await hub.start()
            try:
                tokens = {}
                for client_id, kind, role in (
                    ("bench-agent", "agent", "agent"),
                    ("bench-viewer", "consumer", "viewer"),
                ):
                    hub.auth.add_client(client_id, kind, role, password=PASSWORD)
                    tokens[kind] = hub.auth.new_token(client_id)["token"]
                await control(
                    {
                        "url": hub.websocket.forms.url,
                        "ca": hub.ca.ca_cert_pem.decode(),
                        "agent_token": tokens["agent"],
                        "consumer_token": tokens["consumer"],
                    }
                )
            finally:
                await hub.stop()
        finally:
            store.close()


def bare_app() -> Starlette:
    """/ws?role=agent: frames are decoded, encoded once and sent to every consumer;
    /ws?role=consumer: acknowledged, then receives."""
    consumers: set[WebSocket] = set()

    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept(subprotocol="webthingprotocol")
        if websocket.query_params.get("role") == "consumer":
            consumers.add(websocket)
            try:
                await websocket.send_text('{"status":"completed"}')
                while (await websocket.receive())["type"] != "websocket.disconnect":
                    pass
            finally:
                consumers.discard(websocket)
            return
        try:
            while True:
                frame = await websocket.receive()
                if frame["type"] == "websocket.disconnect":
                    return
                text = orjson.dumps(orjson.loads(frame["text"])).decode()
                for consumer in list(consumers):
                    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                        await consumer.send_text(text)
        except WebSocketDisconnect:
            return

    return Starlette(routes=[WebSocketRoute("/ws", endpoint)])


async def serve_bare() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(None, "memory")
        ca = CertificateAuthority.load_or_create(Path(tmp) / "home", store.bucket("certs"))
        certificate = ca.ensure_server_certificate([])
        server = HttpServer(
            bare_app(),
            "127.0.0.1",
            0,
            ssl_context=ca.ssl_context_for_server(),
            server_cert=certificate.cert_path,
            **WS_SETTINGS,
        )
        await server.start()
        try:
            url = server.url.replace("https://", "wss://") + "/ws"
            await control(
                {"url": url, "ca": ca.ca_cert_pem.decode(), "agent_token": "", "consumer_token": ""}
            )
        finally:
            await server.stop()
            store.close()


# -- the load (this process) ----------------------------------------------------------------


class Server(ServerProcess):
    def __init__(self, kind: str) -> None:
        super().__init__(__file__, kind)

    async def start(self) -> None:
        self.hello = await super().start()
        self.ssl = ssl.create_default_context(cadata=self.hello["ca"])

    async def cpu(self) -> float:
        return (await self.ask("cpu"))["cpu"]

    async def open(self, session: aiohttp.ClientSession, role: str):
        hub = self.kind == "hub"
        token = self.hello[f"{role}_token"]
        ws = await session.ws_connect(
            self.hello["url"] if hub else self.hello["url"] + f"?role={role}",
            ssl=self.ssl,
            headers={"Authorization": f"Bearer {token}"} if hub else {},
            protocols=("webthingprotocol",),
            max_msg_size=0,
        )
        if hub and role == "agent":
            await ws.send_str(
                orjson.dumps(
                    {"messageType": "request", "operation": "updatething",
                     "correlationID": "td", "input": TD}
                ).decode()
            )  # fmt: skip
            reply = orjson.loads((await ws.receive(timeout=30)).data)
            if reply.get("status") == "failed":
                raise RuntimeError(f"registering the TD: {reply}")
        elif hub:
            await ws.send_str(
                orjson.dumps(
                    {"messageType": "request", "operation": "observeproperty",
                     "thingID": THING, "name": PROPERTY, "correlationID": "obs"}
                ).decode()
            )  # fmt: skip
            reply = orjson.loads((await ws.receive(timeout=30)).data)
            if reply.get("status") != "completed":
                raise RuntimeError(f"observing: {reply}")
        elif role == "consumer":
            await ws.receive(timeout=30)  # the acknowledgement
        return ws


class Consumer:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse, progress: asyncio.Event) -> None:
        self.ws = ws
        self.progress = progress
        self.expect = 0
        self.received = 0
        self.out_of_order = 0
        self.last = -1
        self.finished_at = 0.0
        self.done = asyncio.Event()
        self.task = asyncio.create_task(self.read())

    def round(self, start: int, count: int) -> None:
        self.expect, self.last, self.received = start, start + count - 1, 0
        self.done.clear()

    async def read(self) -> None:
        async for frame in self.ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                break
            value = orjson.loads(frame.data).get("value")
            if not isinstance(value, int):
                continue
            self.received += 1
            if value != self.expect:
                self.out_of_order += 1
            self.expect = value + 1
            self.progress.set()
            if value == self.last:
                self.finished_at = time.perf_counter()
                self.done.set()
        self.done.set()


async def drain(ws: aiohttp.ClientWebSocketResponse) -> None:
    async for frame in ws:
        if frame.type == aiohttp.WSMsgType.TEXT and b'"failed"' in frame.data.encode():
            print(f"the hub refused the agent: {frame.data}", file=sys.stderr)


async def fanout_round(
    server: Server,
    agent,
    consumers: list[Consumer],
    progress: asyncio.Event,
    start: int,
    count: int,
) -> tuple[float, float, int]:
    """(notifications/s, client CPU share, lost) of one round."""
    for consumer in consumers:
        consumer.round(start, count)
    server_cpu = await server.cpu()
    cpu, started = time.process_time(), time.perf_counter()
    for value in range(start, start + count):
        while value - start - min(c.received for c in consumers) >= WINDOW:
            progress.clear()
            await asyncio.wait_for(progress.wait(), 30)
        await agent.send_str(
            orjson.dumps(
                {"messageType": "notification", "operation": "observeproperty",
                 "thingID": THING, "name": PROPERTY, "value": value}
            ).decode()
        )  # fmt: skip
    waiting = [asyncio.create_task(c.done.wait()) for c in consumers]
    _, pending = await asyncio.wait(waiting, timeout=max(30.0, count * len(consumers) / 1000))
    for task in pending:
        task.cancel()
    wall = time.perf_counter() - started
    share = (time.process_time() - cpu) / wall
    server.server_cpu += await server.cpu() - server_cpu
    received = sum(c.received for c in consumers)
    server.ops += received
    last = max((c.finished_at for c in consumers), default=time.perf_counter())
    return (
        received / (max(last, started + 1e-9) - started),
        share,
        count * len(consumers) - received,
    )


async def measure_fanout(servers: dict[str, Server], consumers: int, args) -> Result:
    for server in servers.values():
        server.server_cpu, server.ops = 0.0, 0
    sessions = {n: aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) for n in servers}
    readers: dict[str, list[Consumer]] = {}
    agents = {}
    drains = []  # the agents read what comes (pings: aiohttp answers them as it reads)
    progress = {name: asyncio.Event() for name in servers}
    try:
        for name, server in servers.items():
            agents[name] = await server.open(sessions[name], "agent")
            drains.append(asyncio.create_task(drain(agents[name])))
            sockets = await asyncio.gather(
                *(server.open(sessions[name], "consumer") for _ in range(consumers))
            )
            readers[name] = [Consumer(ws, progress[name]) for ws in sockets]
        best = dict.fromkeys(servers, 0.0)
        share = dict.fromkeys(servers, 0.0)
        lost = dict.fromkeys(servers, 0)
        first = iter(range(1, 1 << 62, args.values))
        for _ in range(args.rounds):
            for name, server in servers.items():
                figure, client_share, missing = await fanout_round(
                    server, agents[name], readers[name], progress[name], next(first), args.values
                )
                lost[name] += missing
                if figure > best[name]:
                    best[name], share[name] = figure, client_share
    finally:
        for name in servers:
            sockets = [c.ws for c in readers.get(name, [])]
            if name in agents:
                sockets.append(agents[name])
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
            for consumer in readers.get(name, []):
                consumer.task.cancel()
            await sessions[name].close()
        for task in drains:
            task.cancel()
    cpu = {n: round(1e6 * s.server_cpu / max(s.ops, 1), 2) for n, s in servers.items()}
    return Result(
        f"ws_fanout_{consumers}",
        "wss",
        best["hub"],
        best["bare"],
        "bare Starlette WebSocket echo (decode, encode, send to each), same server and TLS",
        {
            "consumers": consumers,
            "values": args.values,
            "lost": lost["hub"],
            "baseline_lost": lost["bare"],
            "out_of_order": sum(c.out_of_order for c in readers["hub"]),
            "server_cpu_us": cpu["hub"],
            "baseline_server_cpu_us": cpu["bare"],
            "cpu_ratio": round(cpu["bare"] / cpu["hub"], 3) if cpu["hub"] else None,
            "client_cpu_share": round(share["hub"], 2),
            "baseline_client_cpu_share": round(share["bare"], 2),
        },
    )


async def measure(args: argparse.Namespace) -> list[Result]:
    servers = {"hub": Server("hub"), "bare": Server("bare")}
    try:
        await asyncio.gather(*(server.start() for server in servers.values()))
        counts = [int(n) for n in args.consumers.split(",")]
        return [await measure_fanout(servers, n, args) for n in counts]
    finally:
        await asyncio.gather(*(server.stop() for server in servers.values()))


def main() -> None:
    args = arguments(
        __doc__.splitlines()[0],
        **{
            "--values": {"type": int, "default": 2000, "help": "values the agent sends a round"},
            "--consumers": {"default": "1,50", "help": "consumer connections, comma-separated"},
            "--serve": {"choices": ["hub", "bare"], "help": argparse.SUPPRESS},
        },
    )
    if args.serve:
        run_server(serve_hub() if args.serve == "hub" else serve_bare())
        return
    report(asyncio.run(measure(args)), args.json)


if __name__ == "__main__":
    main()
