"""HTTP binding throughput over HTTPS, each figure next to a baseline from the same run.

- readproperty: GET /things/{id}/properties/{name} with a bearer token, from
  ``--clients`` concurrent keep-alive aiohttp clients (one ClientSession, connector
  limit = clients), against the real hub (LevelDB store, the hub CA's TLS context, a
  Thing registered by an in-process agent that reported a value). Each round does
  ``--requests`` requests (or stops after ``--seconds``). Baseline: a bare Starlette app
  with one route returning the same JSON body and header, served by the same
  ``HttpServer`` class with the same kind of TLS context (the hub CA's
  ``ssl_context_for_server()``) and the settings the hub's runtime gives it (read
  deadline, keep-alive, connection limit), hit by the same client setup. A second line
  puts the hub beside node-wot's own HTTP server (bench/nodewot_http.js, run by node
  with the node-wot that ``make test`` installs in tests/interop/nodewot): one Thing, the
  same property over HTTPS with a certificate from a CA made here, HTTP Basic checked on
  every request (its bearer check never matches in 0.9.2), the same clients and load.
  Without node or node-wot that line is left out, saying why on stderr.
- sse_fanout: ``--subscribers`` aiohttp SSE readers on the same URL with
  ``Accept: text/event-stream``; the agent then reports ``--values`` property values a
  round as fast as the streams take them (it yields to the loop after each report and
  waits while some stream has 100 or more notifications queued, so the hub's overflow
  limit of 1,000 is never the point). Figure: notifications received by all subscribers
  / time from the start of the round until the last subscriber got the last value. Every
  subscriber must get every value in order; otherwise the line reports ``lost``.
  Baseline: the same fan-out from a bare sse-starlette endpoint fed from an
  ``asyncio.Queue`` per subscriber, with the same pacing, on the same server class.

Process layout. Each server (the hub and the baseline) runs in its own subprocess (this
script with ``--serve hub|bare``), with its own event loop; the load (aiohttp clients)
runs in this process. In one process on one loop the client's work (TLS, HTTP parsing,
SSE parsing) would take turns with the server's and the figure would be half of each; a
thread with its own loop still shares the GIL. With subprocesses, on 2 cores the server
under test has a core to itself and the clients the other (the other server idles). The
agent lives inside the server process, as device bindings will, and is driven over the
subprocess's stdin ("publish START N"). Rounds alternate ours, baseline, ours, ... and the
best of ``--rounds`` is kept, as in the other benchmarks. Each line also gives the server
process's CPU time per operation over all rounds (``server_cpu_us``): it does not depend
on whether the client kept the server busy, so ``cpu_ratio`` (baseline CPU per operation
/ ours) is the steadier comparison when ``client_cpu_share`` (client CPU / wall time)
is near 1, i.e. when the client, not the server, bounded a figure.

``--profile PREFIX`` runs cProfile in both servers while the rounds run and writes
``PREFIX-hub.prof`` and ``PREFIX-bare.prof`` (the figures are then not comparable).

    python bench/http.py [--json] [--rounds N] [--clients N] [--requests N]
                         [--seconds S] [--subscribers N] [--values N] [--profile PREFIX]
                         [--only readproperty|sse_fanout]

This file is named after the stdlib ``http`` package: nothing may import ``http`` before
``unshadow_packages()`` takes bench/ off the import path.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import resource
import shutil
import ssl
import sys
import tempfile
import time
from collections.abc import Callable
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
from sse_starlette.sse import EventSourceResponse, ServerSentEvent  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

from bindings.common.asgi_server import HttpServer  # noqa: E402
from bucketstore import open_store  # noqa: E402
from certs import CertificateAuthority  # noqa: E402
from hub.runtime import Hub  # noqa: E402
from vocabulary.envelope import parse_message  # noqa: E402
from vocabulary.identity import Client  # noqa: E402

THING = "urn:dev:bench:thermostat-1"
PROPERTY = "temperature"
PATH = f"/things/{THING}/properties/{PROPERTY}"
PASSWORD = "bench password, not a secret"
NODEWOT_MODULES = Path(__file__).parent.parent / "tests" / "interop" / "nodewot" / "node_modules"
NODEWOT_VERSION = "0.9.2"  # as tests/interop/nodewot/package-lock.json pins it
WINDOW = 100  # the most notifications a stream may have queued before the agent waits
TD = bench_td(THING, "Thermostat", **{PROPERTY: {"type": "number", "readOnly": True}})


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- the servers (child processes) ----------------------------------------------------------


class Served:
    """What a server process offers its control loop."""

    url: str
    ca_pem: str
    token: str

    def publish(self, value: int) -> None:
        raise NotImplementedError

    def backlog(self) -> int:
        """The most notifications any subscriber has queued."""
        raise NotImplementedError

    def subscribers(self) -> int:
        raise NotImplementedError


class ServedHub(Served):
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.url = hub.http_server.url
        self.ca_pem = hub.ca.ca_cert_pem.decode()
        hub.auth.add_client("bench-agent", "agent", "agent", password=PASSWORD)
        self.agent = hub.router.connect(Client("bench-agent", "agent"), "bench")
        self._send({"messageType": "request", "operation": "updatething", "input": TD})
        self.publish(21.5)
        hub.auth.add_client("bench-viewer", "consumer", "viewer", password=PASSWORD)
        self.token = hub.auth.new_token("bench-viewer")["token"]
        self.streams = hub.http.context.streams

    def _send(self, raw: dict[str, Any]) -> None:
        response = self.hub.router.handle(self.agent, parse_message(raw, "bench-agent"))
        if response is not None and response.error is not None:
            raise RuntimeError(f"the hub refused the agent: {response.error}")
        while self.agent.pending():  # the agent gets nothing it must act on
            self.agent._outbox.popleft()

    def publish(self, value: float) -> None:
        self._send(
            {
                "messageType": "notification",
                "operation": "observeproperty",
                "thingID": THING,
                "name": PROPERTY,
                "value": value,
            }
        )

    def backlog(self) -> int:
        return max((stream.pending() for stream in self.streams), default=0)

    def subscribers(self) -> int:
        return len(self.streams)


class ServedBare(Served):
    """One Starlette route: the value as JSON, or an SSE stream fed from a Queue."""

    def __init__(self) -> None:
        self.value: float = 21.5
        self.timestamp = "2026-01-01T00:00:00.000Z"
        self.queues: set[asyncio.Queue[tuple[int, float] | None]] = set()
        self.seq = 0
        self.epoch = "bench"

    def app(self) -> Starlette:
        async def prop(request: Request) -> Response:
            if "text/event-stream" in request.headers.get("accept", ""):
                queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
                self.queues.add(queue)

                async def events():
                    try:
                        while (item := await queue.get()) is not None:
                            seq, value = item
                            yield ServerSentEvent(
                                orjson.dumps(value).decode(),
                                event=PROPERTY,
                                id=f"{self.epoch}-{seq}",
                            )
                    finally:
                        self.queues.discard(queue)

                return EventSourceResponse(events(), ping=15, headers={"Cache-Control": "no-store"})
            return Response(
                orjson.dumps(self.value),
                200,
                {"Last-Modified-Time": self.timestamp},
                media_type="application/json",
            )

        return Starlette(routes=[Route("/things/{thing}/properties/{name}", prop, methods=["GET"])])

    def publish(self, value: float) -> None:
        self.seq += 1
        self.value = value
        for queue in self.queues:
            queue.put_nowait((self.seq, value))

    def backlog(self) -> int:
        return max((queue.qsize() for queue in self.queues), default=0)

    def subscribers(self) -> int:
        return len(self.queues)

    def close_streams(self) -> None:
        for queue in self.queues:
            queue.put_nowait(None)


async def control(served: Served, profile: str | None) -> None:
    """Say where the server is, then answer commands from stdin, one JSON line each."""
    stdin = await command_lines()

    profiler = cProfile.Profile() if profile else None
    say(url=served.url, ca=served.ca_pem, token=served.token, pid=os.getpid())
    if profiler:
        profiler.enable()
    try:
        while line := (await stdin.readline()).decode().split():  # EOF or "quit" ends it
            command, *numbers = line
            if command == "quit":
                break
            if command == "cpu":
                say(cpu=cpu_seconds(), subscribers=served.subscribers())
            elif command == "publish":
                start, count = map(int, numbers)
                for value in range(start, start + count):
                    served.publish(value)
                    await asyncio.sleep(0)  # the streams' writers take their turn
                    while served.backlog() >= WINDOW:
                        await asyncio.sleep(0.001)
                say(published=count)
            else:
                say(error=f"unknown command {command}")
    finally:
        if profiler:
            profiler.disable()
            profiler.dump_stats(profile)


async def serve_hub(profile: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = bench_config(Path(tmp) / "home")
        config.home.mkdir(mode=0o700)
        store = open_store(config.store_path, "leveldb")
        try:
            hub = Hub(config, store)
            await hub.start()
            try:
                await control(ServedHub(hub), profile)
            finally:
                await hub.stop()
        finally:
            store.close()


async def serve_bare(profile: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(None, "memory")
        ca = CertificateAuthority.load_or_create(Path(tmp) / "home", store.bucket("certs"))
        certificate = ca.ensure_server_certificate([])
        served = ServedBare()
        settings = bench_config(Path(tmp) / "home")  # as the hub's runtime serves
        server = HttpServer(
            served.app(),
            "127.0.0.1",
            0,
            ssl_context=ca.ssl_context_for_server(),
            server_cert=certificate.cert_path,
            read_timeout=settings.http_read_timeout,
            timeout_keep_alive=settings.http_keep_alive_timeout,
            limit_concurrency=settings.http_max_connections + 1,
        )
        await server.start()
        served.url = server.url
        served.ca_pem = ca.ca_cert_pem.decode()
        served.token = "not checked"
        try:
            await control(served, profile)
        finally:
            served.close_streams()
            await server.stop()
            store.close()


# -- the load (this process) ----------------------------------------------------------------


class Server(ServerProcess):
    """A server subprocess and the client side's view of it."""

    def __init__(self, kind: str, profile: str | None) -> None:
        super().__init__(
            __file__, kind, *(["--profile", f"{profile}-{kind}.prof"] if profile else [])
        )

    async def start(self) -> None:
        self.welcome(await super().start())

    def welcome(self, hello: dict[str, Any]) -> None:
        self.url, self.path = hello["url"], hello.get("path", PATH)
        self.authorization = hello.get("authorization") or f"Bearer {hello['token']}"
        self.ssl = ssl.create_default_context(cadata=hello["ca"])

    def session(self, limit: int, **headers: str) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            self.url,
            headers={"Authorization": self.authorization, **headers},
            connector=aiohttp.TCPConnector(ssl=self.ssl, limit=limit),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60),
        )


