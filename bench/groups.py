"""Group operations over HTTPS on 1,000 Things, half of them offline: the latency of
one request and the hub's CPU time for it, each beside a baseline from the same run.

Process layout: the real hub (LevelDB store, HTTPS on 127.0.0.1; the bus bindings off,
as nothing here uses them) runs in its own process (``--serve groups``), so its CPU is
not this process's. It registers ``--members`` lamps (an integer property ``level``,
reported once) of @type ``bench:Lamp``: the even ones belong to agents connected to the
router (a task takes each request they are sent, as a device reads it, and does not
answer: the request stays delivered), the odd ones to agents that are offline (their
requests wait in the queue). The group ``all`` is the query ``{"type": "bench:Lamp"}``,
so each request also evaluates the query against the directory; the baseline group
``one`` lists one lamp.

- ``group_write``: ``PUT /groups/all/properties/level`` (every member gets a queued
  write: delivered at once to the online half, kept for the offline half) -> the 201
  with the group status. Baseline: the same request on the one-member group.
- ``group_read``: ``GET /groups/all/properties?limit=1000`` (the group table: every
  member's values) -> 200. Baseline: the same on the one-member group.

Figures (``unit`` ms, lower is better): the median latency over the rounds; ``best_ms``;
``hub_cpu_ms``: the hub process's CPU time per request. ``ratio`` = figure / baseline.

    python bench/groups.py [--json] [--rounds N] [--members N]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

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
from _hub import answer_commands

unshadow_packages()

TYPE = "bench:Lamp"
AGENTS = 20  # agents owning the lamps, half of them connected


def lamp(i: int) -> dict:
    td = bench_td(
        f"urn:dev:bench:group-lamp-{i:05d}",
        f"Lamp {i}",
        level={"type": "integer", "minimum": 0},
        on={"type": "boolean"},
    )
    return {**td, "@type": TYPE}


# -- the hub's process -------------------------------------------------------------------


async def serve(members: int) -> None:
    from bucketstore import open_store
    from hub.runtime import Hub
    from vocabulary.identity import Client

    with tempfile.TemporaryDirectory() as tmp:
        config = bench_config(Path(tmp) / "home")
        config.home.mkdir(mode=0o700)
        store = open_store(config.store_path, "leveldb")
        hub = Hub(config, store)
        await hub.start()
        readers: list[asyncio.Task] = []
        try:
            for a in range(AGENTS):
                hub.auth.add_client(f"agent-{a}", "agent", "agent")
            for i in range(members):
                # even lamps to the even (connected) agents, odd ones to the offline
                td = lamp(i)
                hub.twin.update_thing(td, f"agent-{(i % AGENTS)}")
                hub.twin.report_property(td["id"], "level", i, "")
                hub.twin.report_property(td["id"], "on", True, "")
            hub.router.flush()
            for a in range(0, AGENTS, 2):
                connection = hub.router.connect(Client(f"agent-{a}", "agent"), "bench")
                readers.append(asyncio.create_task(_read(connection)))
            hub.auth.add_client("bench-manager", "consumer", "manager")
            manager = Client("bench-manager", "manager")
            hub.router.groups.define(manager, "all", {"query": {"type": TYPE}})
            hub.router.groups.define(manager, "one", {"members": [lamp(0)["id"]]})
            stdin = await command_lines()
            say(
                http_url=hub.http_server.url,
                ca=hub.ca.ca_cert_pem.decode(),
                token=hub.auth.new_token("bench-manager")["token"],
                pid=os.getpid(),
            )
            await answer_commands(stdin)
        finally:
            for task in readers:
                task.cancel()
            await hub.stop()
            store.close()


async def _read(connection) -> None:
    """A connected device: takes what it is sent (and leaves it delivered)."""
    while True:
        await connection.next()


# -- this process: the client ------------------------------------------------------------


async def measure(members: int, rounds: int) -> list[Result]:
    import ssl

    import aiohttp

    server = ServerProcess(str(Path(__file__).resolve()), "groups", f"--members={members}")
    hello = await server.start()
    tls = ssl.create_default_context(cadata=hello["ca"])
    headers = {"Authorization": f"Bearer {hello['token']}"}
    try:
        async with aiohttp.ClientSession(
            hello["http_url"], headers=headers, connector=aiohttp.TCPConnector(ssl=tls)
        ) as session:

            async def write(group: str, value: int) -> dict:
                async with session.put(f"/groups/{group}/properties/level", json=value) as r:
                    body = await r.json()
                    assert r.status == 201, body
                    return body

            async def read(group: str) -> dict:
                async with session.get(f"/groups/{group}/properties?limit=1000") as r:
                    body = await r.json()
                    assert r.status == 200, body
                    return body

            # a first round of each, untimed: connections, caches
            first = await write("all", 0)
            assert len(first["members"]) == members, first["counts"]
            table = await read("all")
            assert table["total"] == members and len(table["rows"]) == min(members, 1000)
            await write("one", 0)
            await read("one")

            timings: dict[str, list[float]] = {}
            cpu: dict[str, float] = {}
            cases = {
                "write_all": lambda n: write("all", n),
                "write_one": lambda n: write("one", n),
                "read_all": lambda n: read("all"),
                "read_one": lambda n: read("one"),
            }
            for n in range(1, rounds + 1):  # interleaved, so drift hits all alike
                for name, case in cases.items():
                    before = (await server.ask("cpu"))["cpu"]
                    started = time.perf_counter()
                    await case(n)
                    timings.setdefault(name, []).append(time.perf_counter() - started)
                    cpu[name] = cpu.get(name, 0.0) + (await server.ask("cpu"))["cpu"] - before
    finally:
        await server.stop()

    def result(bench: str, case: str, baseline: str, **extra: object) -> Result:
        ms = [t * 1000 for t in timings[case]]
        base = [t * 1000 for t in timings[baseline]]
        return Result(
            bench,
            "https",
            round(statistics.median(ms), 2),
            round(statistics.median(base), 2),
            f"the same on a group of one ({baseline})",
            {
                "best_ms": round(min(ms), 2),
                "hub_cpu_ms": round(cpu[case] / rounds * 1000, 2),
                "baseline_hub_cpu_ms": round(cpu[baseline] / rounds * 1000, 2),
                "members": members,
                **extra,
            },
            unit="ms",
        )

    return [
        result("group_write", "write_all", "write_one", offline=members // 2),
        result("group_read", "read_all", "read_one"),
    ]


def main() -> None:
    args = arguments(
        __doc__.splitlines()[0],
        rounds=5,
        **{"--members": {"type": int, "default": 1000, "help": "lamps in the group"}},
    )
    report(asyncio.run(measure(args.members, args.rounds)), args.json)


if __name__ == "__main__":
    if sys.argv[1:3] == ["--serve", "groups"]:
        members = int(sys.argv[3].removeprefix("--members="))
        run_server(serve(members))  # on the loop `wothub serve` runs on
    else:
        main()
