"""The managed nats-server lives and dies with its hub, and only it counts as the hub's.

- ``kill -9`` of ``wothub serve``: its nats-server goes too (parent-death signal), and
  the next start on the same home is ready at once.
- A nats-server left running by an earlier start anyway (its pid file names it) is
  stopped by the next start, which then takes the port.
- Whatever else listens on the NATS port is never taken for the hub's server: at start
  the hub refuses clearly; when it takes the port while the hub restarts its server, the
  hub stays not ready (no restart counted) until the port is free again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest

from bindings.nats.server import find_binary
from bucketstore import open_store
from hub.runtime import Hub
from tests.support.running import hub_config
from tests.support.served import Process, serve_env, wait_listeners
from tests.waiting import until

pytestmark = pytest.mark.timeout(120)


def alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie (dead, not yet reaped by whoever adopted it) does
    not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return False
    return stat.rsplit(b")", 1)[1].split()[0] != b"Z"


def nats_pid(home: Path) -> int:
    return int((home / "nats" / "nats-server.pid").read_text())


async def ready_status(home: Path, url: str) -> int | None:
    """GET /ready's status, None while nothing answers."""
    context = ssl.create_default_context(cafile=str(home / "certs" / "ca.pem"))
    try:
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session,
            session.get(f"{url}/ready", timeout=aiohttp.ClientTimeout(total=2)) as response,
        ):
            return response.status
    except (aiohttp.ClientError, TimeoutError):
        return None


async def ready_within(home: Path, process: Process, seconds: float) -> float:
    """Seconds from now until the hub's /ready answers 200 (fails after ``seconds``)."""
    started = time.monotonic()
    listeners = await wait_listeners(home, process, timeout=seconds)
    url = listeners["https"]["local_url"]
    statuses: list[int | None] = []

    async def ready() -> bool:
        statuses.append(await ready_status(home, url))
        return statuses[-1] == 200

    left = seconds - (time.monotonic() - started)
    try:
        async with asyncio.timeout(max(left, 0)):
            while not await ready():
                await asyncio.sleep(0.1)  # polling /ready
    except TimeoutError:
        pytest.fail(f"not ready within {seconds} s ({statuses[-3:]}):\n{process.output}")
    return time.monotonic() - started


async def stopped(process: Process) -> None:
    if process.process is not None and process.process.returncode is None:
        await process.stop()


async def test_kill_9_of_the_hub_takes_its_nats_server_along(tmp_path):
    home = tmp_path / "home"
    env = serve_env(WOTHUB_HOME=str(home))
    first, second = Process("wothub serve"), Process("wothub serve again")
    try:
        await first.start("serve", env=env)
        await ready_within(home, first, 40)
        pid = nats_pid(home)
        assert alive(pid)

        first.process.kill()
        assert await first.process.wait() == -signal.SIGKILL
        await until(lambda: not alive(pid), timeout=5)

        await second.start("serve", env=env)
        took = await ready_within(home, second, 10)
        assert nats_pid(home) != pid
        print(f"ready {took:.1f} s after the restart")
        assert "restarting" not in second.output
    finally:
        for process in (first, second):
            await stopped(process)