class NodeWotServer(Server):
    """node-wot's own HTTP server (bench/nodewot_http.js, run by node with the modules
    ``make test`` installs in tests/interop/nodewot) over HTTPS, with a server
    certificate issued by a CA made here; HTTP Basic on every request."""

    def __init__(self) -> None:
        super().__init__("nodewot", None)
        self.home = tempfile.TemporaryDirectory()

    @staticmethod
    def unavailable() -> str | None:
        """Why node-wot cannot run here, or None."""
        if shutil.which("node") is None:
            return "node is not installed (Debian package nodejs)"
        if not (NODEWOT_MODULES / "@node-wot" / "binding-http").is_dir():
            return f"node-wot is not installed: run `npm ci` in {NODEWOT_MODULES.parent}"
        return None

    async def start(self) -> None:
        home = Path(self.home.name)
        ca = CertificateAuthority.load_or_create(home, open_store(None, "memory").bucket("certs"))
        certificate = ca.ensure_server_certificate([])
        self.process = await asyncio.create_subprocess_exec(
            "node", str(Path(__file__).with_name("nodewot_http.js")),
            str(certificate.key_path), str(certificate.cert_path), THING,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,  # its TD validator's warnings
            env={**os.environ, "NODE_PATH": str(NODEWOT_MODULES)},
        )  # fmt: skip
        self.welcome({**await self._reply(), "ca": ca.ca_cert_pem.decode()})

    async def stop(self) -> None:
        await super().stop()
        self.home.cleanup()


