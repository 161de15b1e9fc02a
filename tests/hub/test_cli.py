"""`wothub serve` opens the store, says where it lives, and stops cleanly on a signal."""

import signal
import subprocess
import sys
import time

import pytest

from bucketstore import open_store
from tests.hub.served import serve_env


def start(tmp_path, *args):
    env = serve_env(WOTHUB_HOME=str(tmp_path / "home"))
    return subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "serve", *args],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_line(process, needle, timeout=20):
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line)
        if needle in line:
            return line
    pytest.fail(f"{needle!r} not logged; got {lines}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serve_logs_store_location_and_stops_on_signal(tmp_path, sig):
    hub = start(tmp_path)
    try:
        line = wait_for_line(hub, "wothub started")
        assert str(tmp_path / "home" / "store") in line
        hub.send_signal(sig)
        wait_for_line(hub, "wothub stopped")
        assert hub.wait(timeout=10) == 0
    finally:
        hub.kill()
    # The store was released: it opens again.
    open_store(tmp_path / "home" / "store").close()


def test_home_flag_wins_over_environment(tmp_path):
    hub = start(tmp_path, "--home", str(tmp_path / "flag-home"))
    try:
        assert str(tmp_path / "flag-home" / "store") in wait_for_line(hub, "wothub started")
    finally:
        hub.send_signal(signal.SIGTERM)
        hub.wait(timeout=10)


def test_store_held_elsewhere_is_a_clear_error_not_a_traceback(tmp_path):
    with open_store(tmp_path / "home" / "store"):
        hub = start(tmp_path)
        _, err = hub.communicate(timeout=20)
    assert hub.returncode == 1
    assert "already open" in err
    assert "Traceback" not in err
