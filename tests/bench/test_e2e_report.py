"""bench/e2e_latency.py (agent -> hub -> SSE or NATS consumer latency at fixed rates, the
hub in its own process) and bench/_report.py (make bench: every benchmark's JSON lines as
a table in docs/performance.md), run with tiny parameters."""

import importlib.util
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"

pytestmark = pytest.mark.timeout(240)


def load_report():
    spec = importlib.util.spec_from_file_location("bench_report", BENCH / "_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_e2e_latency_gives_percentiles_per_path_and_rate_next_to_raw_nats():
    run = subprocess.run(
        [
            sys.executable,
            str(BENCH / "e2e_latency.py"),
            "--json",
            "--rounds",
            "1",
            "--rates",
            "100,200",
            "--seconds",
            "0.3",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    keys = {(line["bench"], line["backend"], line["rate"]) for line in lines}
    assert len(keys) == len(lines) == 24
    assert keys == {
        (f"e2e_latency_{stat}", f"{path} {rate}/s", rate)
        for stat in ("p50", "p99", "p99.9")
        for path in ("nats->nats", "nats->sse", "mqtt->sse", "websocket->sse")
        for rate in (100, 200)
    }
    for line in lines:
        assert line["unit"] == "ms"
        assert 0 < line["figure"] < 10_000 and 0 < line["baseline_figure"] < 10_000
        assert line["ratio"] == line["figure"] / line["baseline_figure"]
        assert line["baseline"].startswith("raw nats-py")
        assert line["updates"] + line["lost"] == 0.3 * line["rate"]
        assert line["lost"] == 0 and line["baseline_lost"] == 0
    by_key = {(line["bench"], line["backend"], line["rate"]): line for line in lines}
    for (bench, path, rate), line in by_key.items():
        if bench == "e2e_latency_p50":
            assert line["figure"] <= by_key[("e2e_latency_p99", path, rate)]["figure"]
            assert line["figure"] <= by_key[("e2e_latency_p99.9", path, rate)]["figure"]
            assert line["hub_cpu_us"] > 0 and line["max_ms"] > 0
            assert 0.5 * rate < line["sent_per_s"] < 2 * rate
            assert "growth_ms" in line and line["drain_ms"] >= 0
        else:
            assert "hub_cpu_us" not in line


def test_report_puts_the_table_under_the_title_and_keeps_the_hand_written_sections():
    report = load_report()
    document = "# Performance\n\nIntro by hand.\n\n## Bucket store\n\nKept as is.\n"
    results = {
        "bucketstore.py": (
            [
                {
                    "bench": "set",
                    "backend": "leveldb",
                    "ops_per_s": 439989.4,
                    "baseline_ops_per_s": 491640.0,
                    "baseline": "raw plyvel",
                    "ratio": 0.8949,
                    "peak_rss_mb": 12.5,
                }
            ],
            None,
        ),
        "e2e_latency.py": (
            [
                {
                    "bench": "e2e_latency_p50",
                    "backend": "nats->sse",
                    "figure": 1.14,
                    "unit": "ms",
                    "baseline_figure": 1.0,
                    "baseline": "in-process agent",
                    "ratio": 1.14,
                    "lost": 0,
                }
            ],
            None,
        ),
        "broken.py": ([], "exit 1: boom"),
    }
    section = report.table(results, datetime(2026, 11, 23, 12, 0, tzinfo=UTC))
    first = report.splice(document, section)
    assert first.startswith("# Performance\n\n" + report.BEGIN)
    assert "Intro by hand.\n\n## Bucket store\n\nKept as is.\n" in first
    assert (
        "| bucketstore.py | set | leveldb | 439,989 | 491,640 | ops/s | 0.89 | raw plyvel |"
        in first
    )
    assert "| e2e_latency.py | e2e_latency_p50 | nats->sse | 1.14 | 1.00 | ms | 1.14 |" in first
    assert "peak_rss_mb=12.50" in first
    assert "| broken.py | **failed** |" in first and "exit 1: boom" in first
    assert "2026-11-23 12:00 UTC" in first
    assert "cores" in first and "Python" in first

    # Run again: the generated section is replaced, nothing else moves.
    again = report.splice(first, report.table({}, datetime(2026, 11, 24, tzinfo=UTC)))
    assert again.count(report.BEGIN) == 1 and again.count(report.END) == 1
    assert "bucketstore.py" not in again and "2026-11-24 00:00 UTC" in again
    assert again.split(report.END, 1)[1] == first.split(report.END, 1)[1]


def test_report_runs_the_benchmarks_and_writes_the_file(tmp_path):
    out = tmp_path / "performance.md"
    out.write_text("# Performance\n\n## By hand\n\nStays.\n")
    subprocess.run(
        [
            sys.executable,
            str(BENCH / "_report.py"),
            "--out",
            str(out),
            "--only",
            "e2e_latency.py",
            "--bench-args",
            "--rounds 1 --rates 100 --seconds 0.1",
            "--timeout",
            "180",
        ],
        capture_output=True,
        text=True,
        timeout=200,
        check=True,
    )
    text = out.read_text()
    assert text.count("| e2e_latency.py | e2e_latency_p") == 12
    assert text.endswith("## By hand\n\nStays.\n")
