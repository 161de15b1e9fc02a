"""``wothub serve --workers N`` against one hub process: NATS property updates per second.

Each run starts ``wothub serve`` as an operator does (``--workers N``; N = 1 is the
single hub on LevelDB), adds ``--agents`` NATS agents (clients/nats.py, spread over the
workers' partitions by their ids) and a NATS consumer subscribed to ``wot.twin.*.prop.*``.
Every agent reports ``--values`` values at once (at most 200 in flight each); the figure
is updates a second from the first report to the consumer's last notification (agent
-> nats-server -> the agent's worker: parse, authorize, twin update -> nats-server ->
consumer). ``hub_cpu_us``: CPU time of the hub processes (workers, parent, nats-server)
per update. The baseline is N = 1, measured in the same run. The load generator shares
the machine: on a 2-core machine the clients take a good part of one core.

    python bench/workers.py [--json] [--rounds N] [--workers N] [--agents N] [--values N]
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from _harness import Result, arguments, report, unshadow_packages

unshadow_packages()
import aiohttp  # noqa: E402

from clients.nats import NatsAgent, NatsConsumer  # noqa: E402

PASSWORD = "bench workers password"
WINDOW = 200
CLIENTS_THING = "urn:wothub:clients"
SEQ_TD = {"type": "integer", "forms": [{"href": "https://bench.local/seq"}]}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WOTHUB_")}
    for name in ("HTTP", "MQTT", "NATS"):
        env[f"WOTHUB_{name}_HOST"] = "127.0.0.1"
        env[f"WOTHUB_{name}_PORT"] = "0"
    env["WOTHUB_NATS_WS_PORT"] = "0"
    env["WOTHUB_MQTT_ENABLED"] = "false"
    return env


def _cpu_seconds(pids: list[int]) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


async def _listeners(home: Path, process: asyncio.subprocess.Process) -> dict:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise RuntimeError("wothub serve exited")
        try:
            document = json.loads((home / "listeners.json").read_text())
        except (FileNotFoundError, ValueError):
            document = None
        if document and document["pid"] == process.pid:
            return document["listeners"]
        await asyncio.sleep(0.1)  # polled: the hub says it is up only by its file
    raise TimeoutError("no listeners.json")


async def run(
    workers: int, agents: int, values: int, rounds: int
) -> tuple[float, tuple[float, float]]:
    """Best updates/s over the rounds, and in that round the CPU µs per update of the hub
    processes (nats-server included) and of nats-server alone."""
    with tempfile.TemporaryDirectory() as directory:
        home = Path(directory)
        (home / "wothub.toml").write_text("[limits]\nmax_requests_per_second = 10000000\n")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hub.cli",
            "serve",
            "--home",
            str(home),
            "--workers",
            str(workers),
            "--log-level",
            "WARNING",
            env=_env(),
            stdin=asyncio.subprocess.DEVNULL,
        )
        try:
            listeners = await _listeners(home, process)
            return await _measure(home, listeners, process.pid, workers, agents, values, rounds)
        finally:
            process.send_signal(signal.SIGTERM)
            await process.wait()


async def _measure(home, listeners, pid, workers, agents, values, rounds):
    ca = (home / "certs" / "ca.pem").read_bytes()
    tls = ssl.create_default_context(cadata=ca.decode())
    base = listeners["https"]["local_url"]
    async with aiohttp.ClientSession(base, connector=aiohttp.TCPConnector(ssl=tls)) as http:
        password = (home / "admin.password").read_text().strip()
        answer = await http.post("/authn/login", json={"clientID": "admin", "password": password})
        token = (await answer.json())["token"]
        ids = [f"bench-agent-{n}" for n in range(agents)]
        for client_id, kind, role in [
            *((i, "agent", "agent") for i in ids),
            ("bv", "consumer", "viewer"),
        ]:
            answer = await http.post(
                "/things/" + quote(CLIENTS_THING, safe="") + "/actions/addClient",
                json={"clientID": client_id, "kind": kind, "role": role, "password": PASSWORD},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert answer.status in (200, 201), await answer.text()
    url = listeners["nats"]["local_url"]
    connected = [await NatsAgent.connect(url, i, password=PASSWORD, ca_pem=ca) for i in ids]
    consumer = await NatsConsumer.connect(url, "bv", password=PASSWORD, ca_pem=ca)
    things = {a.client_id: f"urn:dev:bench:{a.client_id}" for a in connected}
    for agent in connected:
        td = {
            "@context": "https://www.w3.org/2022/wot/td/v1.1",
            "id": things[agent.client_id],
            "title": agent.client_id,
            "securityDefinitions": {"nosec_sc": {"scheme": "nosec"}},
            "security": "nosec_sc",
            "properties": {"seq": SEQ_TD},
        }
        await agent.update_thing(td)
    received = 0
    done = asyncio.Event()
    wanted = 0

    def heard(_message) -> None:
        nonlocal received
        received += 1
        if received >= wanted:
            done.set()

    await consumer.observe_property(None, callback=heard)
    await consumer.nc.flush()
    pids = [pid, *_children(pid)]
    server = [p for p in pids if _name(p) == "nats-server"]
    best, best_cpu = 0.0, (0.0, 0.0)
    for _ in range(rounds):
        received, wanted = 0, agents * values
        done.clear()
        cpu, server_cpu = _cpu_seconds(pids), _cpu_seconds(server)
        started = time.perf_counter()

        async def report_all(agent) -> None:
            thing = things[agent.client_id]
            for value in range(values):
                await agent.report_property(thing, "seq", value)
                if value % WINDOW == WINDOW - 1:
                    await agent.nc.flush()  # at most WINDOW in flight

        await asyncio.gather(*(report_all(a) for a in connected))
        await asyncio.wait_for(done.wait(), 120)
        took = time.perf_counter() - started
        rate = wanted / took
        if rate > best:
            best_cpu = (
                (_cpu_seconds(pids) - cpu) / wanted * 1e6,
                (_cpu_seconds(server) - server_cpu) / wanted * 1e6,
            )
            best = rate
    for client in (*connected, consumer):
        await client.close()
    return best, best_cpu


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (the workers and nats-server)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, tasks):
            found.append(child)
            todo.append(child)
    return found


async def main() -> None:
    args = arguments(
        __doc__.splitlines()[0],
        **{
            "--workers": {"type": int, "default": 2},
            "--agents": {"type": int, "default": 8},
            "--values": {"type": int, "default": 2000},
        },
    )
    rounds = max(1, min(args.rounds, 5))
    one, one_cpu = await run(1, args.agents, args.values, rounds)
    many, many_cpu = await run(args.workers, args.agents, args.values, rounds)

    def cpu(figures: tuple[float, float]) -> dict[str, float]:
        return {"hub_cpu_us": round(figures[0], 1), "server_cpu_us": round(figures[1], 1)}

    baseline = "workers=1 (one hub process, LevelDB)"
    report(
        [
            Result("property_updates", "workers=1", one, extra=cpu(one_cpu)),
            Result(
                "property_updates", f"workers={args.workers}", many, one, baseline, cpu(many_cpu)
            ),
        ],
        args.json,
    )


if __name__ == "__main__":
    asyncio.run(main())
