"""Cluster mode (issue 22): property updates per second through ``wothub serve`` and the
CPU each process spends per update, each figure next to raw nats-py pub/sub through the
same nats-servers in the same run; and the JetStream store's write latency.

Every node is ``wothub serve`` in a process of its own (its own home, its managed
nats-server, every listener on 127.0.0.1 and a free port; the homes of a cluster share
the secrets, hub/local_cluster.py). The setups, one after the other:

- ``single``: one node in single-node mode (LevelDB), the reference.
- ``3 nodes r1``: three nodes routed on loopback, ``--replicas 1``, every agent at node 1:
  the store in JetStream without its replication. (One node alone, ``--node n1`` without
  routes, does not start: nats-server refuses a JetStream cluster without routes.)
- ``3 nodes r3``: three nodes routed on loopback (3 replicas), measured twice: every
  agent at node 1 (``at n1``), then the agents spread over the three nodes (``spread``).
- ``single --workers 2``: only when ``wothub serve`` has ``--workers`` (else a row says
  so); the CPU of a node is that of every process under it, so workers count.

Load, as bench/nats.py: ``AGENTS`` NATS agents (clients/nats.py; password logins the
hub knows), each reporting ``level`` of its own Thing in turn, ``--values`` a round, at
most 200 in flight; one NATS consumer at node 1 observes the Things. Baseline: raw
nats-py publish of the same envelopes (the hub's own NATS user) from the agents' nodes
to a subscriber at node 1, same pacing. Best of ``--rounds``, interleaved.

Notes of each line: ``hub_cpu_us`` / ``nats_cpu_us``: CPU per update of all hub
processes / all nats-servers (from /proc/<pid>/stat, over every round), and per node
(``_n1`` ...); ``base_nats_cpu_us``: the nats-servers' CPU per raw message;
``twins_writes_per_s``: messages written to the twins bucket's stream (JetStream only)
while loaded, the coalesced write-behind (``[router] flush_interval``, 1 s).

Write latency (``--writes`` a replica count): ``Bucket.set`` of a twin-sized value on
a JetStreamStore (bucketstore/jetstream.py) connected to node 1 of the three-node
cluster, with 1 and with 3 replicas, interleaved, p50 and p99 in us; baseline:
``Bucket.set`` on a LevelDB store, which is itself shown next to a raw plyvel put.

    python bench/cluster.py [--json] [--rounds N] [--values N] [--writes N]
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from _harness import (
    BENCH_DIR,
    Counter,
    Result,
    arguments,
    paced,
    percentile,
    process_cpu_seconds,
    process_tree,
    report,
    unshadow_packages,
)
from _hub import PASSWORD, TD

unshadow_packages()
import nats  # noqa: E402

from bindings.nats.other_nodes import UNWATCHED_CHECK, UNWATCHED_GRACE  # noqa: E402
from bindings.nats.server import NatsKeys  # noqa: E402
from bucketstore import open_store  # noqa: E402
from bucketstore.jetstream import JetStreamStore, kv_name  # noqa: E402
from clients.http import HttpConsumer  # noqa: E402
from clients.nats import NatsAgent, NatsConsumer  # noqa: E402
from hub.listeners import read_listeners  # noqa: E402
from hub.local_cluster import node_homes, other_routes, serve_env  # noqa: E402
from vocabulary.things import CLIENTS_THING  # noqa: E402

ROOT = BENCH_DIR.parent
AGENTS = 3
VIEWER = "bench-viewer"
START_SECONDS = 90.0  # a node's start, the cluster's elections included
STOP_SECONDS = 30.0
LOGIN_SECONDS = 20.0  # until a client added at node 1 can log in at every node
# Every limit that is not what is measured out of the way (as bench_config does for the
# in-process hub): no per-client request rate, and no MQTT listener.
HOME_CONFIG = """\
[mqtt]
enabled = false

