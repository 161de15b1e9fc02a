"""Soak: 1,000 devices and 1,000 SSE consumers on one hub for 10 minutes.

Process layout. The hub runs as ``wothub serve`` in its own process, on a fresh home in
a temporary directory (every listener on 127.0.0.1 and a free port; its wothub.toml
raises the connection caps this load needs and the per-client request rate the
administrator's setup burst needs, nothing else). The load runs in child processes of
this script (``--serve devices|consumers``), each with its own event loop, so no
generator competes with another for one loop: one process per device binding and one
per 500 SSE consumers. This process only sets up, samples and sums up.

- Devices: ``--devices`` agents, 40% on NATS (clients/nats.py), 30% on MQTT
  (clients/mqtt.py) and 30% on WebSocket (clients/websocket.py); every
  tenth of each binding logs in with a password, the others with a token. Each
  registers one Thing and reports its integer property ``n`` every ``--interval``
  seconds, staggered evenly over the interval; the value is a counter (1, 2, 3...).
- Consumers: ``--consumers`` clients, each with its own token and an SSE stream
  (clients/http.py ``observe_property``); consumer i observes device i (modulo
  the devices). A value that skips ahead of the last one received is a gap: that many
  notifications lost (a stream that reconnects gets what it missed by Last-Event-ID,
  which is no loss).
- Every ``--sample-every`` seconds one sample: the hub's RSS (MiB) and open file
  descriptors (/proc), nats-server's RSS, the hub's worst event-loop lag since the
  previous sample (``wothub_event_loop_lag_seconds`` in /metrics, read with an
  administrator's token), reports sent, notifications delivered and lost so far,
  device and SSE reconnects so far, and the CPU of the hub, nats-server and the load
  generators over the sample (percent of one core). The generators' own event-loop lag
  and how late a report left (``late_ms``) say whether the load, not the hub, fell
  behind: then the figures would lie.
- At the end: reports stop, the consumers get up to 30 s to receive what is in flight,
  and each consumer's count is compared with what its device sent.
- Summary (``--json``: one line in the harness's format, samples on stderr as JSON
  lines): figure = the hub's RSS at the end; baseline = the RSS of the same hub, started
  the same way, idle before any client was added (same run). Also: sent, delivered,
  lost, reconnects, RSS and fds at the end of the warm-up (``--warmup``, default a
  fifth of the run, at most 120 s) and at the end, their growth, the worst loop lag,
  and the CPU each process used. Goals (issue 20): flat RSS and fds after the warm-up,
  nothing lost, no reconnects.

    python bench/soak.py [--json] [--duration S] [--devices N] [--consumers N]
                         [--interval S] [--sample-every S] [--warmup S]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import ssl
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _harness import (
    ServerProcess,
    arguments,
    command_lines,
    process_cpu_seconds,
    say,
    unshadow_packages,
)

unshadow_packages()
import aiohttp  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from clients.http import HttpConsumer  # noqa: E402
from clients.mqtt import MqttClient  # noqa: E402
from clients.nats import NatsAgent  # noqa: E402
from clients.websocket import WsClient  # noqa: E402

CLIENTS = "urn:wothub:clients"
PROPERTY = "n"
PASSWORD_EVERY = 10  # every tenth device of a binding logs in with a password
CONSUMERS_PER_PROCESS = 500
CONNECTING_AT_ONCE = 20  # token logins a generator opens at once
SETUP_AT_ONCE = 8  # administrator requests at once while adding the clients
DRAIN_SECONDS = 30.0  # for the notifications in flight once the reports stop
HUB_START_SECONDS = 60.0
SPLIT = (("nats", 0.4), ("mqtt", 0.3), ("websocket", 0.3))
BASELINE = "RSS of the same hub idle, started the same way, before any client (same run)"


def device_id(index: int) -> str:
    return f"soak-device-{index:04d}"


def thing_id(index: int) -> str:
    return f"urn:dev:soak:{index:04d}"


def thing_td(index: int) -> dict[str, Any]:
    return {
        "@context": "https://www.w3.org/2022/wot/td/v1.1",
        "id": thing_id(index),
        "title": f"Soak device {index}",
        "securityDefinitions": {"nosec_sc": {"scheme": "nosec"}},
        "security": "nosec_sc",
        "properties": {
            PROPERTY: {
                "type": "integer",
                "observable": True,
                "readOnly": True,
                "forms": [{"href": "x"}],
            }
        },
    }


def split_devices(count: int) -> dict[str, list[int]]:
    """Device indices per binding, in SPLIT's shares (the last takes the rest)."""
    out: dict[str, list[int]] = {}
    start = 0
    for position, (binding, share) in enumerate(SPLIT):
        size = count - start if position == len(SPLIT) - 1 else round(count * share)
        out[binding] = list(range(start, start + size))
        start += size
    return out


