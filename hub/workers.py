"""``wothub serve --workers N``: N hub processes on one machine, so that it uses its
cores (docs/cluster.md, "Workers on one machine").

The parent process runs no hub itself. It starts the machine's nats-server once, with
a subject mapping that gives each client's messages to one worker
(bindings/nats/partitions.py), then starts the N workers and supervises them:

- Each worker is ``wothub serve`` as a cluster node on that server (``nats_url``): its
  own node name (``w<i>``) for its presence lease, its own node id on its
  notifications, the store on the server's JetStream (LevelDB cannot be opened by two
  processes), and its partition of the clients' messages. Everything across workers
  then works as across cluster nodes: notifications, requests, presence, auth changes.
- The workers share the HTTPS port (SO_REUSEPORT): the kernel spreads the connections.
  With port 0 the parent picks the port first and holds it.
- A worker that exits is started again (backoff 0.5 s doubling to 5 s).
- SIGTERM (or SIGINT) to the parent stops the workers (each within its own bound,
  ``STOP_SECONDS``), then nats-server: the whole within ``STOP_SECONDS`` plus
  ``_SERVER_STOP`` and a second, or the parent exits anyway (and the workers and
  nats-server, whose parent-death signal is SIGTERM, with it).

The parent writes ``<home>/listeners.json`` (its own pid) once every worker wrote its
``listeners-w<i>.json``. A worker gets its configuration from the parent on its stdin
(``python -m hub.workers``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import pickle
import signal
import socket
import ssl
import sys
import threading
import time
from typing import Any

from auth.tokens import TokenSigner
from bindings.common.hosts import is_any_address
from bindings.mqtt.warmup import connect_once
from bindings.nats.server import (
    MQTT_CERTIFICATE_REQUIRE,
    WARMUP_USER,
    NatsKeys,
    NatsServer,
    die_with_parent,
)
from bucketstore.memory import MemoryStore
from certs import CertificateAuthority

from . import event_loop
from .bindings import mqtt_listener, nats_public_url
from .cluster_node import MAX_PAYLOAD
from .config import Config
from .listeners import read_listeners, remove_listeners, write_listeners
from .runtime import STOP_SECONDS

log = logging.getLogger("wothub.workers")

_SERVER_STOP = 3.0  # seconds for nats-server to stop after the workers
_STOP_BOUND = STOP_SECONDS + _SERVER_STOP + 1.0  # from the stop signal to the exit
_READY_WAIT = 60.0  # seconds a worker may take to start, beyond the cluster's wait
_HUB_CONNECTIONS = 5  # each worker's own NATS connections (binding, store), with room


def worker_config(config: Config, index: int, server: NatsServer, http_port: int) -> Config:
    """Worker ``index``'s configuration (from 1): a cluster node on the parent's server,
    with the ports it picked."""
    node = f"w{index}"
    ports: dict[str, Any] = {"nats_port": server.port, "http_port": http_port}
    if server.mqtt is not None:
        ports["mqtt_plain_port" if not server.mqtt.tls else "mqtt_port"] = server.mqtt.port
    return dataclasses.replace(
        config, worker=index, cluster_node=node, nats_url=server.local_url, **ports
    )


class _Worker:
    def __init__(self, index: int, config: Config) -> None:
        self.index = index
        self.config = config
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hub.workers",
            stdin=asyncio.subprocess.PIPE,
            # Dies with the parent, however the parent ends (Linux).
            preexec_fn=die_with_parent(),
        )
        assert self.process.stdin is not None
        self.process.stdin.write(pickle.dumps(self.config))
        await self.process.stdin.drain()
        self.process.stdin.close()
        log.info("worker %d started (pid %d)", self.index, self.process.pid)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def ready(self) -> bool:
        document = read_listeners(self.config.home, self.index)
        return (
            self.process is not None
            and document is not None
            and document["pid"] == self.process.pid
        )

    def signal(self, sig: int) -> None:
        if self.running:
            assert self.process is not None
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)


class Workers:
    """The parent: the machine's nats-server and the N workers on it."""

    def __init__(self, config: Config) -> None:
        self.config = config
        home = config.home
        # Made here, once, before the workers: N processes must not race to create them.
        ca = CertificateAuthority.load_or_create(home, MemoryStore().bucket("certs"))
        self.tls = ssl.create_default_context(cadata=ca.ca_cert_pem.decode())
        server_cert = ca.ensure_server_certificate(list(config.server_names))
        TokenSigner.load_or_create(home)
        keys = NatsKeys.load_or_create(home / "nats")
        assert config.nats_host is not None
        self.server = NatsServer(
            home,
            host=config.nats_host,
            port=config.nats_port,
            ws_port=config.nats_ws_port,
            cert_file=server_cert.cert_path,
            key_file=server_cert.key_path,
            ca_file=ca.ca_cert_path,
            keys=keys,
            auth_timeout=config.nats_auth_timeout,
            max_connections=config.nats_max_connections + _HUB_CONNECTIONS * config.workers,
            mqtt=mqtt_listener(config),
            max_payload=MAX_PAYLOAD,  # a TD in the store is one JetStream message
            partitions=config.workers,
        )
        self.workers: list[_Worker] = []
        self._port_holder: socket.socket | None = None
        self.stopping = asyncio.Event()

    async def run(self) -> int:
        """Start everything, supervise until the stop signal, stop; the exit code."""
        try:
            await self.server.start()
            await self._warm_up_mqtt()
            port = self._http_port()
            for index in range(1, self.config.workers + 1):
                config = worker_config(self.config, index, self.server, port)
                self.workers.append(_Worker(index, config))
            for worker in self.workers:
                await worker.start()
            if not await self._until_ready():
                return 0 if self.stopping.is_set() else 1
            self._write_listeners()
            log.info(
                "wothub started: %d workers (pids %s) on nats-server %s; HTTPS on port %d",
                len(self.workers),
                ", ".join(str(w.process.pid) for w in self.workers if w.process),
                self.server.url,
                port,
            )
            await self._supervise()
            return 0
        finally:
            await self.stop()

    def _http_port(self) -> int:
        """The workers' HTTPS port: port 0 is picked here and held (bound with
        SO_REUSEPORT, not listening) so that nothing else takes it meanwhile."""
        if self.config.http_port:
            return self.config.http_port
        host = self.config.http_host or self.config.host
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        self._port_holder = sock
        return int(sock.getsockname()[1])

    async def _warm_up_mqtt(self) -> None:
        """The first MQTT login makes nats-server create the MQTT streams; the workers
        connect as to an external server, so the parent makes it (NatsBinding.mqtt_warm_up
        in the workers then waits for the retained values)."""
        mqtt = self.server.mqtt
        if mqtt is None:
            return
        if mqtt.client_certificate == MQTT_CERTIFICATE_REQUIRE:
            log.warning(
                "MQTT with client certificates required: retained values start with the "
                "first MQTT client's login (the warm-up login has no certificate here)"
            )
            return
        host = "127.0.0.1" if is_any_address(mqtt.host) else mqtt.host
        # JetStream (which holds the MQTT streams) may not be ready yet: the login waits.
        deadline = time.monotonic() + self.config.cluster_wait
        while True:
            try:
                code = await connect_once(
                    host,
                    mqtt.port,
                    WARMUP_USER,
                    self.server.warmup_password,
                    self.tls if mqtt.tls else None,
                )
                break
            except (OSError, EOFError, TimeoutError) as exc:
                if time.monotonic() > deadline or self.stopping.is_set():
                    raise RuntimeError(f"the MQTT warm-up login failed: {exc!r}") from exc
                log.info("the MQTT warm-up login waits for JetStream: %r", exc)
        if code != 0:
            raise RuntimeError(f"the MQTT warm-up login was refused (CONNACK {code})")

    async def _until_ready(self) -> bool:
        """Whether every worker wrote its listeners file; False when one exited first
        or the stop signal came."""
        deadline = time.monotonic() + self.config.cluster_wait + _READY_WAIT
        while not all(worker.ready() for worker in self.workers):
            for worker in self.workers:
                if not worker.running:
                    log.error("worker %d exited while starting", worker.index)
                    return False
            if self.stopping.is_set():
                return False
            if time.monotonic() > deadline:
                log.error("the workers did not start in time")
                return False
            with contextlib.suppress(TimeoutError):
                # polled: a worker says it is up only by writing its file
                await asyncio.wait_for(self.stopping.wait(), 0.05)
        return True

    def _write_listeners(self) -> None:
        first = read_listeners(self.config.home, 1)
        assert first is not None
        listeners: dict[str, Any] = {"https": first["listeners"]["https"]}
        server = self.server
        listeners["nats"] = {
            "host": server.host,
            "port": server.port,
            "url": nats_public_url(self.workers[0].config),
            "local_url": server.local_url,
            "tls": True,
            "config": str(server.config_path),
        }
        if server.ws_port is not None:
            listeners["nats-wss"] = {
                "host": server.host,
                "port": server.ws_port,
                "url": server.ws_url,
                "client_certificate": True,
            }
        for name in ("mqtt", "mqtts"):
            if name in first["listeners"]:
                listeners[name] = first["listeners"][name]
        write_listeners(self.config.home, listeners)

    async def _supervise(self) -> None:
        """Until the stop signal: a worker that exits is started again."""
        backoff = {worker.index: 0.5 for worker in self.workers}
        exits = {asyncio.ensure_future(w.process.wait()): w for w in self.workers if w.process}
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            while True:
                done, _ = await asyncio.wait([stop, *exits], return_when=asyncio.FIRST_COMPLETED)
                if stop in done:
                    return
                for finished in done:
                    worker = exits.pop(finished)
                    delay = backoff[worker.index]
                    log.error(
                        "worker %d exited with %s; starting it again in %.1f s",
                        worker.index,
                        finished.result(),
                        delay,
                    )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.stopping.wait(), delay)
                    if self.stopping.is_set():
                        return
                    backoff[worker.index] = min(delay * 2, 5.0)
                    await worker.start()
                    assert worker.process is not None
                    exits[asyncio.ensure_future(worker.process.wait())] = worker
        finally:
            for task in (stop, *exits):
                task.cancel()

    async def stop(self) -> None:
        """The workers (each stops within its own bound, else it is killed), then
        nats-server."""
        remove_listeners(self.config.home)
        for worker in self.workers:
            worker.signal(signal.SIGTERM)
        running = [w.process.wait() for w in self.workers if w.running and w.process]
        if running:
            _, pending = await asyncio.wait(
                [asyncio.ensure_future(wait) for wait in running], timeout=STOP_SECONDS
            )
            if pending:
                log.warning("%d worker(s) did not stop in time; killing them", len(pending))
                for worker in self.workers:
                    worker.signal(signal.SIGKILL)
                await asyncio.wait(pending, timeout=1.0)
        self.server.stop_supervising()
        with contextlib.suppress(Exception):
            await self.server.stop(_SERVER_STOP)
        if self._port_holder is not None:
            self._port_holder.close()


