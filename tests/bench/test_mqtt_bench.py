"""bench/mqtt.py keeps running and keeps its output format (tiny parameters)."""

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_mqtt_bench_prints_hub_and_direct_broker_figures():
    run = subprocess.run(
        [sys.executable, str(BENCH / "mqtt.py"), "--json", "--rounds", "1", "--updates", "200"],
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    lines = {line["bench"]: line for line in map(json.loads, run.stdout.splitlines())}
    assert {"hub_to_mqtt", "hub_to_sse", "nats_mqtt_direct"} <= set(lines)
    for name in ("hub_to_mqtt", "hub_to_sse"):
        line = lines[name]
        assert line["received"] == line["sent"] == 200
        assert line["ops_per_s"] > 0 and line["baseline"] == "nats_mqtt_direct"
        assert line["ratio"] == line["ops_per_s"] / line["baseline_ops_per_s"]
    assert lines["nats_mqtt_direct"]["received"] == 200
    if "mosquitto" not in lines:
        assert "mosquitto is not installed" in run.stderr