# -- what the processes measure of themselves and of each other ---------------------------


class LagProbe:
    """The worst event-loop lag of this process since it was last taken."""

    PERIOD = 0.1

    def __init__(self) -> None:
        self.worst = 0.0

    async def run(self, until: float) -> None:
        while time.monotonic() < until:
            before = time.monotonic()
            await asyncio.sleep(self.PERIOD)  # the probe's tick: how late it wakes is the lag
            self.worst = max(self.worst, time.monotonic() - before - self.PERIOD)

    def take(self) -> float:
        worst, self.worst = self.worst, 0.0
        return worst


class ProcessStats:
    """RSS, open fds and CPU of another process, from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._mark = (self.cpu_seconds(), time.monotonic())

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.pid)

    def cpu_pct(self) -> float:
        """Percent of one core since the previous call (or since created)."""
        cpu, now = self.cpu_seconds(), time.monotonic()
        before, then = self._mark
        self._mark = (cpu, now)
        return 100 * (cpu - before) / max(now - then, 1e-6)


class MachineStats:
    """CPU used on the whole machine (/proc/stat), in percent of one core: what the
    other processes on a shared machine take shows as the part that is not ours."""

    def __init__(self) -> None:
        self._mark = self._read()

    @staticmethod
    def _read() -> tuple[int, int]:
        """(busy, all) jiffies over all cores; steal and iowait are not busy."""
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        user, nice, system, _idle, _iowait, irq, softirq, _steal = fields
        return user + nice + system + irq + softirq, sum(fields)

    def cpu_pct(self) -> float:
        """Percent of one core since the previous call (at most 100 x the cores)."""
        (busy, total), (busy_before, total_before) = self._read(), self._mark
        self._mark = (busy, total)
        cores = os.cpu_count() or 1
        return 100 * cores * (busy - busy_before) / max(total - total_before, 1)


# -- the load generators (child processes) -------------------------------------------------


class CountingMqtt(MqttClient):
    """An MqttClient that counts its CONNACKs (a reconnect is every one after the first)."""

    connacks = 0

    def _connack(self, code: int) -> None:
        if code == 0:
            self.connacks += 1
        super()._connack(code)


class Device:
    """One agent: its client on one binding and the reports it sent."""

    def __init__(self, spec: dict[str, Any], urls: dict[str, str], ca: bytes) -> None:
        self.index: int = spec["index"]
        self.binding: str = spec["binding"]
        self.client_id = device_id(self.index)
        self.password: str | None = spec.get("password")
        self.token: str | None = spec.get("token")
        self.urls, self.ca = urls, ca
        self.client: Any = None
        self.sent = 0
        self.errors = 0
        self.nats_reconnects = 0

    async def connect(self) -> None:
        secret = {"password": self.password} if self.password else {"token": self.token}
        if self.binding == "nats":

            async def reconnected() -> None:
                self.nats_reconnects += 1

            self.client = await NatsAgent.connect(
                self.urls["nats"], self.client_id, ca_pem=self.ca, reconnected_cb=reconnected,
                **secret,
            )  # fmt: skip
        elif self.binding == "mqtt":
            self.client = CountingMqtt(self.urls["mqtt"], self.client_id, ca_pem=self.ca, **secret)
            await self.client.connect()
        else:
            auth = {"basic": (self.client_id, self.password)} if self.password else secret
            self.client = WsClient(self.urls["websocket"], ca=self.ca, **auth)
            await self.client.connect()
        await self.client.update_thing(thing_td(self.index))

    @property
    def reconnects(self) -> int:
        if self.binding == "nats":
            return self.nats_reconnects
        if self.binding == "mqtt":
            return max(0, self.client.connacks - 1)
        return max(0, self.client.connections - 1)

    async def report(self, value: int) -> bool:
        try:
            if self.binding == "nats":
                await self.client.report_property(thing_id(self.index), PROPERTY, value)
            elif self.binding == "mqtt":
                if not self.client._paho.is_connected():  # paho drops QoS 0 when offline
                    return False
                self.client.report_property(thing_id(self.index), PROPERTY, value)
            else:
                await self.client.report_property(thing_id(self.index), PROPERTY, value)
        except Exception:  # a report that could not leave is counted, not raised
            return False
        return True

    async def run(
        self, t0: float, offset: float, interval: float, duration: float, late: list[float]
    ) -> None:
        """Report at ``t0 + offset``, then every ``interval`` while before ``t0 + duration``."""
        for n in range(math.ceil((duration - offset) / interval)):
            due = t0 + offset + n * interval
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # the device's pace: one report per interval
            late[0] = max(late[0], time.monotonic() - due)
            if await self.report(self.sent + 1):
                self.sent += 1
            else:
                self.errors += 1

    async def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.close()


class Consumer:
    """One SSE consumer of one device's property: what it received, and its gaps."""

    def __init__(self, spec: dict[str, Any], url: str, ca: bytes) -> None:
        self.index: int = spec["index"]
        self.device: int = spec["device"]
        self.http = HttpConsumer(url, ca=ca, token=spec["token"])
        self.stream = self.http.observe_property(thing_id(self.device), PROPERTY)
        self.last = 0  # the last counter value received
        self.received = 0
        self.gaps = 0  # values skipped: lost notifications
        self.error: str | None = None

    async def run(self) -> None:
        try:
            async for _event, value, _id in self.stream:  # ends when the consumer closes
                if isinstance(value, int) and value > self.last:
                    self.received += 1
                    self.gaps += value - self.last - 1
                    self.last = value
        except Exception as exc:  # a stream the client gave up on (a 4xx): reported
            self.error = f"{type(exc).__name__}: {exc}"

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.http.close()