class Timed:
    """Wall time, this process's CPU time and the server's CPU time of one round."""

    def __init__(self, server: Server) -> None:
        self.server = server

    async def __aenter__(self) -> Timed:
        self.server_cpu = (await self.server.ask("cpu"))["cpu"]
        self.cpu = time.process_time()
        self.started = time.perf_counter()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.wall = time.perf_counter() - self.started
        self.client_share = (time.process_time() - self.cpu) / self.wall
        if exc_info[0] is None:
            self.server.server_cpu += (await self.server.ask("cpu"))["cpu"] - self.server_cpu


async def get(session: aiohttp.ClientSession, path: str) -> None:
    async with session.get(path) as response:
        body = await response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {body[:200]!r}")


async def read_round(
    server: Server, session: aiohttp.ClientSession, clients: int, requests: int, seconds: float
) -> tuple[float, float]:
    """(requests/s, client CPU share) of one round."""
    await asyncio.gather(*(get(session, server.path) for _ in range(clients)))  # all open
    done = 0
    async with Timed(server) as timed:
        deadline = time.perf_counter() + seconds

        async def client() -> None:
            nonlocal done
            while done < requests and time.perf_counter() < deadline:
                done += 1
                await get(session, server.path)

        await asyncio.gather(*(client() for _ in range(clients)))
    server.ops += done
    return done / timed.wall, timed.client_share


