"""MQTT binding throughput, next to the same messages through the bare broker (same run).

- hub_to_mqtt / hub_to_sse: property updates per second from an MQTT agent (paho, its
  own process) through the hub (nats-server's MQTT listener -> the hub's NATS
  connection -> router -> twin -> the twin subject, plus its retained copy) to an MQTT
  consumer, then in a part of its own to an SSE consumer (each in its own process).
  Rate = updates received / time from first to last received. The hub runs in its own
  process (bench/_hub.py); ``hub_cpu_us`` is its CPU time per update in the MQTT parts.
- Baseline ``nats_mqtt_direct``: the same messages published and received by the same
  clients through nats-server's MQTT listener with no hub: the same binary and listener
  configuration (TLS with the same certificate, JetStream) as the hub's managed server,
  without the auth callout.
- ``mosquitto``: the same again through mosquitto on loopback when it is installed
  (Debian package ``mosquitto``); otherwise reported as skipped.

Every client is paho-mqtt 2.x over TLS with QoS 0.

    python bench/mqtt.py [--json] [--rounds N] [--updates N]
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import Result, arguments, hub_process, report, unshadow_packages
from _hub import PASSWORD, THING

unshadow_packages()


IDLE = 3.0  # a consumer stops this long after its last message


# -- the client processes ------------------------------------------------------------------


def _paho(client_id: str, ca: str, username: str | None):
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv311)  # fmt: skip
    client.tls_set_context(ssl.create_default_context(cafile=ca))
    if username:
        client.username_pw_set(username, PASSWORD)
    return client


def child_subscribe(port: int, ca: str, client_id: str, username: str, topic: str, n: int):
    import threading

    client = _paho(client_id, ca, username)
    times: list[float] = []
    subscribed = threading.Event()
    client.on_connect = lambda c, *a: c.subscribe(topic, 0)
    client.on_subscribe = lambda *a: subscribed.set()
    client.on_message = lambda *a: times.append(time.perf_counter())
    client.connect("127.0.0.1", port)
    client.loop_start()
    subscribed.wait(10)
    print("ready", flush=True)
    _wait_for(times, n)
    client.loop_stop()
    _result(times)


def child_sse(url: str, ca: str, token: str, n: int):
    import aiohttp

    async def run():
        times: list[float] = []
        connector = aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=ca))
        headers = {"Accept": "text/event-stream", "Authorization": f"Bearer {token}"}
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.get(url, headers=headers) as response,
        ):
            print("ready", flush=True)
            while len(times) < n:
                try:
                    line = await asyncio.wait_for(response.content.readline(), IDLE)
                except TimeoutError:
                    break
                if line.startswith(b"data:"):
                    times.append(time.perf_counter())
        _result(times)

    asyncio.run(run())


def child_publish(port: int, ca: str, client_id: str, username: str, topic: str, n: int):
    import threading

    client = _paho(client_id, ca, username)
    connected = threading.Event()
    client.on_connect = lambda *a: connected.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    connected.wait(20)  # QoS 0 messages published before CONNACK are dropped by paho
    info = None
    for i in range(n):
        info = client.publish(topic, b'{"value": %d}' % (i % 100), 0)
    if info is not None:
        info.wait_for_publish(30)
    time.sleep(0.2)
    client.disconnect()
    client.loop_stop()


def _wait_for(times: list[float], n: int) -> None:
    deadline = time.monotonic() + 120
    while len(times) < n and time.monotonic() < deadline:
        last = times[-1] if times else None
        time.sleep(0.05)
        if last is not None and times[-1] == last and time.perf_counter() - last > IDLE:
            break


def _result(times: list[float]) -> None:
    elapsed = times[-1] - times[0] if len(times) > 1 else 0.0
    print(json.dumps({"received": len(times), "elapsed": elapsed}), flush=True)


# -- orchestration -----------------------------------------------------------------------


async def _spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--child", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def _ready(process: asyncio.subprocess.Process) -> None:
    line = await asyncio.wait_for(process.stdout.readline(), 20)
    if line.strip() != b"ready":
        raise RuntimeError(f"a consumer did not start: {line!r}")


async def _finish(process: asyncio.subprocess.Process) -> dict:
    out, _ = await asyncio.wait_for(process.communicate(), 180)
    return json.loads(out.decode().strip().splitlines()[-1])


def _rate(result: dict) -> float:
    return result["received"] / result["elapsed"] if result["elapsed"] > 0 else 0.0


async def _run(port, ca, n, pub, subs):
    """Start the consumers, then the publisher; {name: (rate, received)}."""
    consumers = {name: await _spawn(*args) for name, args in subs.items()}
    for process in consumers.values():
        await _ready(process)
    publisher = await _spawn("pub", str(port), ca, *pub, str(n))
    await asyncio.wait_for(publisher.wait(), 180)
    out = {}
    for name, process in consumers.items():
        result = await _finish(process)
        out[name] = (_rate(result), result["received"])
    return out


async def _plain_round(port: int, ca: str, n: int) -> tuple[float, int]:
    """One run through a broker without the hub: the same clients and messages."""
    subscriber = ["sub", str(port), ca, "s", "", "bench/level", str(n)]
    got = await _run(port, ca, n, ["p", "", "bench/level"], {"s": subscriber})
    return got["s"]


async def bench_hub(
    keep: Path, n: int, rounds: int
) -> tuple[dict[str, tuple[float, int]], dict[str, str], float]:
    """The hub path's best rates, copies in ``keep`` of the hub's CA and server
    certificate (they serve the other brokers) and the hub's CPU per update. The hub
    runs in its own process (bench/_hub.py), whose home goes when it stops."""
    from bindings.mqtt import topics

    best: dict[str, tuple[float, int]] = {}
    cpu_used, updates = 0.0, 0
    keep.mkdir(mode=0o700)
    files = {}
    async with hub_process("--mqtt") as (hello, server):
        for name in ("ca_path", "server_cert", "server_key"):
            files[name] = str(shutil.copy(hello[name], keep / Path(hello[name]).name))
        ca, port = hello["ca_path"], hello["mqtt_port"]
        sse_url = f"{hello['http_url']}/things/{topics.encode(THING)}/properties/level"
        report_topic = topics.agent_topic("bench-agent", "prop", THING, "level")
        mqtt_consumer = ["sub", str(port), ca, "bench-viewer/1", "bench-viewer",
                         topics.twin_property(THING, "level"), str(n)]  # fmt: skip
        sse_consumer = ["sse", sse_url, ca, hello["token"], str(n)]
        for _ in range(rounds):
            # One consumer at a time, so each figure is that path's alone; the hub's CPU
            # per update is measured on the MQTT-only part.
            cpu_before = (await server.ask("cpu"))["cpu"]
            got = await _run(port, ca, n, ["bench-agent", "bench-agent", report_topic],
                             {"hub_to_mqtt": mqtt_consumer})  # fmt: skip
            cpu_used += (await server.ask("cpu"))["cpu"] - cpu_before
            updates += n
            got |= await _run(port, ca, n, ["bench-agent", "bench-agent", report_topic],
                              {"hub_to_sse": sse_consumer})  # fmt: skip
            for name, value in got.items():
                if value[0] > best.get(name, (0, 0))[0]:
                    best[name] = value
    return best, files, 1e6 * cpu_used / updates


async def _broker_rounds(command: list[str], port: int, ca: dict, n: int, rounds: int):
    """Start a broker, wait for its MQTT port, run the plain rounds, stop it."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    best = (0.0, 0)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            await asyncio.sleep(0.05)  # polled: the broker says nothing when it listens
        for _ in range(rounds):
            best = max(best, await _plain_round(port, ca["ca_path"], n))
    finally:
        process.terminate()
        process.wait(10)
    return best


