"""Benchmarks are not tests, but they must keep running and keep their output format."""

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def run_bench(script, *args):
    run = subprocess.run(
        [sys.executable, str(BENCH / script), "--json", "--rounds", "1", *args],
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    return [json.loads(line) for line in run.stdout.splitlines()]


def test_bucketstore_bench_prints_one_json_object_per_line():
    lines = run_bench("bucketstore.py")
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


def test_digitwin_bench_prints_its_three_figures_with_baselines():
    lines = {
        line["bench"]: line
        for line in run_bench("digitwin.py", "--tds", "1200", "--updates", "300")
    }
    assert set(lines) == {"property_updates", "register_tds", "load_inactive_twin"}
    for line in lines.values():
        assert line["ops_per_s"] > 0 and line["baseline_ops_per_s"] > 0
        assert line["ratio"] == line["ops_per_s"] / line["baseline_ops_per_s"]
    assert lines["register_tds"]["tds"] == 1200
    assert lines["register_tds"]["active"] == 1000
    assert lines["register_tds"]["peak_rss_mb"] > 0


def test_groups_bench_prints_a_write_and_a_read_beside_a_group_of_one():
    lines = {line["bench"]: line for line in run_bench("groups.py", "--members", "40")}
    assert set(lines) == {"group_write", "group_read"}
    for line in lines.values():
        assert line["unit"] == "ms" and line["members"] == 40
        assert line["figure"] > 0 and line["baseline_figure"] > 0 and line["hub_cpu_ms"] > 0
        assert line["ratio"] == line["figure"] / line["baseline_figure"]
    assert lines["group_write"]["offline"] == 20


def test_history_bench_prints_each_figure_on_both_stores_with_its_baseline():
    lines = run_bench("history.py", "--updates", "2000")
    benches = {(line["bench"], line["backend"]): line for line in lines}
    assert set(benches) == {
        ("property_updates", "leveldb"),
        ("downsample_day", "leveldb"),
        ("downsample_day_3m", "leveldb"),
        ("raw_page", "leveldb"),
        ("bytes_per_value", "leveldb"),
        ("downsample_day", "jetstream"),
        ("downsample_day_3m", "jetstream"),
        ("raw_page", "jetstream"),
    }
    for line in lines:
        figure = line["figure"] if "figure" in line else line["ops_per_s"]
        baseline = line["baseline_figure"] if "figure" in line else line["baseline_ops_per_s"]
        assert figure > 0 and baseline > 0
        assert line["ratio"] == figure / baseline
