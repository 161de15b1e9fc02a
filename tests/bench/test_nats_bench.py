"""bench/nats.py must keep running and keep its output format (tiny sizes here)."""

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_nats_bench_prints_updates_and_round_trips_with_raw_baselines():
    run = subprocess.run(
        [
            sys.executable,
            str(BENCH / "nats.py"),
            "--json",
            "--rounds",
            "1",
            "--values",
            "50",
            "--requests",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    lines = {line["bench"]: line for line in map(json.loads, run.stdout.splitlines())}
    assert set(lines) == {
        "property_updates_nats",
        "nats_py_relay",
        "property_updates_sse",
        "request_reply",
    }
    for line in lines.values():
        assert line["ops_per_s"] > 0 and line["baseline_ops_per_s"] > 0
        assert line["ratio"] == line["ops_per_s"] / line["baseline_ops_per_s"]
    assert lines["property_updates_nats"]["values"] == 50
    assert lines["nats_py_relay"]["relay_cpu_us"] > 0
    relay = lines["property_updates_nats"]["of_relay"]
    assert relay == round(
        lines["property_updates_nats"]["ops_per_s"] / lines["nats_py_relay"]["ops_per_s"], 2
    )
    assert lines["request_reply"]["requests"] == 20
