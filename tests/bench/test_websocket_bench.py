"""bench/websocket.py must keep running and keep its output format (tiny parameters)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"

pytestmark = pytest.mark.timeout(240)


def test_websocket_bench_prints_fanout_figures_with_baselines():
    run = subprocess.run(
        [
            sys.executable,
            str(BENCH / "websocket.py"),
            "--json",
            "--rounds",
            "1",
            "--values",
            "30",
            "--consumers",
            "1,3",
        ],
        capture_output=True,
        text=True,
        timeout=200,
        check=True,
    )
    lines = {line["bench"]: line for line in map(json.loads, run.stdout.splitlines())}
    assert set(lines) == {"ws_fanout_1", "ws_fanout_3"}
    for consumers, line in ((1, lines["ws_fanout_1"]), (3, lines["ws_fanout_3"])):
        assert line["consumers"] == consumers and line["values"] == 30
        assert line["ops_per_s"] > 0 and line["baseline_ops_per_s"] > 0
        assert line["ratio"] == line["ops_per_s"] / line["baseline_ops_per_s"]
        assert line["lost"] == 0 and line["baseline_lost"] == 0
        assert line["out_of_order"] == 0
        assert line["server_cpu_us"] > 0 and line["baseline_server_cpu_us"] > 0
