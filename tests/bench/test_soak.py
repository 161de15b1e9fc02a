"""bench/soak.py with tiny sizes: its samples, its summary line, and nothing lost.

A real ``wothub serve`` and real clients on every binding (the script's own processes);
20 devices and 20 SSE consumers for 15 s, a sample every 5 s."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
DEVICES, CONSUMERS, DURATION, INTERVAL, EVERY = 20, 20, 15.0, 2.0, 5.0

pytestmark = pytest.mark.timeout(300)

SAMPLE_FIELDS = {
    "elapsed_s", "hub_rss_mb", "hub_fds", "nats_rss_mb", "loop_lag_ms", "sent", "delivered",
    "lost", "send_errors", "device_reconnects", "sse_reconnects", "connections", "cpu_pct",
    "others_cpu_pct", "generator_lag_ms", "late_ms",
}  # fmt: skip


def reports_due() -> int:
    """Device i reports at i * INTERVAL / DEVICES s, then every INTERVAL s, until DURATION."""
    return sum(math.ceil((DURATION - i * INTERVAL / DEVICES) / INTERVAL) for i in range(DEVICES))


def test_a_short_soak_samples_every_5_s_and_loses_nothing():
    run = subprocess.run(
        [
            sys.executable, str(BENCH / "soak.py"), "--json",
            "--devices", str(DEVICES), "--consumers", str(CONSUMERS),
            "--duration", str(DURATION), "--interval", str(INTERVAL),
            "--sample-every", str(EVERY),
        ],
        capture_output=True, text=True, timeout=280, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(lines) == 1, run.stdout
    result = lines[0]
    samples = [
        json.loads(line)["sample"]
        for line in run.stderr.splitlines()
        if line.startswith('{"sample"')
    ]

    assert [s["elapsed_s"] for s in samples] == [5.0, 10.0, 15.0]
    for sample in samples:
        assert set(sample) >= SAMPLE_FIELDS
        assert sample["hub_rss_mb"] > 0 and sample["hub_fds"] > 0 and sample["nats_rss_mb"] > 0
        assert sample["lost"] == 0
        # Every client is connected: 40% of the devices on NATS, 30% on MQTT and WebSocket.
        # MQTT devices enter through nats-server, so the NATS binding counts them too.
        assert sample["connections"] == {"nats": 8 + 6, "websocket": 6, "sse": 20}
    assert samples[0]["sent"] < samples[1]["sent"] < samples[2]["sent"]

    # The summary, in the harness's format, with the figures of the last sample.
    assert result["bench"] == "soak" and result["backend"] == "nats+mqtt+websocket->sse"
    assert result["unit"] == "MiB" and result["figure"] == samples[-1]["hub_rss_mb"]
    assert result["baseline_figure"] > 0 and result["baseline"]
    assert result["ratio"] == round(result["figure"] / result["baseline_figure"], 2)
    assert (result["devices"], result["consumers"]) == (DEVICES, CONSUMERS)
    assert result["rss_end_mb"] == samples[-1]["hub_rss_mb"]
    assert result["fds_end"] == samples[-1]["hub_fds"]
    assert result["rss_growth_mb"] == round(result["rss_end_mb"] - result["rss_warm_mb"], 1)
    assert result["fds_growth"] == result["fds_end"] - result["fds_warm"]
    assert result["max_loop_lag_ms"] >= 0 and result["hub_cpu_pct"] > 0

    # Each device reported on schedule, and each consumer got every value of its device.
    assert result["send_errors"] == 0
    assert result["sent"] == reports_due()
    assert result["expected"] == result["sent"]  # consumer i observes device i
    assert result["delivered"] == result["sent"]
    assert result["lost"] == 0