async def bounded(limit: int, calls: list[Any]) -> None:
    """Await the coroutines ``calls``, at most ``limit`` at once."""
    gate = asyncio.Semaphore(limit)

    async def one(call: Any) -> None:
        async with gate:
            await call

    await asyncio.gather(*(one(call) for call in calls))


async def generator(kind: str, plan_path: str) -> None:
    """A load generator: connects its clients, says so, then answers commands from stdin
    (start T0 DURATION, stats, stop, counts, quit), one JSON line each."""
    plan = json.loads(Path(plan_path).read_text())
    ca = plan["ca"].encode()
    probe = LagProbe()
    probe_task = asyncio.create_task(probe.run(plan["deadline"]))
    stdin = await command_lines()

    devices = [Device(spec, plan["urls"], ca) for spec in plan.get("devices", [])]
    consumers = [Consumer(spec, plan["urls"]["https"], ca) for spec in plan.get("consumers", [])]
    tasks: list[asyncio.Task] = []
    late = [0.0]
    started = time.monotonic()
    try:
        async with asyncio.timeout(plan["deadline"] - time.monotonic()):  # a safety net
            # Password logins one at a time: the hub allows two at once from one address.
            await bounded(1, [d.connect() for d in devices if d.password])
            await bounded(CONNECTING_AT_ONCE, [d.connect() for d in devices if not d.password])
            await bounded(CONNECTING_AT_ONCE, [c.stream.open() for c in consumers])
            tasks = [asyncio.create_task(c.run()) for c in consumers]
            say(ready=len(devices) + len(consumers), seconds=time.monotonic() - started)
            while words := (await stdin.readline()).decode().split():  # EOF or quit ends it
                command, *numbers = words
                if command == "quit":
                    break
                if command == "start":
                    t0, duration = map(float, numbers)
                    interval = plan["interval"]
                    for device in devices:
                        offset = device.index * interval / plan["devices_total"]  # staggered
                        run = device.run(t0, offset, interval, duration, late)
                        tasks.append(asyncio.create_task(run))
                    say(started=len(devices))
                elif command == "stats":
                    say(
                        sent=sum(d.sent for d in devices),
                        send_errors=sum(d.errors for d in devices),
                        device_reconnects=sum(d.reconnects for d in devices),
                        delivered=sum(c.received for c in consumers),
                        gaps=sum(c.gaps for c in consumers),
                        sse_reconnects=sum(c.stream.reconnects for c in consumers),
                        stream_errors=[c.error for c in consumers if c.error][:3],
                        loop_lag=probe.take(),
                        late=late[0],
                    )
                    late[0] = 0.0
                elif command == "stop":  # devices: the reports end by themselves in time
                    await asyncio.gather(*tasks)
                    say(sent={d.index: d.sent for d in devices})
                elif command == "counts":
                    say(received={c.index: [c.device, c.received] for c in consumers})
                else:
                    say(error=f"unknown command {command}")
    finally:
        probe_task.cancel()
        for consumer in consumers:
            await consumer.close()
        for device in devices:
            await device.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(probe_task, *tasks, return_exceptions=True)


