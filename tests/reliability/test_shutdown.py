"""Stopping is bounded: ``wothub serve`` exits within 10 s of SIGTERM, or of a Ctrl-C at
its terminal (SIGINT to its whole process group), with status 0, while an agent reports
over NATS and consumers read over HTTPS; and its nats-server is not "restarted" on the
way out."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import ssl
import time
from pathlib import Path

import aiohttp
import pytest

from bindings.http.paths import encode
from clients.http import HttpConsumer
from clients.nats import NatsAgent
from tests.support.running import PASSWORD
from tests.support.served import Process, serve_env, wait_listeners
from tests.support.tds import thing_td
from tests.waiting import until

pytestmark = pytest.mark.timeout(120)

STOP_BOUND = 10.0  # seconds from the signal to the exit (docs/operations.md)
THING = "urn:dev:ops:shutdown-meter"
TD = thing_td(
    THING,
    "Meter",
    properties={"level": {"type": "integer", "readOnly": True, "forms": [{"href": "x"}]}},
)
REPORTS = 50_000  # bounded load: at most this many reports, and 60 s
READERS, READS = 8, 5_000  # HTTPS readers, reads each (at most)


class Load:
    """An agent reporting over NATS and consumers reading over HTTPS, each loop bounded
    in count and time; they end by themselves once the hub is gone."""

    def __init__(self, home: Path, listeners: dict) -> None:
        self.home = home
        self.url = listeners["https"]["local_url"]
        self.nats_url = listeners["nats"]["local_url"]
        self.ca = (home / "certs" / "ca.pem").read_bytes()
        self.reported = 0
        self.read = 0
        self.tasks: list[asyncio.Task] = []
        self.agent: NatsAgent | None = None
        self.end = time.monotonic() + 60

    async def start(self) -> None:
        password = (self.home / "admin.password").read_text().strip()
        async with HttpConsumer(self.url, ca=self.ca) as admin:
            token = (await admin.login("admin", password))["token"]
            client = {"clientID": "meter", "kind": "agent", "role": "agent", "password": PASSWORD}
            await admin.invoke_service("urn:wothub:clients", "addClient", client)
        self.agent = await NatsAgent.connect(
            self.nats_url, "meter", password=PASSWORD, ca_pem=self.ca
        )
        await self.agent.register(TD)
        self.tasks.append(asyncio.create_task(self._report()))
        self.tasks += [asyncio.create_task(self._read(token)) for _ in range(READERS)]

    async def _report(self) -> None:
        assert self.agent is not None
        with contextlib.suppress(Exception):
            for n in range(REPORTS):
                if time.monotonic() > self.end:
                    return
                await self.agent.report_property(THING, "level", n)
                self.reported += 1
                if n % 100 == 0:
                    await asyncio.sleep(0.005)  # paces the load, and lets the readers run

    async def _read(self, token: str) -> None:
        context = ssl.create_default_context(cadata=self.ca.decode())
        path = f"/things/{encode(THING)}/properties/level"
        async with aiohttp.ClientSession(
            self.url,
            connector=aiohttp.TCPConnector(ssl=context),
            headers={"Authorization": f"Bearer {token}"},
            timeout=aiohttp.ClientTimeout(total=5),
        ) as session:
            for _ in range(READS):
                if time.monotonic() > self.end:
                    return
                try:
                    async with session.get(path) as response:
                        await response.read()
                        if response.status == 200:
                            self.read += 1
                except (aiohttp.ClientError, TimeoutError):
                    return  # the hub went away

    async def close(self) -> None:
        self.end = 0.0
        with contextlib.suppress(Exception):
            async with asyncio.timeout(15):
                await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.agent is not None:
            await self.agent.close()


async def exit_within(process: Process, seconds: float) -> tuple[int, float]:
    """The exit code and the seconds it took, from now."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(seconds):
            code = await process.process.wait()
    except TimeoutError:
        pytest.fail(f"still running {seconds} s after the signal:\n{process.output}")
    return code, time.monotonic() - started


async def signal_hub(process: Process, how: str) -> None:
    if how == "SIGTERM":  # what systemd, docker stop and kill send
        process.process.send_signal(signal.SIGTERM)
    else:  # Ctrl-C at a terminal: SIGINT to the foreground process group
        os.killpg(process.process.pid, signal.SIGINT)


@pytest.mark.parametrize("how", ["SIGTERM", "Ctrl-C"])
async def test_a_stop_signal_under_load_exits_within_10_s_with_status_0(tmp_path, how):
    """Ctrl-C signals nats-server as well, unless it runs in a session of its own: then
    it died under the hub's feet while the hub stopped, and was "restarted"."""
    home = tmp_path / "home"
    hub = Process("wothub serve")
    # A process group of its own, as a shell gives a command it runs.
    await hub.start("serve", env=serve_env(WOTHUB_HOME=str(home)), start_new_session=True)
    load = None
    try:
        listeners = await wait_listeners(home, hub)
        nats_pid = int((home / "nats" / "nats-server.pid").read_text())
        load = Load(home, listeners)
        await load.start()
        await until(lambda: load.reported >= 2_000 and load.read >= 100, timeout=30)

        await signal_hub(hub, how)
        code, took = await exit_within(hub, STOP_BOUND)
        print(f"{how}: stopped in {took:.1f} s after {load.reported} reports, {load.read} reads")
        assert code == 0, hub.output
        await hub.wait_for("wothub stopped", 5)
        signal_name = "SIGTERM" if how == "SIGTERM" else "SIGINT"
        assert f"received {signal_name}, stopping" in hub.output
        for word in ("restarting", "nats-server exited"):
            assert word not in hub.output, hub.output
        await until(lambda: _gone(nats_pid), 5)
    finally:
        if load is not None:
            await load.close()
        if hub.process.returncode is None:
            await hub.stop()


def _gone(pid: int) -> bool:
    """No such process, or dead and not yet reaped by whoever adopted it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return True
    return stat.rsplit(b")", 1)[1].split()[0] == b"Z"


async def test_a_request_that_never_ends_does_not_hold_the_stop_up(tmp_path):
    """A client that sends half a request body and then nothing: the HTTPS server gives
    requests in progress a grace period, then cancels them; the exit stays in bound."""
    home = tmp_path / "home"
    hub = Process("wothub serve")
    await hub.start("serve", env=serve_env(WOTHUB_HOME=str(home)))
    writer = None
    try:
        listeners = await wait_listeners(home, hub)
        https = listeners["https"]
        context = ssl.create_default_context(cafile=str(home / "certs" / "ca.pem"))
        _, writer = await asyncio.open_connection(
            https["host"], https["port"], ssl=context, server_hostname="localhost"
        )
        writer.write(
            b"POST /authn/login HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
            b'{"clientID": "admin", '
        )
        await writer.drain()
        # A barrier: once the hub answers a request sent after it, it has taken in the
        # headers of the first (one event loop) and waits for the rest of its body.
        async with HttpConsumer(
            https["local_url"], ca=(home / "certs" / "ca.pem").read_bytes()
        ) as other:
            await other.login("admin", (home / "admin.password").read_text().strip())

        hub.process.send_signal(signal.SIGTERM)
        code, took = await exit_within(hub, STOP_BOUND)
        print(f"stopped in {took:.1f} s with a request in progress")
        assert code == 0, hub.output
    finally:
        if writer is not None:
            writer.close()
        if hub.process.returncode is None:
            await hub.stop()
