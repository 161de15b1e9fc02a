"""Shared by every benchmark: best-of timing and the output format.

Each figure is printed next to a baseline measured in the same run, because
absolute times on shared machines drift; ``ratio`` = ops_per_s / baseline_ops_per_s.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
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
    bench: str
    backend: str
    ops_per_s: float
    baseline_ops_per_s: float | None = None
    baseline: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. peak_rss_mb, mean_us

    @property
    def ratio(self) -> float | None:
        if not self.baseline_ops_per_s:
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


def arguments(description: str, **extra: dict[str, Any]) -> argparse.Namespace:
    """Common flags, plus ``extra`` as {flag: add_argument keywords}."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--rounds", type=int, default=15, help="best of this many rounds")
    for flag, options in extra.items():
        parser.add_argument(flag, **options)
    return parser.parse_args()


def report(results: list[Result], as_json: bool) -> None:
    if as_json:
        for result in results:
            fields = asdict(result)
            fields.update(fields.pop("extra"))
            print(json.dumps({**fields, "ratio": result.ratio}), flush=True)
        return
    print(f"{'bench':<22}{'backend':<10}{'ops/s':>12}{'baseline ops/s':>16}{'ratio':>8}  baseline")
    for r in results:
        base = f"{r.baseline_ops_per_s:>16,.0f}" if r.baseline_ops_per_s else f"{'-':>16}"
        ratio = f"{r.ratio:>8.2f}" if r.ratio else f"{'-':>8}"
        extra = "  ".join(f"{k}={v}" for k, v in r.extra.items())
        print(
            f"{r.bench:<22}{r.backend:<10}{r.ops_per_s:>12,.0f}{base}{ratio}  "
            f"{r.baseline or ''}  {extra}".rstrip()
        )


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