class Generator(ServerProcess):
    REPLY_TIMEOUT = 300.0  # connecting hundreds of clients, a password login at a time

    def __init__(self, kind: str, name: str, plan: Path) -> None:
        super().__init__(__file__, kind, "--plan", str(plan))
        self.name = name
        self.stats: ProcessStats | None = None

    async def start(self) -> dict[str, Any]:
        hello = await super().start()
        self.stats = ProcessStats(self.process.pid)
        return hello


# -- the hub (``wothub serve``) --------------------------------------------------------------


class HubProcess:
    """``wothub serve`` on a fresh home: its listeners, an administrator, its /metrics."""

    def __init__(self, home: Path, settings: str) -> None:
        self.home = home
        self.settings = settings
        self.process: asyncio.subprocess.Process | None = None
        self.log = home.parent / "hub.log"
        self.urls: dict[str, str] = {}
        self.ca = b""
        self.admin: HttpConsumer | None = None
        self.session: aiohttp.ClientSession | None = None
        self.stats: ProcessStats | None = None
        self.nats: ProcessStats | None = None

    async def start(self) -> None:
        self.home.mkdir(mode=0o700)
        (self.home / "wothub.toml").write_text(self.settings)
        env = {k: v for k, v in os.environ.items() if not k.startswith("WOTHUB_")}
        env.update(WOTHUB_HOME=str(self.home), WOTHUB_HOST="127.0.0.1", WOTHUB_HTTP_PORT="0",
                   WOTHUB_MQTT_PORT="0", WOTHUB_NATS_PORT="0", WOTHUB_NATS_WS_PORT="0")  # fmt: skip
        with self.log.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "hub.cli", "serve", env=env,
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
        listeners = await self._listeners()
        self.urls = {
            "https": listeners["https"]["local_url"],
            "websocket": listeners["https"]["local_url"].replace("https://", "wss://") + "/ws",
            "mqtt": listeners["mqtts"]["local_url"],
            "nats": listeners["nats"]["local_url"],
        }
        self.ca = (self.home / "certs" / "ca.pem").read_bytes()
        self.stats = ProcessStats(self.process.pid)
        self.nats = ProcessStats(int((self.home / "nats" / "nats-server.pid").read_text()))
        self.admin = HttpConsumer(self.urls["https"], ca=self.ca)
        await self.admin.login("admin", (self.home / "admin.password").read_text().strip())
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ssl.create_default_context(cadata=self.ca.decode())),
            headers={"Authorization": f"Bearer {self.admin.token}"},
            timeout=aiohttp.ClientTimeout(total=30),
        )

    async def _listeners(self) -> dict[str, Any]:
        assert self.process is not None
        path = self.home / "listeners.json"
        deadline = time.monotonic() + HUB_START_SECONDS
        while time.monotonic() < deadline:
            if self.process.returncode is not None:
                raise RuntimeError(f"wothub serve exited:\n{self.log_tail()}")
            with contextlib.suppress(FileNotFoundError, ValueError):
                document = json.loads(path.read_text())
                if document.get("pid") == self.process.pid and "nats" in document["listeners"]:
                    return document["listeners"]
            await asyncio.sleep(0.1)  # polling for the file, with the deadline above
        raise RuntimeError(f"no listeners.json within {HUB_START_SECONDS} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    async def metrics(self) -> dict[str, Any]:
        """The worst loop lag since the previous call (seconds) and connections per binding."""
        assert self.session is not None
        async with self.session.get(self.urls["https"] + "/metrics") as response:
            text = await response.text()
            if response.status != 200:
                raise RuntimeError(f"/metrics: {response.status} {text[:200]}")
        found: dict[str, Any] = {"loop_lag": 0.0, "connections": {}}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "wothub_event_loop_lag_seconds":
                    found["loop_lag"] = sample.value
                elif sample.name == "wothub_connections":
                    found["connections"][sample.labels["binding"]] = int(sample.value)
        return found

    async def add_client(self, client_id: str, kind: str, role: str, password: str | None) -> str:
        """Add the client; its token when it has no password."""
        assert self.admin is not None
        data = {"clientID": client_id, "kind": kind, "role": role}
        if password:
            data["password"] = password
        await self.admin.invoke_service(CLIENTS, "addClient", data)
        if password:
            return ""
        return (await self.admin.invoke_service(CLIENTS, "newToken", {"clientID": client_id}))[
            "token"
        ]

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()
        if self.admin is not None:
            await self.admin.close()
        if self.process is None or self.process.returncode is not None:
            return
        self.process.terminate()
        try:
            await asyncio.wait_for(self.process.wait(), 30)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


def hub_settings(devices: dict[str, list[int]], consumers: int, duration: float) -> str:
    """The hub's wothub.toml: connection caps above what this load opens (at least their
    defaults), room for the administrator's burst of addClient/newToken calls, and
    consumer tokens (the SSE consumers', the administrator's) that outlive the run."""
    room = 100  # the administrator, /metrics, a reconnect racing its old connection
    http = max(1000, consumers + len(devices["websocket"]) + room)
    # MQTT clients enter through nats-server: its connection limit counts both.
    nats = max(1000, len(devices["nats"]) + len(devices["mqtt"]) + room)
    lifetime = max(3600, math.ceil(duration) + 3600)
    return (
        "# Written by bench/soak.py.\n"
        f"[http]\nmax_connections = {http}\n\n"
        f"[nats]\nmax_connections = {nats}\n\n"
        f"[auth.token_lifetime]\nconsumer = {lifetime}\n\n"
        "[limits]\nmax_requests_per_second = 5000  # the administrator adds the clients\n"
    )


# -- the run ----------------------------------------------------------------------------------


def password_of(index: int) -> str:
    return f"soak password {index:04d}"


async def setup_clients(hub: HubProcess, devices: dict[str, list[int]], consumers: int):
    """Every client added: device specs per binding, consumer specs."""
    device_specs: dict[str, list[dict[str, Any]]] = {}
    calls = []
    for binding, indices in devices.items():
        device_specs[binding] = []
        for position, index in enumerate(indices):
            spec: dict[str, Any] = {"index": index, "binding": binding}
            if position % PASSWORD_EVERY == 0:
                spec["password"] = password_of(index)
            device_specs[binding].append(spec)
            calls.append((spec, device_id(index), "agent", "agent", spec.get("password")))
    total = sum(len(indices) for indices in devices.values())
    consumer_specs = [{"index": i, "device": i % total} for i in range(consumers)]
    for spec in consumer_specs:
        calls.append((spec, f"soak-consumer-{spec['index']:04d}", "consumer", "viewer", None))

    async def add(spec, client_id, kind, role, password) -> None:
        token = await hub.add_client(client_id, kind, role, password)
        if token:
            spec["token"] = token

    await bounded(SETUP_AT_ONCE, [add(*call) for call in calls])
    return device_specs, consumer_specs


class Totals:
    """The generators' figures summed, and the hub's, for one sample."""

    def __init__(self, hub: HubProcess, generators: list[Generator]) -> None:
        self.hub, self.generators = hub, generators
        self.machine = MachineStats()
        self.this = ProcessStats(os.getpid())

    async def sample(self, elapsed: float) -> dict[str, Any]:
        hub = self.hub
        assert hub.stats is not None and hub.nats is not None
        replies = await asyncio.gather(*(g.ask("stats") for g in self.generators))
        metrics = await hub.metrics()
        cpu = {"hub": hub.stats.cpu_pct(), "nats-server": hub.nats.cpu_pct()}
        for g in self.generators:
            assert g.stats is not None
            cpu[g.name] = g.stats.cpu_pct()
        ours = sum(cpu.values()) + self.this.cpu_pct()
        others = max(0.0, self.machine.cpu_pct() - ours)
        sample = {
            "elapsed_s": round(elapsed, 1),
            "hub_rss_mb": round(hub.stats.rss_mb(), 1),
            "hub_fds": hub.stats.fds(),
            "nats_rss_mb": round(hub.nats.rss_mb(), 1),
            "loop_lag_ms": round(1000 * metrics["loop_lag"], 1),
            "sent": sum(r["sent"] for r in replies),
            "delivered": sum(r["delivered"] for r in replies),
            "lost": sum(r["gaps"] for r in replies),
            "send_errors": sum(r["send_errors"] for r in replies),
            "device_reconnects": sum(r["device_reconnects"] for r in replies),
            "sse_reconnects": sum(r["sse_reconnects"] for r in replies),
            "connections": metrics["connections"],
            "cpu_pct": {name: round(value, 1) for name, value in cpu.items()},
            "others_cpu_pct": round(others, 1),
            "generator_lag_ms": round(1000 * max(r["loop_lag"] for r in replies), 1),
            "late_ms": round(1000 * max(r["late"] for r in replies), 1),
        }
        errors = [e for r in replies for e in r["stream_errors"]]
        if errors:
            sample["stream_errors"] = errors[:3]
        return sample


HEADER = (
    f"{'elapsed':>8}{'rss MiB':>9}{'fds':>6}{'nats MiB':>9}{'lag ms':>8}{'sent':>9}"
    f"{'delivered':>10}{'lost':>6}{'dev rc':>7}{'sse rc':>7}  cpu % hub/nats/load/others"
)


def sample_row(s: dict[str, Any]) -> str:
    cpu = dict(s["cpu_pct"])
    hub, nats = cpu.pop("hub"), cpu.pop("nats-server")
    busiest = max(cpu, key=cpu.__getitem__)
    return (
        f"{s['elapsed_s']:>7.0f}s{s['hub_rss_mb']:>9.1f}{s['hub_fds']:>6}{s['nats_rss_mb']:>9.1f}"
        f"{s['loop_lag_ms']:>8.1f}{s['sent']:>9}{s['delivered']:>10}{s['lost']:>6}"
        f"{s['device_reconnects']:>7}{s['sse_reconnects']:>7}  "
        f"{hub:.0f}/{nats:.0f}/{sum(cpu.values()):.0f}/{s['others_cpu_pct']:.0f} "
        f"(busiest load: {busiest} {cpu[busiest]:.0f})"
        + (f"  stream errors: {s['stream_errors']}" if "stream_errors" in s else "")
    )


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    devices = split_devices(args.devices)
    warmup = args.warmup if args.warmup is not None else min(120.0, args.duration / 5)
    emit = (lambda s: print(json.dumps({"sample": s}), file=sys.stderr, flush=True)) if (
        args.json
    ) else (lambda s: print(sample_row(s), flush=True))  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="wothub-soak-") as tmp:
        hub = HubProcess(Path(tmp) / "home", hub_settings(devices, args.consumers, args.duration))
        generators: list[Generator] = []
        try:
            await hub.start()
            assert hub.stats is not None and hub.nats is not None
            await hub.metrics()
            idle_rss = hub.stats.rss_mb()
            setup_started = time.monotonic()
            device_specs, consumer_specs = await setup_clients(hub, devices, args.consumers)
            deadline = time.monotonic() + args.duration + 1800  # the generators' safety net
            common = {
                "urls": hub.urls,
                "ca": hub.ca.decode(),
                "interval": args.interval,
                "devices_total": args.devices,
                "deadline": deadline,
            }
            plans = [
                ("devices", f"devices-{binding}", {"devices": specs})
                for binding, specs in device_specs.items()
                if specs
            ]
            for start in range(0, len(consumer_specs), CONSUMERS_PER_PROCESS):
                chunk = consumer_specs[start : start + CONSUMERS_PER_PROCESS]
                name = f"consumers-{start // CONSUMERS_PER_PROCESS + 1}"
                plans.append(("consumers", name, {"consumers": chunk}))
            for kind, name, part in plans:  # one at a time: password logins never overlap
                path = Path(tmp) / f"{name}.json"
                path.touch(mode=0o600)
                path.write_text(json.dumps({**common, **part}))
                generator_process = Generator(kind, name, path)
                generators.append(generator_process)
                await generator_process.start()
            setup_seconds = time.monotonic() - setup_started

            totals = Totals(hub, generators)
            await totals.sample(0.0)  # resets the lag and CPU marks
            cpu_start = {"hub": hub.stats.cpu_seconds(), "nats-server": hub.nats.cpu_seconds()}
            cpu_start.update({g.name: g.stats.cpu_seconds() for g in generators if g.stats})
            t0 = time.monotonic() + 1.0  # every generator has its start before the first report
            await asyncio.gather(*(g.ask("start", t0, args.duration) for g in generators))
            if not args.json:
                print(
                    f"soak: {args.devices} devices "
                    f"({', '.join(f'{b} {len(i)}' for b, i in devices.items())}), "
                    f"{args.consumers} SSE consumers, a report every {args.interval:g} s per "
                    f"device, {args.duration:g} s; setup took {setup_seconds:.0f} s; idle hub "
                    f"RSS {idle_rss:.1f} MiB",
                    flush=True,
                )
                print(HEADER, flush=True)
            samples = []
            for k in range(1, math.ceil(args.duration / args.sample_every) + 1):
                elapsed = min(k * args.sample_every, args.duration)
                delay = t0 + elapsed - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)  # the sampling pace
                sample = await totals.sample(elapsed)
                samples.append(sample)
                emit(sample)
            cpu_seconds = {
                "hub": hub.stats.cpu_seconds() - cpu_start["hub"],
                "nats-server": hub.nats.cpu_seconds() - cpu_start["nats-server"],
            }
            for g in generators:
                if g.stats:
                    cpu_seconds[g.name] = g.stats.cpu_seconds() - cpu_start[g.name]
            measured = time.monotonic() - t0

            sent: dict[int, int] = {}
            for g in generators:
                if g.kind == "devices":
                    sent.update({int(k): v for k, v in (await g.ask("stop"))["sent"].items()})
            received = await drain(generators, consumer_specs, sent)
            lost = sum(max(0, sent[device] - count) for device, count in received.values())
            return summary(
                args, devices, samples, warmup, idle_rss, setup_seconds,
                sent, received, lost, cpu_seconds, measured,
            )  # fmt: skip
        except BaseException:
            print(f"hub log (last lines):\n{hub.log_tail()}", file=sys.stderr)
            raise
        finally:
            for g in generators:
                with contextlib.suppress(Exception):
                    await g.stop()
            await hub.stop()