[limits]
max_requests_per_second = 1000000000
request_burst = 1000000000
"""
TWIN_VALUE = orjson.dumps({"level": {"value": 12345, "updated": "2026-12-06T18:13:00.000Z"}})
RAW = "raw nats-py pub/sub of the same envelopes, same servers and nodes"
LATENCY_PREFIX, LATENCY_BUCKET = "bench-r{}", "latency"  # the stores the latency writes to


def agent_id(i: int) -> str:
    return f"bench-agent-{i + 1}"


def thing_id(i: int) -> str:
    return f"urn:dev:bench:lamp-{i + 1}"


def envelope(thing: str, value: int) -> bytes:
    return orjson.dumps(
        {
            "messageType": "notification",
            "operation": "observeproperty",
            "thingID": thing,
            "name": "level",
            "value": value,
        }
    )


# -- the nodes -----------------------------------------------------------------------------


class ServedNode:
    """``wothub serve ARGS`` as a subprocess, its output in ``log``."""

    def __init__(self, name: str, home: Path, args: list[str], log: Path) -> None:
        self.name, self.home, self.args, self.log = name, home, args, log
        self.process: asyncio.subprocess.Process | None = None
        self.listeners: dict[str, Any] = {}
        self.pids: dict[int, str] = {}  # the node's processes: pid -> command name

    async def start(self) -> None:
        (self.home / "wothub.toml").write_text(HOME_CONFIG)
        with self.log.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "hub.cli", *self.args,
                cwd=ROOT, env=serve_env(), stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip

    async def ready(self) -> None:
        """Once its listeners are up (<home>/listeners.json names this process)."""
        assert self.process is not None
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.returncode is not None:
                raise RuntimeError(f"node {self.name} exited:\n{self.log.read_text()[-3000:]}")
            document = read_listeners(self.home)
            mine = document is not None and document.get("pid") == self.process.pid
            if mine and "nats" in document.get("listeners", {}):
                self.listeners = document["listeners"]
                self.pids = process_tree(self.process.pid)
                return
            await asyncio.sleep(0.1)  # polling the file the node writes once it is up
        raise RuntimeError(f"node {self.name} not up in {START_SECONDS:.0f} s")

    @property
    def nats_url(self) -> str:
        return self.listeners["nats"]["local_url"]

    @property
    def https_url(self) -> str:
        return self.listeners["https"]["local_url"]

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of its hub processes and of its nats-server."""
        used = {"hub": 0.0, "nats": 0.0}
        for pid, name in self.pids.items():
            with contextlib.suppress(OSError):
                used["nats" if name == "nats-server" else "hub"] += process_cpu_seconds(pid)
        return used

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), STOP_SECONDS)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


@dataclass(frozen=True)
class Setup:
    """What runs: ``nodes`` cluster nodes routed to each other (0: one node in
    single-node mode), with ``serve_args`` more; ``placements``: one measured figure
    each, named, the node index of each agent; ``latency``: measure the store's write
    latency on this cluster."""

    name: str
    nodes: int
    placements: tuple[tuple[str, tuple[int, ...]], ...]
    serve_args: tuple[str, ...] = ()
    latency: bool = False


AT_FIRST = (0,) * AGENTS
SETUPS = [
    Setup("single", 0, (("single", AT_FIRST),)),
    # One node alone cannot be a cluster node: nats-server refuses a JetStream cluster
    # without routes. Three nodes with 1 replica give the JetStream store's cost without
    # the replication's.
    Setup("3 nodes r1", 3, (("3 nodes r1 at n1", AT_FIRST),), ("--replicas", "1")),
    Setup(
        "3 nodes r3",
        3,
        (("3 nodes r3 at n1", AT_FIRST), ("3 nodes r3 spread", (0, 1, 2))),
        latency=True,
    ),
]
# More processes on one machine (`wothub serve --workers N`): measured once serve has it.
WORKERS = Setup("single --workers 2", 0, (("single --workers 2", AT_FIRST),), ("--workers", "2"))


