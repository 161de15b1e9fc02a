"""Shared by every benchmark: best-of timing and the output format.

Each figure is printed next to a baseline measured in the same run, because
absolute times on shared machines drift; ``ratio`` = ops_per_s / baseline_ops_per_s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent


def unshadow_packages() -> None:
    """Take bench/ off the import path: bench/bucketstore.py and bench/digitwin.py are
    named after the packages they measure and would otherwise be imported instead."""
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH_DIR]


@dataclass
class Result:
    """One figure; ``ops_per_s`` and its baseline are in ``unit`` when that is given
    (a latency in us, say), and None when the figure could not be measured (the reason
    in ``extra``)."""

    bench: str
    backend: str
    ops_per_s: float | None
    baseline_ops_per_s: float | None = None
    baseline: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. peak_rss_mb, mean_us
    unit: str | None = None  # None: ops/s

    @property
    def ratio(self) -> float | None:
        if not self.baseline_ops_per_s or self.ops_per_s is None:
            return None
        return self.ops_per_s / self.baseline_ops_per_s


def ops_per_s(run: Callable[[], int]) -> float:
    """Time one call of ``run`` (which returns how many operations it did)."""
    started = time.perf_counter()
    ops = run()
    return ops / (time.perf_counter() - started)


def best_of(rounds: int, *runs: Callable[[], int]) -> list[float]:
    """Best ops/s of each run over ``rounds``, interleaved so drift hits all alike."""
    best = [0.0] * len(runs)
    for _ in range(rounds):
        for index, run in enumerate(runs):
            best[index] = max(best[index], ops_per_s(run))
    return best


def arguments(description: str, rounds: int = 15, **extra: dict[str, Any]) -> argparse.Namespace:
    """Common flags (``rounds``: the default of --rounds), plus ``extra`` as {flag:
    add_argument keywords}."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--rounds", type=int, default=rounds, help="best of this many rounds")
    for flag, options in extra.items():
        parser.add_argument(flag, **options)
    return parser.parse_args()


def report(results: list[Result], as_json: bool) -> None:
    if as_json:
        for result in results:
            fields = asdict(result)
            fields.update(fields.pop("extra"))
            if (unit := fields.pop("unit")) is not None:  # as bench/_report.py reads it
                fields["figure"] = fields.pop("ops_per_s")
                fields["baseline_figure"] = fields.pop("baseline_ops_per_s")
                fields["unit"] = unit
            print(json.dumps({**fields, "ratio": result.ratio}), flush=True)
        return
    print(f"{'bench':<22}{'backend':<10}{'ops/s':>12}{'baseline ops/s':>16}{'ratio':>8}  baseline")
    for r in results:
        figure = f"{r.ops_per_s:>12,.0f}" if r.ops_per_s is not None else f"{'-':>12}"
        base = f"{r.baseline_ops_per_s:>16,.0f}" if r.baseline_ops_per_s else f"{'-':>16}"
        ratio = f"{r.ratio:>8.2f}" if r.ratio else f"{'-':>8}"
        extra = "  ".join(f"{k}={v}" for k, v in r.extra.items())
        unit = f"({r.unit}) " if r.unit else ""
        print(
            f"{r.bench:<22}{r.backend:<10}{figure}{base}{ratio}  {unit}"
            f"{r.baseline or ''}  {extra}".rstrip()
        )


def bench_td(thing_id: str, title: str, **properties: dict[str, Any]) -> dict[str, Any]:
    """A TD without security for the benchmarks' devices: ``properties`` maps each
    property's name to its data schema (a form is added)."""
    return {
        "@context": "https://www.w3.org/2022/wot/td/v1.1",
        "id": thing_id,
        "title": title,
        "securityDefinitions": {"nosec_sc": {"scheme": "nosec"}},
        "security": "nosec_sc",
        "properties": {
            name: {**schema, "forms": [{"href": f"https://dev.local/{name}"}]}
            for name, schema in properties.items()
        },
    }