async def bench_nats_mqtt(home: Path, ca, n: int, rounds: int) -> tuple[float, int]:
    """nats-server's MQTT listener as the hub configures it (TLS, JetStream), no hub:
    anonymous clients in the global account instead of the auth callout."""
    from bindings.nats.server import find_binary, free_ports

    home.mkdir(mode=0o700)
    port, client_port = free_ports(2)
    conf = home / "nats-server.conf"
    conf.write_text(
        f'listen: "127.0.0.1:{client_port}"\n'
        f'jetstream {{ store_dir: "{home / "jetstream"}" }}\n'
        f'mqtt {{\n  listen: "127.0.0.1:{port}"\n'
        f'  tls {{ cert_file: "{ca["server_cert"]}", key_file: "{ca["server_key"]}", '
        f'ca_file: "{ca["ca_path"]}", timeout: 2 }}\n}}\n'
    )
    return await _broker_rounds([find_binary(), "-c", str(conf)], port, ca, n, rounds)


async def bench_mosquitto(home: Path, ca, n: int, rounds: int) -> tuple[float, int] | None:
    from bindings.nats.server import free_port

    binary = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None
    )
    if binary is None:
        return None
    home.mkdir(mode=0o700)
    port = free_port()
    conf = home / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\n"
        f"certfile {ca['server_cert']}\nkeyfile {ca['server_key']}\n"
        f"cafile {ca['ca_path']}\npersistence false\n"
        # Run as us: started as root, mosquitto would switch to its own user, who may
        # not read the (0600) key.
        f"user {getpass.getuser()}\n"
    )
    return await _broker_rounds([binary, "-c", str(conf)], port, ca, n, rounds)


async def main_async(n: int, rounds: int) -> list[Result]:
    with tempfile.TemporaryDirectory() as tmp:
        hub, ca, hub_cpu_us = await bench_hub(Path(tmp) / "certs", n, rounds)
        direct, direct_received = await bench_nats_mqtt(Path(tmp) / "nats", ca, n, rounds)
        mosquitto = await bench_mosquitto(Path(tmp) / "mosquitto", ca, n, rounds)
    results = []
    for name in ("hub_to_mqtt", "hub_to_sse"):
        rate, received = hub.get(name, (0.0, 0))
        extra = {"received": received, "sent": n, "hub_cpu_us": round(hub_cpu_us, 1)}
        results.append(Result(name, "nats-mqtt", rate, direct, "nats_mqtt_direct", extra))
    extra = {"received": direct_received, "sent": n}
    if mosquitto is None:
        print("mosquitto is not installed: its figure is skipped", file=sys.stderr)
        results.append(Result("nats_mqtt_direct", "nats-mqtt", direct, None, None, extra))
    else:
        results.append(Result("nats_mqtt_direct", "nats-mqtt", direct, mosquitto[0],
                              "mosquitto", extra))  # fmt: skip
        results.append(Result("mosquitto", "mosquitto", mosquitto[0], None, None,
                              {"received": mosquitto[1], "sent": n}))  # fmt: skip
    return results


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        role, args = sys.argv[2], sys.argv[3:]
        if role == "sub":
            child_subscribe(int(args[0]), args[1], args[2], args[3], args[4], int(args[5]))
        elif role == "sse":
            child_sse(args[0], args[1], args[2], int(args[3]))
        else:
            child_publish(int(args[0]), args[1], args[2], args[3], args[4], int(args[5]))
        return
    options = arguments(
        __doc__.splitlines()[0],
        **{"--updates": {"type": int, "default": 20_000, "help": "property updates per run"}},
    )
    results = asyncio.run(main_async(options.updates, max(1, min(options.rounds, 3))))
    report(results, options.json)


if __name__ == "__main__":
    main()