async def drain(
    generators: list[Generator], consumer_specs: list[dict[str, Any]], sent: dict[int, int]
) -> dict[int, list[int]]:
    """Each consumer's [device, received] once all that was sent arrived, or after
    DRAIN_SECONDS."""
    expected = sum(sent[spec["device"]] for spec in consumer_specs)
    consumers = [g for g in generators if g.kind == "consumers"]
    deadline = time.monotonic() + DRAIN_SECONDS
    while time.monotonic() < deadline:
        replies = await asyncio.gather(*(g.ask("stats") for g in consumers))
        if sum(r["delivered"] for r in replies) >= expected:
            break
        await asyncio.sleep(0.5)  # polling the consumers, with the deadline above
    received: dict[int, list[int]] = {}
    for g in consumers:
        received.update({int(k): v for k, v in (await g.ask("counts"))["received"].items()})
    return received


def summary(
    args, devices, samples, warmup, idle_rss, setup_seconds, sent, received, lost,
    cpu_seconds, measured,
) -> dict[str, Any]:  # fmt: skip
    warm = next((s for s in samples if s["elapsed_s"] >= warmup), samples[-1])
    last = samples[-1]
    after_warmup = [s for s in samples if s["elapsed_s"] >= warm["elapsed_s"]]
    cpu_pct = {name: round(100 * seconds / measured, 1) for name, seconds in cpu_seconds.items()}
    generators = {name: pct for name, pct in cpu_pct.items() if name not in ("hub", "nats-server")}
    delivered = sum(count for _, count in received.values())
    return {
        "bench": "soak",
        "backend": "+".join(b for b, i in devices.items() if i) + "->sse",
        "figure": last["hub_rss_mb"],
        "unit": "MiB",
        "baseline_figure": round(idle_rss, 1),
        "baseline": BASELINE,
        "ratio": round(last["hub_rss_mb"] / idle_rss, 2) if idle_rss else None,
        "duration_s": args.duration,
        "devices": args.devices,
        "consumers": args.consumers,
        "interval_s": args.interval,
        "setup_s": round(setup_seconds, 1),
        "sent": sum(sent.values()),
        "expected": sum(sent[device] for device, _ in received.values()),
        "delivered": delivered,
        "lost": lost,
        "send_errors": last["send_errors"],
        "device_reconnects": last["device_reconnects"],
        "sse_reconnects": last["sse_reconnects"],
        "warmup_s": warm["elapsed_s"],
        "rss_warm_mb": warm["hub_rss_mb"],
        "rss_end_mb": last["hub_rss_mb"],
        "rss_growth_mb": round(last["hub_rss_mb"] - warm["hub_rss_mb"], 1),
        "rss_max_after_warmup_mb": max(s["hub_rss_mb"] for s in after_warmup),
        "fds_warm": warm["hub_fds"],
        "fds_end": last["hub_fds"],
        "fds_growth": last["hub_fds"] - warm["hub_fds"],
        "nats_rss_warm_mb": warm["nats_rss_mb"],
        "nats_rss_end_mb": last["nats_rss_mb"],
        "max_loop_lag_ms": max(s["loop_lag_ms"] for s in samples),
        "max_generator_lag_ms": max(s["generator_lag_ms"] for s in samples),
        "max_late_ms": max(s["late_ms"] for s in samples),
        "hub_cpu_pct": cpu_pct["hub"],
        "nats_cpu_pct": cpu_pct["nats-server"],
        "generators_cpu_pct": round(sum(generators.values()), 1),
        "busiest": max(cpu_pct, key=cpu_pct.__getitem__),
        "others_cpu_pct": round(sum(s["others_cpu_pct"] for s in samples) / len(samples), 1),
        "cpu_pct": cpu_pct,
    }