async def test_a_leftover_nats_server_of_this_home_is_stopped_by_the_next_start(tmp_path):
    """As if the parent-death signal had not worked (another system, an older hub): the
    leftover holds the very ports the hub is configured with."""
    home = tmp_path / "home"
    first = Process("wothub serve")
    await first.start("serve", env=serve_env(WOTHUB_HOME=str(home)))
    try:
        listeners = await wait_listeners(home, first)
    finally:
        assert await first.stop() == 0
    assert not (home / "nats" / "nats-server.pid").exists()  # a clean stop removes it

    # The leftover: nats-server on the home's configuration, not a child of any hub.
    config = home / "nats" / "nats-server.conf"
    leftover = subprocess.Popen(
        [find_binary(), "-c", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    again = Process("wothub serve again")
    try:
        (home / "nats" / "nats-server.pid").write_text(f"{leftover.pid}\n")
        port = listeners["nats"]["port"]
        await until(lambda: _listening("127.0.0.1", port), timeout=10)
        env = serve_env(
            WOTHUB_HOME=str(home),
            WOTHUB_NATS_PORT=str(port),
            WOTHUB_NATS_WS_PORT=str(listeners["nats-wss"]["port"]),
        )
        await again.start("serve", env=env)
        await ready_within(home, again, 20)
        assert leftover.poll() is not None  # stopped (and reaped here, its parent)
        assert f"stopping nats-server pid {leftover.pid}" in again.output
        assert nats_pid(home) != leftover.pid
    finally:
        await stopped(again)
        if leftover.poll() is None:
            leftover.kill()
        leftover.wait(5)


async def test_a_pid_file_naming_another_process_stops_nothing(tmp_path):
    """The pid of a leftover may since belong to something else: only a nats-server on
    this home's configuration is stopped."""
    home = tmp_path / "home"
    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
    hub = Process("wothub serve")
    try:
        (home / "nats").mkdir(parents=True)
        (home / "nats" / "nats-server.pid").write_text(f"{bystander.pid}\n")
        await hub.start("serve", env=serve_env(WOTHUB_HOME=str(home)))
        await ready_within(home, hub, 40)
        assert bystander.poll() is None
        assert nats_pid(home) != bystander.pid
    finally:
        await stopped(hub)
        bystander.kill()
        bystander.wait(5)


class FakeNats:
    """A listener that greets like a nats-server, with the name every hub's server had
    before names were made per start."""

    def __init__(self) -> None:
        self.greeted = 0
        self.server: asyncio.Server | None = None

    async def serve(self, sock: socket.socket) -> None:
        self.server = await asyncio.start_server(self._greet, sock=sock)

    async def _greet(self, reader, writer) -> None:
        self.greeted += 1
        info = {"server_id": "NFAKE", "server_name": "wothub", "tls_required": True}
        writer.write(b"INFO " + json.dumps(info).encode() + b"\r\n")
        with contextlib.suppress(OSError):
            await writer.drain()
            await reader.read()  # until the caller hangs up
        writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def test_a_foreign_listener_on_the_nats_port_fails_the_start_clearly(tmp_path):
    home = tmp_path / "home"
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    fake = FakeNats()
    await fake.serve(sock)
    hub = Process("wothub serve")
    try:
        await hub.start("serve", env=serve_env(WOTHUB_HOME=str(home), WOTHUB_NATS_PORT=str(port)))
        async with asyncio.timeout(40):
            code = await hub.process.wait()
        await hub.wait_for("cannot start", 5)
        assert code == 1
        assert f"the NATS listener cannot listen on 127.0.0.1:{port}" in hub.output
        assert fake.server.is_serving()  # left alone
    finally:
        await stopped(hub)
        await fake.close()


async def test_a_foreign_listener_that_takes_the_port_is_never_taken_for_the_server(
    tmp_path, caplog
):
    """The hub's nats-server dies and, before the supervisor restarts it, something
    else takes its port and answers like a nats-server. The restarted server cannot
    listen; the hub must not count the foreign listener as its server meanwhile."""
    caplog.set_level(logging.INFO, logger="wothub.nats")
    config = hub_config(tmp_path / "home", nats_enabled=True)
    config.home.mkdir(mode=0o700)
    store = open_store(config.store_path, "leveldb")
    hub = Hub(config, store)
    fake = FakeNats()
    await hub.start()
    try:
        server = hub.nats.server
        assert hub.operations.checks()["nats-server"]
        host, port = server.host, server.port

        os.kill(server.process.pid, signal.SIGKILL)
        # Take the port before the supervisor (on this event loop) can run again: a
        # blocking loop, polling until the dead server's socket is released.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as nats-server binds
        deadline = time.monotonic() + 5
        while True:
            try:
                sock.bind((host, port))
                break
            except OSError:
                assert time.monotonic() < deadline, "the killed server kept its port"
                time.sleep(0.005)  # polling the port
        await fake.serve(sock)

        def failures() -> list[str]:
            return [r.getMessage() for r in caplog.records if "restarting" in r.getMessage()]

        await until(lambda: sum("failed" in m for m in failures()) >= 2, timeout=20)
        assert fake.greeted >= 1  # the readiness check asked it, and was not fooled
        assert server.restarts == 0
        assert not hub.operations.checks()["nats-server"]
        assert any("answers as 'wothub'" in m or "exited with" in m for m in failures())

        await fake.close()  # the port is free: the next attempt is the hub's server
        await until(lambda: server.restarts == 1, timeout=20)
        assert hub.operations.checks()["nats-server"]
        assert alive(server.process.pid)
    finally:
        await fake.close()
        await hub.stop()
        store.close()


def _listening(host: str, port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((host, port)) == 0
