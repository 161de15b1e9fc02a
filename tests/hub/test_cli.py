"""`wothub serve` opens the store, says where it lives, and stops cleanly on a signal."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bucketstore import open_store
from tests.support.served import serve_env


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
        # Every listener is on loopback here: the line says so, and how to open the hub.
        assert "only this machine can connect" in line and 'host = "0.0.0.0"' in line
        # Which URL the twin TDs carry, and how to change it.
        forms = wait_for_line(hub, "twin TDs and Location headers point at https://127.0.0.1:")
        assert "set public_url" in forms
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


def test_the_readme_path_works_with_the_default_settings(tmp_path):
    # `make run`, then `make demo` and the admin CLI in other terminals: nothing set but
    # free ports (the defaults bind loopback, so this stays on 127.0.0.1).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WOTHUB_", "XDG_"))}
    env["HOME"] = str(tmp_path)
    ports = ("HTTP_PORT", "MQTT_PORT", "NATS_PORT", "NATS_WS_PORT")
    serve_only = {**env, **{f"WOTHUB_{name}": "0" for name in ports}}
    wothub = [sys.executable, "-m", "hub.cli"]
    hub = subprocess.Popen([*wothub, "serve"], env=serve_only, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_line(hub, "wothub started", timeout=60)
        listeners = tmp_path / ".local" / "share" / "wothub" / "listeners.json"
        local_url = json.loads(listeners.read_text())["listeners"]["https"]["local_url"]
        assert local_url.startswith("https://127.0.0.1:")
        demo = subprocess.run(
            [*wothub, "demo", "--duration", "5"],
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert demo.returncode == 0, demo.stdout + demo.stderr
        listed = subprocess.run(
            [*wothub, "clients", "list"], env=env, capture_output=True, text=True, timeout=60
        )
        assert listed.returncode == 0, listed.stdout + listed.stderr
        assert "admin" in listed.stdout and "demo" in listed.stdout  # the demo's agents
    finally:
        hub.send_signal(signal.SIGTERM)
        hub.wait(timeout=20)


def test_version_is_the_installed_package_s(capsys):
    import importlib.metadata

    from hub.cli import main

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"wothub {importlib.metadata.version('wothub')}"


def test_make_passes_args_through_to_run_and_demo():
    root = Path(__file__).resolve().parents[2]
    for target in ("run", "demo"):
        planned = subprocess.run(
            ["make", "-n", "-C", str(root), target, "ARGS=--help --home /x"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert planned.returncode == 0, planned.stderr
        assert f"wothub {'serve' if target == 'run' else target} --help --home /x" in planned.stdout


def test_home_and_url_may_come_before_the_command(capsys):
    from hub.cli import main, parse_args

    args = parse_args(["--home", "/a", "--url", "https://hub:1", "clients", "list"])
    assert (args.home, args.url) == (Path("/a"), "https://hub:1")
    assert parse_args(["--home", "/a", "clients", "list", "--home", "/b"]).home == Path("/b")
    assert parse_args(["--home", "/a", "serve"]).home == Path("/a")
    assert main(["--url", "https://hub:1", "serve"]) == 2  # serve has no --url: a usage error
    assert capsys.readouterr().err.splitlines()[-1] == (
        "wothub: error: wothub serve does not take --url; leave it out, or give it to a "
        "command that does (see wothub COMMAND --help)"
    )


def test_flags_are_never_abbreviated(capsys):
    from hub.cli import main

    # --http would be --http-host or --http-port; --password would be --password-file.
    assert main(["serve", "--http", "8444"]) == 2
    assert "unrecognized arguments: --http 8444" in capsys.readouterr().err
    assert main(["clients", "list", "--password", "secret"]) == 2
    assert "unrecognized arguments: --password secret" in capsys.readouterr().err