def bench_config(home: Path, **overrides: Any) -> Any:
    """A hub configuration for benchmarks: every listener on 127.0.0.1 and a free port,
    the bus bindings off unless asked for, and no per-client request rate (a benchmark
    measures how fast the hub goes, not its flood protection)."""
    from hub.config import Config

    options: dict[str, Any] = {
        "http_host": "127.0.0.1",
        "http_port": 0,
        "mqtt_enabled": False,
        "mqtt_host": "127.0.0.1",
        "mqtt_port": 0,
        "nats_enabled": False,
        "nats_host": "127.0.0.1",
        "nats_port": 0,
        "nats_ws_port": 0,
        "max_requests_per_second": None,
        **overrides,
    }
    return Config(home=Path(home), **options)


async def command_lines() -> Any:
    """The child side of ServerProcess: its stdin as an asyncio StreamReader (one command
    a line); answer each with ``say``."""
    import asyncio

    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    return stdin


def say(**fields: Any) -> None:
    """One JSON line on stdout: a child's answer to ServerProcess."""
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


class ServerProcess:
    """A benchmark's server (``script --serve KIND``) in its own process, so its CPU is
    not the load generator's; driven by one-line commands on stdin, each answered by
    one JSON line on stdout (the first line, the server's hello, needs no command)."""

    REPLY_TIMEOUT = 120.0  # the longest a server may take to answer a control command

    def __init__(self, script: str, kind: str, *extra_args: str) -> None:
        self.script, self.kind, self.extra_args = script, kind, extra_args
        self.process: Any = None  # an asyncio.subprocess.Process once started
        self.server_cpu = 0.0  # server CPU seconds over the timed rounds
        self.ops = 0  # operations over the timed rounds

    async def start(self) -> dict[str, Any]:
        """Start it; returns its hello."""
        import asyncio

        self.process = await asyncio.create_subprocess_exec(
            sys.executable, self.script, "--serve", self.kind, *self.extra_args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        return await self._reply()

    async def ask(self, *command: object) -> dict[str, Any]:
        self.process.stdin.write((" ".join(map(str, command)) + "\n").encode())
        await self.process.stdin.drain()
        return await self._reply()

    async def _reply(self) -> dict[str, Any]:
        import asyncio

        line = await asyncio.wait_for(self.process.stdout.readline(), self.REPLY_TIMEOUT)
        if not line:
            raise RuntimeError(f"the {self.kind} server ended (exit {await self.process.wait()})")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"the {self.kind} server: {reply['error']}")
        return reply

    async def stop(self) -> None:
        import asyncio
        import contextlib

        if self.process is None or self.process.returncode is not None:
            return
        with contextlib.suppress(ConnectionError):
            self.process.stdin.write(b"quit\n")
            await self.process.stdin.drain()
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 30)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


def run_server(main: Any) -> Any:
    """Run a benchmark's server process (the hub's or a bare baseline's) on the event
    loop `wothub serve` runs on (hub/event_loop.py: uvloop where installed; the
    environment's WOTHUB_EVENT_LOOP decides as it does for the hub), so that both sides
    of a ratio have the same server stack."""
    import os

    from hub import event_loop

    return event_loop.run(main, os.environ.get("WOTHUB_EVENT_LOOP", "auto"))


@contextlib.asynccontextmanager
async def hub_process(*flags: str) -> AsyncIterator[tuple[dict[str, Any], ServerProcess]]:
    """The benchmarks' hub (bench/_hub.py) in its own process: its hello and the
    ServerProcess to ask it for its CPU; stopped on the way out."""
    server = ServerProcess(str(BENCH_DIR / "_hub.py"), "hub", *flags)
    hello = await server.start()
    try:
        yield hello, server
    finally:
        await server.stop()


# -- paced load and what it cost --------------------------------------------------------

WINDOW = 200  # messages a paced sender keeps in flight (unreceived) at most


class Counter:
    """Messages received so far; ``paced`` and ``wait_for`` wait on it."""

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


async def paced(send: Callable[[int], Any], counter: Counter, values: int) -> float:
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


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` used so far, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def process_tree(pid: int) -> dict[int, str]:
    """``pid`` and every process below it: pid -> command name (from /proc)."""
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            text = Path(f"/proc/{entry}/stat").read_text()
            name = text[text.index("(") + 1 : text.rindex(")")]
            parents[int(entry)] = int(text.rsplit(")", 1)[1].split()[1])
            names[int(entry)] = name
    tree = {pid: names.get(pid, "?")}
    grew = True
    while grew:
        below = {p: names[p] for p, parent in parents.items() if parent in tree and p not in tree}
        tree.update(below)
        grew = bool(below)
    return tree