def serve_has(flag: str) -> bool:
    done = subprocess.run(
        [sys.executable, "-m", "hub.cli", "serve", "--help"],
        cwd=ROOT, env=serve_env(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return flag in done.stdout


@contextlib.asynccontextmanager
async def running(setup: Setup, directory: Path) -> AsyncIterator[list[ServedNode]]:
    """The setup's nodes, started and ready; stopped on the way out."""
    directory.mkdir()
    if setup.nodes == 0:
        home = directory / "home"
        home.mkdir(mode=0o700)
        args = ["serve", "--home", str(home), *setup.serve_args]
        nodes = [ServedNode("single", home, args, directory / "single.log")]
    else:
        plans = node_homes(directory, setup.nodes)
        nodes = [
            ServedNode(
                plan.name,
                plan.home,
                [*plan.serve_args(other_routes(plans, plan)), *setup.serve_args],
                directory / f"{plan.name}.log",
            )
            for plan in plans
        ]
    try:
        for node in nodes:
            await node.start()
        await asyncio.gather(*(node.ready() for node in nodes))
        if setup.nodes or "--workers" in setup.serve_args:
            # A node (or worker) that no client watches stops receiving the other nodes' twin
            # notifications UNWATCHED_GRACE seconds after its start: measured after that,
            # as a node that runs for long is (the pause stands for the time it runs).
            await asyncio.sleep(UNWATCHED_GRACE + 2 * UNWATCHED_CHECK)
        yield nodes
    finally:
        await asyncio.gather(*(node.stop() for node in nodes))


# -- the clients ---------------------------------------------------------------------------


def ca_pem(nodes: list[ServedNode]) -> str:
    return (nodes[0].home / "certs" / "ca.pem").read_text()


def hub_seed(nodes: list[ServedNode]) -> str:
    """The hub's own NATS user (full permissions), shared by every node of a cluster."""
    return NatsKeys.load_or_create(nodes[0].home / "nats").hub_user.seed


async def add_clients(nodes: list[ServedNode]) -> None:
    """The agents and the viewer, added by the first-run admin at node 1."""
    found = [node.home / "admin.password" for node in nodes]
    password = next(path for path in found if path.exists()).read_text().strip()
    ca = str(nodes[0].home / "certs" / "ca.pem")
    async with HttpConsumer(nodes[0].https_url, ca=ca) as admin:
        await admin.login("admin", password)
        added = [(agent_id(i), "agent", "agent") for i in range(AGENTS)]
        for client, kind, role in [*added, (VIEWER, "consumer", "viewer")]:
            data = {"clientID": client, "kind": kind, "role": role, "password": PASSWORD}
            await admin.invoke_service(CLIENTS_THING, "addClient", data)


async def connected(connect: Callable[[], Awaitable[Any]]) -> Any:
    """``connect()``, again until the node has the account (another node added it)."""
    deadline = time.monotonic() + LOGIN_SECONDS
    while True:
        try:
            return await connect()
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)  # pacing the attempts while the account replicates


class Load:
    """The agents at their nodes, the consumer and the raw subscriber at node 1, the
    raw publishers at the agents' nodes."""

    def __init__(self, nodes: list[ServedNode]) -> None:
        self.nodes = nodes
        self.ca = ca_pem(nodes)
        self.tls = ssl.create_default_context(cadata=self.ca)
        self.seed = hub_seed(nodes)
        self.agents: list[NatsAgent] = []
        self.raw_pubs: list[Any] = []
        self.received, self.raw_received = Counter(), Counter()
        self.consumer: NatsConsumer | None = None
        self.raw_sub: Any = None

    async def open(self) -> None:
        first = self.nodes[0].nats_url
        self.consumer = await connected(
            lambda: NatsConsumer.connect(first, VIEWER, password=PASSWORD, ca_pem=self.ca)
        )
        self.raw_sub = await nats.connect(first, tls=self.tls, nkeys_seed_str=self.seed)

        async def on_raw(msg: Any) -> None:
            self.raw_received.hit()

        await self.raw_sub.subscribe("bench.raw", cb=on_raw)
        await self.raw_sub.flush()

    async def place(self, placement: tuple[int, ...], register: bool) -> None:
        """The agents (and raw publishers) connected to these nodes; ``register``: each
        registers its Thing, which the consumer then observes."""
        await self.close_publishers()
        assert self.consumer is not None
        for i, index in enumerate(placement):
            url = self.nodes[index].nats_url
            agent = await connected(
                lambda url=url, i=i: NatsAgent.connect(
                    url, agent_id(i), password=PASSWORD, ca_pem=self.ca
                )
            )
            self.agents.append(agent)
            if register:
                await agent.update_thing({**TD, "id": thing_id(i)})
                await self.consumer.observe_property(
                    thing_id(i), "level", callback=lambda _: self.received.hit()
                )
            self.raw_pubs.append(await nats.connect(url, tls=self.tls, nkeys_seed_str=self.seed))
        await self.consumer.nc.flush()
        # Warm up both paths; this also proves that every update arrives.
        await paced(self.report, self.received, 20 * AGENTS)
        await paced(self.publish_raw, self.raw_received, 20 * AGENTS)

    async def report(self, i: int) -> None:
        await self.agents[i % AGENTS].report_property(thing_id(i % AGENTS), "level", i)

    async def publish_raw(self, i: int) -> None:
        await self.raw_pubs[i % AGENTS].publish("bench.raw", envelope(thing_id(i % AGENTS), i))

    async def close_publishers(self) -> None:
        for client in [*self.agents, *self.raw_pubs]:
            await client.close()
        self.agents, self.raw_pubs = [], []

    async def close(self) -> None:
        await self.close_publishers()
        for client in (self.consumer, self.raw_sub):
            if client is not None:
                await client.close()


class Tally:
    """One path over the rounds: the best rate, and the CPU each node's processes used."""

    def __init__(self, nodes: list[ServedNode]) -> None:
        self.nodes = nodes
        self.best = 0.0
        self.messages = 0
        self.cpu = {(node.name, kind): 0.0 for node in nodes for kind in ("hub", "nats")}

    async def run(self, send: Callable[[int], Awaitable[None]], counter: Counter, n: int) -> None:
        before = [node.cpu() for node in self.nodes]
        elapsed = await paced(send, counter, n)
        for node, was in zip(self.nodes, before, strict=True):
            for kind, seconds in node.cpu().items():
                self.cpu[(node.name, kind)] += seconds - was[kind]
        self.best = max(self.best, n / elapsed)
        self.messages += n

    def us(self, kind: str, node: str | None = None) -> float:
        """CPU per message of ``kind`` processes (of ``node``, or of all nodes), in us."""
        used = sum(s for (name, k), s in self.cpu.items() if k == kind and node in (None, name))
        return round(1e6 * used / max(self.messages, 1), 1)


async def twins_stream(js: Any) -> tuple[int, str | None]:
    """Messages written so far to the stream of the hub's twins bucket, and its leader."""
    info = await js.stream_info(f"KV_{kv_name('wothub', 'twins')}")
    return info.state.last_seq, info.cluster.leader if info.cluster else None


async def throughput(
    setup: Setup, nodes: list[ServedNode], load: Load, args: Any, first: bool
) -> list[Result]:
    results = []
    js = load.raw_sub.jetstream() if setup.nodes else None
    for figure, placement in setup.placements:
        await load.place(placement, register=first)
        first = False
        hub, raw = Tally(nodes), Tally(nodes)
        written, started = (await twins_stream(js))[0] if js else 0, time.perf_counter()
        for _ in range(args.rounds):
            await hub.run(load.report, load.received, args.values)
            await raw.run(load.publish_raw, load.raw_received, args.values)
        extra: dict[str, Any] = {
            "values": args.values,
            "agents": AGENTS,
            "hub_cpu_us": hub.us("hub"),
            "nats_cpu_us": hub.us("nats"),
            "base_nats_cpu_us": raw.us("nats"),
        }
        if len(nodes) > 1:
            for node in nodes:
                extra[f"hub_cpu_us_{node.name}"] = hub.us("hub", node.name)
                extra[f"nats_cpu_us_{node.name}"] = hub.us("nats", node.name)
                extra[f"base_nats_cpu_us_{node.name}"] = raw.us("nats", node.name)
        if js:
            # The write-behind's writes over the rounds (the raw parts included: values
            # are written at the next flush, up to flush_interval later).
            last, leader = await twins_stream(js)
            elapsed = time.perf_counter() - started
            extra["twins_writes_per_s"] = round((last - written) / elapsed, 1)
            extra["updates_per_twins_write"] = round(hub.messages / max(last - written, 1))
            extra["twins_leader"] = leader
        results.append(Result("property_updates", figure, hub.best, raw.best, RAW, extra))
    return results


# -- write latency ---------------------------------------------------------------------------


def set_times(bucket: Any, count: int) -> list[float]:
    """Seconds of each of ``count`` sets of a twin-sized value (over 100 keys)."""
    times = []
    for i in range(count):
        started = time.perf_counter()
        bucket.set(f"lamp-{i % 100}", TWIN_VALUE)
        times.append(time.perf_counter() - started)
    return times


def put_times(db: Any, count: int) -> list[float]:
    times = []
    for i in range(count):
        started = time.perf_counter()
        db.put(b"lamp-%d" % (i % 100), TWIN_VALUE)
        times.append(time.perf_counter() - started)
    return times


def write_times(nodes: list[ServedNode], directory: Path, writes: int) -> dict[str, list[float]]:
    """Seconds of each write, by store: ``r1`` and ``r3`` (JetStream at node 1),
    ``leveldb`` and ``plyvel``. Synchronous (the store's API is): run in a thread."""
    import plyvel

    tls = ssl.create_default_context(cadata=ca_pem(nodes))
    stores = {
        replicas: JetStreamStore(
            servers=nodes[0].nats_url,
            tls=tls,
            nkeys_seed=hub_seed(nodes),
            replicas=replicas,
            prefix=LATENCY_PREFIX.format(replicas),
            cluster_wait=30,
        )
        for replicas in (1, 3)
    }
    leveldb = open_store(directory / "leveldb", "leveldb")
    raw_db = plyvel.DB(str(directory / "plyvel"), create_if_missing=True)
    try:
        buckets = {f"r{r}": store.bucket(LATENCY_BUCKET) for r, store in stores.items()}
        buckets["leveldb"] = leveldb.bucket(LATENCY_BUCKET)
        runs: dict[str, Callable[[int], list[float]]] = {
            name: partial(set_times, bucket) for name, bucket in buckets.items()
        }
        runs["plyvel"] = partial(put_times, raw_db)
        for run in runs.values():
            run(50)  # warm-up: the streams have their leaders, the caches are full
        times: dict[str, list[float]] = {name: [] for name in runs}
        block = 100
        for _ in range(max(1, writes // block)):  # interleaved, so drift hits all alike
            for name, run in runs.items():
                times[name] += run(block)
        return times
    finally:
        for store in stores.values():
            store.close()
        leveldb.close()
        raw_db.close()


async def write_latency(nodes: list[ServedNode], directory: Path, writes: int) -> list[Result]:
    times = await asyncio.to_thread(write_times, nodes, directory, writes)
    tls = ssl.create_default_context(cadata=ca_pem(nodes))
    nc = await nats.connect(nodes[0].nats_url, tls=tls, nkeys_seed_str=hub_seed(nodes))
    try:
        leaders = {}  # the node that leads each stream: it orders the writes
        for replicas in (1, 3):
            stream = f"KV_{kv_name(LATENCY_PREFIX.format(replicas), LATENCY_BUCKET)}"
            info = await nc.jetstream().stream_info(stream)
            leaders[replicas] = info.cluster.leader if info.cluster else None
    finally:
        await nc.close()

    def us(name: str, fraction: float) -> float:
        return round(1e6 * percentile(times[name], fraction), 1)

    results = []
    for stat, fraction in (("p50", 0.5), ("p99", 0.99)):
        for replicas in (1, 3):
            extra = {"writes": len(times[f"r{replicas}"]), "leader": leaders[replicas]}
            results.append(
                Result(
                    f"jetstream_set_{stat}",
                    f"3 nodes r{replicas}",
                    us(f"r{replicas}", fraction),
                    us("leveldb", fraction),
                    "LevelDB Bucket.set (the single-node store), same value",
                    extra,
                    unit="us",
                )
            )
        results.append(
            Result(
                f"leveldb_set_{stat}",
                "leveldb",
                us("leveldb", fraction),
                us("plyvel", fraction),
                "raw plyvel put, same value",
                {"writes": len(times["leveldb"])},
                unit="us",
            )
        )
    return results


# -- the run ---------------------------------------------------------------------------------


async def measure_setup(setup: Setup, directory: Path, args: Any) -> list[Result]:
    async with running(setup, directory) as nodes:
        await add_clients(nodes)
        load = Load(nodes)
        try:
            await load.open()
            results = await throughput(setup, nodes, load, args, first=True)
        finally:
            await load.close()
        if setup.latency:
            results += await write_latency(nodes, directory, args.writes)
        return results


async def measure(args: Any) -> list[Result]:
    with_workers = serve_has("--workers")
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        for index, setup in enumerate([*SETUPS, *([WORKERS] if with_workers else [])]):
            results += await measure_setup(setup, Path(tmp) / f"setup-{index}", args)
    if not with_workers:
        note = {"skipped": "wothub serve has no --workers yet"}
        results.append(Result("property_updates", WORKERS.name, None, None, RAW, note))
    return results


def main() -> None:
    # nats-py's TLS connections, closed, make asyncio warn about eof_received: noise.
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    args = arguments(
        __doc__.splitlines()[0],
        rounds=5,  # four figures of three setups, each start a cluster's
        **{
            "--values": {"type": int, "default": 3000, "help": "property values a round"},
            "--writes": {"type": int, "default": 1000, "help": "store writes per replica count"},
        },
    )
    report(asyncio.run(measure(args)), args.json)


if __name__ == "__main__":
    main()