class Subscriber:
    """One SSE stream; counts the values of the current round, which must come in order."""

    def __init__(self) -> None:
        self.expect = 0  # the next value
        self.last = -1  # the round's last value
        self.received = 0
        self.out_of_order = 0
        self.finished = asyncio.Event()
        self.finished_at = 0.0
        self.ended: str | None = None

    def round(self, start: int, count: int) -> None:
        self.expect, self.last, self.received = start, start + count - 1, 0
        self.finished_at = 0.0
        self.finished.clear()
        if self.ended:
            self.finished.set()

    def value(self, value: int) -> None:
        self.received += 1
        if value != self.expect:
            self.out_of_order += 1
        self.expect = value + 1
        if value == self.last:
            self.finished_at = time.perf_counter()
            self.finished.set()

    async def read(self, response: aiohttp.ClientResponse) -> None:
        buffer = b""
        try:
            async for chunk in response.content.iter_any():
                buffer += chunk
                *events, buffer = buffer.split(b"\r\n\r\n")
                for event in events:
                    kind = data = None
                    for line in event.split(b"\r\n"):
                        if line.startswith(b"event: "):
                            kind = line[7:]
                        elif line.startswith(b"data: "):
                            data = line[6:]
                    if kind == PROPERTY.encode() and data is not None:
                        self.value(int(orjson.loads(data)))
                    elif kind is not None:
                        self.ended = f"event {kind.decode()}: {data!r}"
            self.ended = self.ended or "the server ended the stream"
        except aiohttp.ClientError as exc:
            self.ended = f"{type(exc).__name__}: {exc}"
        finally:
            self.finished.set()


async def subscribe(
    server: Server, session: aiohttp.ClientSession, count: int
) -> tuple[list[Subscriber], list[asyncio.Task[None]]]:
    subscribers = [Subscriber() for _ in range(count)]
    responses = await asyncio.gather(*(session.get(PATH) for _ in range(count)))
    tasks = []
    for subscriber, response in zip(subscribers, responses, strict=True):
        if response.status != 200:
            raise RuntimeError(f"SSE {PATH}: {response.status} {await response.text()}")
        tasks.append(asyncio.create_task(subscriber.read(response)))
    for _ in range(300):  # the server has every stream's subscription in place
        if (await server.ask("cpu"))["subscribers"] >= count:
            break
        await asyncio.sleep(0.01)
    else:
        raise RuntimeError(f"the {server.kind} server did not see {count} subscribers")
    return subscribers, tasks


async def fanout_round(
    server: Server, subscribers: list[Subscriber], start: int, count: int
) -> tuple[float, float, int]:
    """(notifications/s, client CPU share, notifications lost) of one round."""
    for subscriber in subscribers:
        subscriber.round(start, count)
    async with Timed(server) as timed:
        await server.ask("publish", start, count)
        waiting = [asyncio.create_task(s.finished.wait()) for s in subscribers]
        _, pending = await asyncio.wait(waiting, timeout=max(30.0, count * len(subscribers) / 500))
        for task in pending:
            task.cancel()
    received = sum(s.received for s in subscribers)
    server.ops += received
    finished = [s.finished_at for s in subscribers if s.received and s.finished_at]
    last = max(finished, default=time.perf_counter())
    lost = count * len(subscribers) - received
    return received / (last - timed.started), timed.client_share, lost


def cpu_us(server: Server) -> float:
    return round(1e6 * server.server_cpu / max(server.ops, 1), 1)


def result(
    bench: str,
    ours: Server,
    base: Server,
    best: dict[str, float],
    share: dict[str, float],
    baseline: str,
    extra: dict[str, Any],
) -> Result:
    ours_cpu, base_cpu = cpu_us(ours), cpu_us(base)
    return Result(
        bench,
        "https",
        best[ours.kind],
        best[base.kind],
        baseline,
        {
            **extra,
            "server_cpu_us": ours_cpu,
            "baseline_server_cpu_us": base_cpu,
            "cpu_ratio": round(base_cpu / ours_cpu, 3) if ours_cpu else None,
            "client_cpu_share": round(share[ours.kind], 2),
            "baseline_client_cpu_share": round(share[base.kind], 2),
        },
    )


