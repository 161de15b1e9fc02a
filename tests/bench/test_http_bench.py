"""bench/http.py must keep running and keep its output format (tiny sizes here)."""

import json
import subprocess
import sys
from pathlib import Path

from tests.requirements import missing, require_command

BENCH = Path(__file__).resolve().parents[2] / "bench"
NODEWOT = BENCH.parent / "tests" / "interop" / "nodewot"


def test_http_bench_prints_readproperty_and_sse_fanout_with_baselines():
    require_command("node", package="nodejs")
    if not (NODEWOT / "node_modules" / "@node-wot" / "binding-http").is_dir():
        missing("node-wot", f"run `npm ci` in {NODEWOT} (`make install` does)")
    run = subprocess.run(
        [
            sys.executable,
            str(BENCH / "http.py"),
            "--json",
            "--rounds",
            "1",
            "--clients",
            "4",
            "--requests",
            "40",
            "--seconds",
            "5",
            "--subscribers",
            "5",
            "--values",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    printed = [json.loads(line) for line in run.stdout.splitlines()]
    # readproperty twice: beside the bare Starlette route, then beside node-wot's server.
    assert [(line["bench"], line["baseline"].split()[0]) for line in printed] == [
        ("readproperty", "bare"),
        ("readproperty", "node-wot"),
        ("sse_fanout", "sse-starlette"),
    ]
    assert printed[0]["server_cpu_us"] == printed[1]["server_cpu_us"]  # the same hub rounds
    lines = {line["bench"]: line for line in printed}
    for line in printed:
        assert line["backend"] == "https"
        assert line["ops_per_s"] > 0 and line["baseline_ops_per_s"] > 0
        assert line["ratio"] == line["ops_per_s"] / line["baseline_ops_per_s"]
        assert line["server_cpu_us"] > 0 and line["baseline_server_cpu_us"] > 0
        assert line["client_cpu_share"] > 0 and line["baseline_client_cpu_share"] > 0
    assert lines["readproperty"]["clients"] == 4
    fanout = lines["sse_fanout"]
    assert (fanout["subscribers"], fanout["values"]) == (5, 20)
    # Every subscriber got every value, in order, from both servers.
    assert fanout["lost"] == fanout["baseline_lost"] == 0
    assert fanout["out_of_order"] == 0 and fanout["streams_ended"] == 0