def report(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result), flush=True)
        return
    print()
    for key, value in result.items():
        if key not in ("bench", "backend"):
            print(f"{key:>26}: {value}")
    goals = {
        "nothing lost": result["lost"] == 0 and result["send_errors"] == 0,
        "no reconnects": result["device_reconnects"] == 0 and result["sse_reconnects"] == 0,
    }
    print("goals: " + ", ".join(f"{name} {'yes' if ok else 'NO'}" for name, ok in goals.items()))
    print("flat RSS and fds after the warm-up: compare rss_warm_mb with rss_end_mb, and fds")


def main() -> None:
    args = arguments(
        __doc__.splitlines()[0],
        **{
            "--duration": {"type": float, "default": 600.0, "help": "seconds of load"},
            "--devices": {"type": int, "default": 1000},
            "--consumers": {"type": int, "default": 1000},
            "--interval": {"type": float, "default": 2.0, "help": "seconds between reports"},
            "--sample-every": {"type": float, "default": 20.0, "help": "seconds"},
            "--warmup": {"type": float, "default": None, "help": "seconds (default: see above)"},
            "--serve": {"choices": ["devices", "consumers"], "help": argparse.SUPPRESS},
            "--plan": {"help": argparse.SUPPRESS},
        },
    )
    logging.getLogger("asyncio").setLevel(logging.ERROR)  # TLS EOF notes at the end
    if args.serve:
        asyncio.run(generator(args.serve, args.plan))
        return
    if args.devices < len(SPLIT) or args.consumers < 1:
        raise SystemExit(f"--devices at least {len(SPLIT)}, --consumers at least 1")
    report(asyncio.run(soak(args)), args.json)


if __name__ == "__main__":
    main()
