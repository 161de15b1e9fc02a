"""The hub as a benchmark's server process (run by ``ServerProcess("_hub.py", "hub", ...)``).

A real hub (LevelDB store, HTTPS, the NATS binding with its managed nats-server, MQTT
when ``--mqtt``) on a fresh home, in its own process so that its CPU is not the load
generator's: on 2 cores the hub has one to itself, as it would beside its devices.

It adds an agent ``bench-agent`` and a viewer ``bench-viewer`` (password ``PASSWORD``),
registers ``TD`` for the agent, adds the agents named by ``--agents`` (same password;
each registers its own Things) and says where it is (one JSON line): the NATS URL, the
MQTT port, the HTTPS URL, the CA (PEM and path), a viewer token, the hub's own NATS seed
(full permissions, for the raw baselines through the same server) and its pid. Then it
answers ``cpu`` (its CPU seconds so far) and ``relay`` (starts the bare nats-py relay
``start_relay`` in this process) until ``quit`` or the end of stdin.

    python bench/_hub.py --serve hub [--mqtt] [--agents=NAME,NAME...]
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from _harness import bench_config, bench_td, command_lines, run_server, say, unshadow_packages

unshadow_packages()

THING = "urn:dev:bench:lamp-1"
PASSWORD = "bench password 123"
TD = bench_td(THING, "Lamp", level={"type": "integer"})


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


RELAY_IN, RELAY_OUT = "bench.relay.in", "bench.relay.out"


async def answer_commands(stdin, **commands: Callable[[], Awaitable[None]]) -> None:
    """The hub process's side of the command lines: ``cpu`` (its CPU seconds), each of
    ``commands`` by name, until ``quit`` or the end of input."""
    while line := (await stdin.readline()).decode().split():
        if line[0] == "quit":
            return
        if line[0] == "cpu":
            say(cpu=cpu_seconds())
        elif line[0] in commands:
            await commands[line[0]]()
        else:
            say(error=f"unknown command {line[0]}")


async def start_relay(hub):
    """The least a hub written on nats-py can do per update, as a baseline: a second
    connection of this process (the hub's own user, its TLS) republishing every message
    of RELAY_IN to RELAY_OUT with two headers, as the twin relay does, and nothing else:
    no parsing, no authorization, no twin."""
    import ssl

    import nats

    tls = ssl.create_default_context(cadata=hub.ca.ca_cert_pem.decode())
    nc = await nats.connect(hub.nats.url, tls=tls, nkeys_seed_str=hub.nats.keys.hub_user.seed)
    headers = {"Wot-Thing-Id": THING, "Wot-Name": "level"}

    async def republish(msg) -> None:
        await nc.publish(RELAY_OUT, msg.data, headers=headers)

    await nc.subscribe(RELAY_IN, cb=republish)
    await nc.flush()
    return nc


async def serve(mqtt: bool, agents: list[str]) -> None:
    from bucketstore import open_store
    from hub.runtime import Hub

    with tempfile.TemporaryDirectory() as tmp:
        config = bench_config(
            Path(tmp) / "home", nats_enabled=True, nats_ws_port=None, mqtt_enabled=mqtt
        )
        config.home.mkdir(mode=0o700)
        store = open_store(config.store_path, "leveldb")
        hub = Hub(config, store)
        # Throughput, not the per-stream backlog limit, is what is measured.
        hub.router.max_notifications = 100_000
        await hub.start()
        try:
            hub.auth.add_client("bench-agent", "agent", "agent", password=PASSWORD)
            hub.auth.add_client("bench-viewer", "consumer", "viewer", password=PASSWORD)
            for name in agents:
                hub.auth.add_client(name, "agent", "agent", password=PASSWORD)
            hub.twin.update_thing(TD, "bench-agent")
            stdin = await command_lines()
            relays: list = []
            say(
                nats_url=hub.nats.url,
                mqtt_port=hub.mqtt.port if mqtt else None,
                http_url=hub.http_server.url,
                ca=hub.ca.ca_cert_pem.decode(),
                ca_path=str(hub.ca.ca_cert_path),
                server_cert=str(hub.ca.server_cert_path),
                server_key=str(hub.ca.server_key_path),
                token=hub.auth.new_token("bench-viewer")["token"],
                hub_seed=hub.nats.keys.hub_user.seed,
                pid=os.getpid(),
            )

            async def relay() -> None:
                relays.append(await start_relay(hub))
                say(relay=RELAY_IN, out=RELAY_OUT)

            await answer_commands(stdin, relay=relay)
        finally:
            for relay in relays:
                await relay.close()
            await hub.stop()
            store.close()


if __name__ == "__main__":
    if sys.argv[1:3] != ["--serve", "hub"]:
        sys.exit(__doc__)
    flags = sys.argv[3:]
    named = [flag.removeprefix("--agents=") for flag in flags if flag.startswith("--agents=")]
    agents = [n for names in named for n in names.split(",") if n]
    run_server(serve("--mqtt" in flags, agents))  # on the loop `wothub serve` runs on
