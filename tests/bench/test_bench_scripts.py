"""Benchmarks are not tests, but they must keep running and keep their output format."""

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_bucketstore_bench_prints_one_json_object_per_line():
    run = subprocess.run(
        [sys.executable, str(BENCH / "bucketstore.py"), "--json", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    benches = {(line["bench"], line["backend"]) for line in lines}
    for backend in ("leveldb", "memory"):
        for bench in ("set", "get", "set_many_1000", "scan_100000"):
            assert (bench, backend) in benches
    for line in lines:
        assert line["ops_per_s"] > 0
        if line["backend"] == "leveldb":
            assert line["baseline_ops_per_s"] > 0
            assert line["ratio"] == line["ops_per_s"] / line["baseline_ops_per_s"]
        else:
            assert line["baseline_ops_per_s"] is None and line["ratio"] is None