def serve_workers(config: Config) -> int:
    """Run the workers until SIGINT or SIGTERM; return the process exit code."""
    config.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    config.home.chmod(0o700)
    try:
        loop = event_loop.chosen(config.event_loop)
    except RuntimeError as exc:
        log.error("cannot start: %s", exc)
        return 1
    signalled: list[float] = []
    try:
        code = event_loop.run(_run(config, signalled), loop)
    except (OSError, RuntimeError, TimeoutError) as exc:  # a port taken, nats-server
        log.error("cannot start: %s", exc or repr(exc))
        return 1
    if signalled:
        log.info("wothub stopped, %.1f s after the signal", time.monotonic() - signalled[0])
    return code


async def _run(config: Config, signalled: list[float]) -> int:
    workers = Workers(config)
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        if not signalled:
            signalled.append(time.monotonic())
            log.info("received %s, stopping the workers", sig.name)
            # The last resort of the stop bound: exit even if stopping hangs.
            timer = threading.Timer(_STOP_BOUND, os._exit, (1,))
            timer.daemon = True
            timer.start()
        workers.stopping.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    return await workers.run()


def _worker_main() -> int:
    """A worker: its configuration from the parent on stdin, then ``wothub serve``."""
    config: Config = pickle.loads(sys.stdin.buffer.read())
    from .logs import setup_logging
    from .runtime import serve

    setup_logging(config.log_level, config.log_format)
    for handler in logging.getLogger().handlers:  # which worker says it
        handler.addFilter(_WorkerName(config.worker))
    return serve(config)


class _WorkerName(logging.Filter):
    def __init__(self, worker: int) -> None:
        super().__init__()
        self.suffix = f"[w{worker}]"

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.endswith(self.suffix):
            record.name += self.suffix
        return True


if __name__ == "__main__":
    sys.exit(_worker_main())