async def interleaved(
    rounds: int, servers: dict[str, Server], run: Callable[[Server], Any]
) -> tuple[dict[str, float], dict[str, float], dict[str, int]]:
    """Best figure of each server over ``rounds`` alternating rounds, the client CPU share
    of that round, and the sum of losses."""
    best = dict.fromkeys(servers, 0.0)
    share = dict.fromkeys(servers, 0.0)
    lost = dict.fromkeys(servers, 0)
    for _ in range(rounds):
        for name, server in servers.items():
            figure, client_share, *losses = await run(server)
            lost[name] += sum(losses)
            if figure > best[name]:
                best[name], share[name] = figure, client_share
    return best, share, lost


async def measure(args: argparse.Namespace) -> list[Result]:
    servers = {"hub": Server("hub", args.profile), "bare": Server("bare", args.profile)}
    if args.only in (None, "readproperty"):
        if (why := NodeWotServer.unavailable()) is None:
            servers["nodewot"] = NodeWotServer()
        else:
            print(f"readproperty beside node-wot not measured: {why}", file=sys.stderr)
    try:
        await asyncio.gather(*(server.start() for server in servers.values()))
        results = []
        if args.only in (None, "readproperty"):
            results += await reads(args, servers)
        if args.only in (None, "sse_fanout"):
            results.append(await fanout(args, {k: servers[k] for k in ("hub", "bare")}))
        return results
    finally:
        await asyncio.gather(*(server.stop() for server in servers.values()))


async def reads(args: argparse.Namespace, servers: dict[str, Server]) -> list[Result]:
    """The hub beside the bare route, and beside node-wot when it runs."""
    for server in servers.values():
        server.server_cpu, server.ops = 0.0, 0
    sessions = {name: s.session(args.clients) for name, s in servers.items()}
    try:
        best, share, _ = await interleaved(
            args.rounds,
            servers,
            lambda server: read_round(
                server, sessions[server.kind], args.clients, args.requests, args.seconds
            ),
        )
    finally:
        for session in sessions.values():
            await session.close()
    sizes = {"clients": args.clients, "requests": args.requests}
    results = [
        result(
            "readproperty",
            servers["hub"],
            servers["bare"],
            best,
            share,
            "bare Starlette route, same server class and TLS",
            sizes,
        )
    ]
    if "nodewot" in servers:
        results.append(
            result(
                "readproperty",
                servers["hub"],
                servers["nodewot"],
                best,
                share,
                f"node-wot {NODEWOT_VERSION} HttpServer, HTTPS, Basic",
                sizes,
            )
        )
    return results


async def fanout(args: argparse.Namespace, servers: dict[str, Server]) -> Result:
    for server in servers.values():
        server.server_cpu, server.ops = 0.0, 0
    sessions = {name: s.session(0, Accept="text/event-stream") for name, s in servers.items()}
    tasks: list[asyncio.Task[None]] = []
    try:
        streams = {}
        for name, server in servers.items():
            streams[name], started = await subscribe(server, sessions[name], args.subscribers)
            tasks += started
        first = iter(range(1, 1 << 62, args.values))
        best, share, lost = await interleaved(
            args.rounds,
            servers,
            lambda server: fanout_round(server, streams[server.kind], next(first), args.values),
        )
        out_of_order = {n: sum(s.out_of_order for s in subs) for n, subs in streams.items()}
        ended = {n: sum(bool(s.ended) for s in subs) for n, subs in streams.items()}
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for session in sessions.values():
            await session.close()
    return result(
        "sse_fanout",
        servers["hub"],
        servers["bare"],
        best,
        share,
        "sse-starlette endpoint fed by a Queue per subscriber",
        {
            "subscribers": args.subscribers,
            "values": args.values,
            "lost": lost["hub"],
            "baseline_lost": lost["bare"],
            "out_of_order": out_of_order["hub"],
            "streams_ended": ended["hub"],
        },
    )


def main() -> None:
    args = arguments(
        __doc__.splitlines()[0],
        **{
            "--clients": {"type": int, "default": 16, "help": "concurrent keep-alive clients"},
            "--requests": {"type": int, "default": 2000, "help": "readproperty requests a round"},
            "--seconds": {"type": float, "default": 10.0, "help": "longest readproperty round"},
            "--subscribers": {"type": int, "default": 100, "help": "SSE subscribers"},
            "--values": {"type": int, "default": 200, "help": "values reported a round"},
            "--only": {"choices": ["readproperty", "sse_fanout"], "help": "one bench"},
            "--profile": {"metavar": "PREFIX", "help": "cProfile the servers to PREFIX-*.prof"},
            "--serve": {"choices": ["hub", "bare"], "help": argparse.SUPPRESS},
        },
    )
    if args.serve:
        run_server((serve_hub if args.serve == "hub" else serve_bare)(args.profile))
        return
    report(asyncio.run(measure(args)), args.json)


if __name__ == "__main__":
    main()
