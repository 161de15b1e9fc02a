"""Start the hub's parts, wait for a stop signal, stop them: the listeners together,
then the router, then the store.

Stopping is bounded: from SIGTERM (or SIGINT) to the process's exit takes at most
``STOP_SECONDS`` whatever the load. Each step has its own time limit and is cancelled
when it runs over (logged); should the whole hang anyway, the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from auth.authorizer import RoleAuthorizer
from auth.service import AuthService
from bindings.common.asgi_server import HttpServer
from bindings.http.app import HttpBinding
from bindings.mqtt import MqttBinding
from bindings.nats import NatsBinding, ejection
from bindings.nats.server import NatsServer
from bindings.websocket.protocol import WebSocketProtocol
from bindings.websocket.server import WebSocketBinding
from bucketstore import BucketStore, open_store
from certs import CertificateAuthority
from certs.issued import IssuedCertificate
from core.router import Router
from digitwin.core import TwinConfig

from . import event_loop
from .bindings import build_bindings, registration
from .cluster_node import ClusterNode
from .config import Config
from .groups_thing import groups_thing
from .history_repair import HistoryRepairs
from .hub_things import authn_thing, certs_thing, clients_thing, history_thing, restore_thing
from .listeners import remove_listeners, write_listeners
from .loop_lag import LoopLag
from .metrics import HealthCollector, HistoryCollector, HubMetrics
from .node_leases import NodeLeases
from .operations import CountRefusals, Operations
from .queries_thing import queries_thing

log = logging.getLogger("wothub")
_ANY_ADDRESS = ("", "0.0.0.0", "::")

STOP_SECONDS = 10.0  # from the stop signal to the process's exit, at most
# Time limits of the stop steps: the listeners stop together, then the router; what is
# left of STOP_SECONDS is for cancelling the remaining tasks and closing the store.
_LISTENERS_STOP, _ROUTER_STOP = 4.0, 2.0
_HTTP_GRACE = 3.0  # requests in progress may finish within it, then they are cancelled


class Hub:
    """The hub's parts composed on one store and home; ``start`` opens the listeners."""

    def __init__(
        self, config: Config, store: BucketStore, node_server: NatsServer | None = None
    ) -> None:
        self.config = config
        self.store = store
        self.node_server = node_server  # a cluster node's, running before the hub is built
        config.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.auth = AuthService(store, config.home, config.auth_config())
        self.ca = CertificateAuthority.load_or_create(config.home, store.bucket("certs"))
        self.server_certificate = self.ca.ensure_server_certificate(list(config.server_names))
        self.router = Router(
            store,
            RoleAuthorizer(self.auth.accounts, self.auth.sessions),
            twin_config=TwinConfig(history=config.history_config()),
            flush_interval=config.flush_interval,
            log_size=config.notification_log_size,
            limits=config.limits(),
        )
        self.twin = self.router.twin
        # A cluster node: its agents' presence is shared with the others through the
        # store, and the nodes' leases say which others are alive.
        self.leases: NodeLeases | None = None
        self.history_repairs = HistoryRepairs(self.twin.history)
        if config.cluster_node is not None:
            self.twin.agent_presence.node = config.cluster_node
            self.leases = NodeLeases(
                store.bucket("nodes"), config.cluster_node, self._lease_record, self._node_gone
            )
            self.twin.agent_presence.node_alive = self.leases.alive
        node = (config.cluster_name, config.cluster_node) if config.cluster_node else None
        self.metrics = HubMetrics(self.router.stats, node)
        # Credentials refused on any binding (HTTP 401 answers are counted apart).
        self.auth.on_refused = lambda: self.metrics.refused(401, "invalid_credentials")
        self.auth.on_client_changed = self._end_client_soon
        self.loop_lag = LoopLag()
        self.metrics.registry.register(HealthCollector(self.loop_lag, self.auth.hash_pool))
        self.metrics.registry.register(HistoryCollector(self.twin.history))
        self.started = False  # all listeners up (GET /ready)
        for service in (
            authn_thing(self.auth),
            clients_thing(self.auth, self.ca),
            certs_thing(self.ca, self.auth),
            history_thing(self.twin),
            restore_thing(self.twin),
            queries_thing(self.router),
            groups_thing(self.router, lambda: self.http.forms),
        ):
            self.router.add_service(service)
        # By name, in registration order (hub/bindings.py); the four built in are kept
        # as attributes too, MQTT and NATS None when turned off.
        self.bindings = build_bindings(self)
        self.http: HttpBinding = self.bindings["http"]
        self.websocket: WebSocketBinding = self.bindings["websocket"]
        self.mqtt: MqttBinding | None = self.bindings.get("mqtt")
        self.nats: NatsBinding | None = self.bindings.get("nats")
        if self.leases is not None and self.nats is not None:
            # Which hub handles the agents at each nats-server follows the leases.
            assert config.cluster_node is not None
            self.nats.set_cluster(config.cluster_node, self.leases.hubs)
            self.leases.on_members = self.nats.hubs_changed
        # nats-server checks credentials at login only: a session ended by logout or a
        # revoked certificate closes the NATS connections that logged in with it.
        self.auth.on_session_ended = self._end_session_soon
        self.ca.on_revoked = self._end_certificate_soon
        self.operations = Operations(self)  # /health, /ready, /metrics, backups
        served = [b for n, b in self.bindings.items() if n != "http" and hasattr(b, "routes")]
        app = self.http.app([*(r for b in served for r in b.routes()), *self.operations.routes()])
        self.http_server = HttpServer(
            CountRefusals(app, self.metrics),
            config.http_host,
            config.http_port,
            ssl_context=self.ca.ssl_context_for_server(),
            server_cert=self.server_certificate.cert_path,
            # uvicorn's, plus writing the frames ready at once together.
            ws=WebSocketProtocol,
            # Frames up to twice the limit get an error response naming it; larger
            # ones are cut off by the server (close code 1009).
            ws_max_size=2 * config.max_body_bytes,
            ws_ping_interval=20.0,
            ws_ping_timeout=20.0,
            shutdown_timeout=_HTTP_GRACE,
            read_timeout=config.http_read_timeout,
            timeout_keep_alive=config.http_keep_alive_timeout,
            # uvicorn answers 503 once this many are open, the asking one included.
            limit_concurrency=config.http_max_connections + 1,
            # Workers share the port; the kernel spreads the connections (hub/workers.py).
            reuse_port=config.worker > 0,
        )

    def first_run(self) -> None:
        """Create the admin client if there is none, telling where its password is."""
        password_file = self.auth.ensure_admin()
        if password_file is not None:
            log.warning(
                "first run: created client 'admin'; its password is in %s (readable by "
                "you only). Log in, change it, then delete that file.",
                password_file,
            )

    @property
    def base_url(self) -> str:
        """Where consumers reach the HTTPS API (the forms in twin TDs point there)."""
        if self.config.public_url:
            return self.config.public_url
        host = self.config.http_host
        if host in _ANY_ADDRESS:
            host = socket.gethostname()
        return f"https://{host}:{self.http_server.port}"

    def _node_gone(self, node: str, seen: float | None) -> None:
        """Another node died: its agents are offline. A managed node's nats-server (named
        after it) died with it, and its connections with it; on a NATS cluster someone
        else runs, the server and the connections stay (another hub takes its agents,
        NatsBinding.hubs_changed)."""
        if self.nats is not None and self.config.nats_url is None:
            self.nats.server_gone(node)
        self.twin.node_gone(node, seen)
        # Killed (a stopped node removed its lease: no time): the rollups it had not
        # published are made again from the values, by one node.
        if seen is not None and self.leases is not None and self.leases.first_alive():
            self.history_repairs.after_death(node, seen)

    def _lease_record(self) -> dict[str, Any]:
        """What this node's lease says of it (``wothub cluster status``)."""
        return {
            "url": self.base_url if self.started else None,
            "agents": len(self.twin.agent_presence.local),
            "connections": self.router.connections(),
            "server": self.nats.server_name if self.nats is not None else None,
        }

    def _end_client_soon(self, client_id: str, reason: str) -> None:
        """Close a changed client's connections soon, not at once: the admin's request
        that changed it is answered first (it may be the client itself)."""
        _soon(self.router.end_client, client_id, reason)
        if self.nats is not None:
            _soon(self.nats.eject, ejection.of_client(client_id), f"{client_id}: {reason}")

    def _end_session_soon(self, client_id: str, session_id: str) -> None:
        if self.nats is not None:
            _soon(self.nats.eject, ejection.of_session(session_id), f"{client_id} logged out")

    def _end_certificate_soon(self, issued: IssuedCertificate) -> None:
        if self.nats is not None:
            reason = f"certificate {issued.serial:x} of {issued.client_id} revoked"
            _soon(self.nats.eject, ejection.of_certificate(issued.serial), reason)

    def _listening_bindings(self) -> list[tuple[str, Any, tuple[str, int]]]:
        """(name, binding, host and port) of each binding with listeners of its own (not
        served by the HTTPS server), in registration order."""
        listening = []
        for name, binding in self.bindings.items():
            address = registration(name).address
            if address is not None:
                listening.append((name, binding, address(self.config)))
        return listening

    async def start(self) -> None:
        self.loop_lag.start()
        # A shared store (cluster mode) reports what other nodes change; LevelDB never.
        self.auth.follow_other_nodes(asyncio.get_running_loop())
        self.ca.follow_other_nodes(asyncio.get_running_loop())
        self.twin.follow_other_nodes(asyncio.get_running_loop())
        if self.config.cluster_mode:  # it changes how requests are delivered
            self.router.follow_other_nodes(asyncio.get_running_loop())
        if self.leases is not None:
            # Connections this node had before it restarted are gone, whatever the
            # store still says; then the lease tells the others it is alive. A lease
            # still there: it was killed, and the rollups it had not published are made
            # again (the others may not have seen it gone, if it came back within TTL).
            self.twin.node_gone(self.leases.node)
            crashed = self.leases.left_over()
            if crashed is not None:
                self.history_repairs.after_death(self.leases.node, crashed)
            self.leases.start(asyncio.get_running_loop())
        await self.router.start()
        with _listening("HTTPS", self.config.http_host, self.config.http_port):
            await self.http_server.start()
        self.http.set_base_url(self.base_url)
        self.websocket.forms.set_base_url(self.base_url)
        self.twin.add_form_provider(self.http.forms)
        self.twin.add_form_provider(self.websocket.forms)
        listeners: dict[str, dict] = {
            "https": {
                "host": self.http_server.addresses[0][0],
                "port": self.http_server.port,
                "url": self.base_url,
                "local_url": self.http_server.url,
            }
        }
        for name, bus, (host, port) in self._listening_bindings():
            with _listening(name.upper(), host, port):
                await bus.start()
            self.twin.add_form_provider(bus.forms)
            listeners.update(bus.listeners())
            log.info("%s on %s", bus.forms.name.upper(), bus.listeners())
        write_listeners(self.config.home, listeners, worker=self.config.worker)
        if self.leases is not None and self.nats is not None:
            self.leases.renew()  # the others learn this node's nats-server at once
            await self.nats.claim_agents()
        self.started = True
        log.info(
            "HTTPS (directory, WoT HTTP profile, SSE) on %s, WebSocket on %s",
            self.http_server.url,
            self.websocket.forms.url,
        )

    def stopping(self) -> None:
        """The stop signal came: /ready says so at once, and an exit of nats-server from
        now on is part of stopping, not a crash to restart."""
        self.started = False
        if self.nats is not None and self.nats.server is not None:
            self.nats.server.stop_supervising()

    async def stop(self) -> None:
        """Every step within its time limit (docs/operations.md, "Shutdown")."""
        self.stopping()
        try:
            self.http.context.close_streams()  # or open streams hold the server up
            self.websocket.close_all()
            steps = [_bounded("HTTPS", self.http_server.stop(), _LISTENERS_STOP)]
            for name, bus, _ in reversed(self._listening_bindings()):
                steps.append(_bounded(name.upper(), bus.stop(), _LISTENERS_STOP))
            await asyncio.gather(*steps)
        finally:
            remove_listeners(self.config.home, self.config.worker)
            if self.leases is not None:  # after the listeners: its agents went offline
                await _bounded("the node lease", self.leases.stop(), _ROUTER_STOP)
            await _bounded("the router", self.router.stop(), _ROUTER_STOP)
            await _bounded("the history repairs", self.history_repairs.stop(), _ROUTER_STOP)
            self.twin.close()
            self.auth.hash_pool.close()
            await self.loop_lag.stop()


async def _bounded(name: str, step: Awaitable[None], seconds: float) -> None:
    """One stop step, cancelled after ``seconds`` so that the next ones still run."""
    try:
        async with asyncio.timeout(seconds):
            await step
    except TimeoutError:
        log.warning("stopping %s took over %.0f s; cancelled it", name, seconds)
    except Exception:
        log.exception("stopping %s failed", name)


def _reach(config: Config) -> str:
    """Who can connect, for the start line: loopback is the default until opened."""
    if config.only_loopback:
        return (
            "only this machine can connect (host 127.0.0.1, the default): set host = "
            '"0.0.0.0" in wothub.toml (or WOTHUB_HOST, --host) to let devices on the network in'
        )
    return "devices on the network can connect (TLS and authentication on every listener)"


class CannotListen(OSError):
    """A listener could not bind its address (taken, or not this machine's)."""


def _soon(function: Any, *args: Any) -> None:
    """Call soon, not at once: the admin's request that caused it is answered first (it
    may be the client itself); at once when no loop runs."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        function(*args)
    else:
        loop.call_soon(function, *args)


@contextlib.contextmanager
def _listening(name: str, host: str, port: int) -> Iterator[None]:
    """Names the listener, its address and its port in a bind error."""
    try:
        yield
    except CannotListen:
        raise
    except OSError as exc:
        name = getattr(exc, "listener", None) or name  # nats-server's MQTT listener
        where = exc.filename or (f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise CannotListen(f"the {name} listener cannot listen on {where}: {reason}") from exc


class _StopDeadline:
    """The last resort of the stop bound: once the stop signal came, the process exits
    ``STOP_SECONDS`` later even if stopping hangs (a task that ignores cancellation, a
    thread that does not end)."""

    def __init__(self) -> None:
        self.signalled: float | None = None  # time.monotonic() of the stop signal
        self._timer: threading.Timer | None = None

    def start(self) -> None:
        if self._timer is not None:
            return
        self.signalled = time.monotonic()
        self._timer = threading.Timer(STOP_SECONDS - 0.5, self._exit_now)
        self._timer.daemon = True
        self._timer.start()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    @staticmethod
    def _exit_now() -> None:
        log.error("wothub did not stop within %.0f s; exiting now", STOP_SECONDS)
        for handler in logging.getLogger().handlers:
            with contextlib.suppress(Exception):
                handler.flush()
        os._exit(1)


async def _run_until_signal(
    hub: Hub, deadline: _StopDeadline, started: Callable[[], None] | None = None
) -> None:
    loop = asyncio.get_running_loop()
    stopped: asyncio.Future[str] = loop.create_future()

    def on_signal(sig: signal.Signals) -> None:
        deadline.start()
        hub.stopping()
        if not stopped.done():
            stopped.set_result(sig.name)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    starting = asyncio.create_task(hub.start(), name="hub start")
    try:
        await asyncio.wait((starting, stopped), return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():  # a signal while starting: stop starting
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
        else:
            starting.result()  # why it could not start, if it could not
            if started is not None:
                started()
            settle_heap()
            _log_started(hub)
        log.info("received %s, stopping", await stopped)
    finally:
        await hub.stop()


def settle_heap() -> None:
    """Keep the cyclic garbage collector's pauses short under load.

    Everything made while starting (modules, schemas, the CA, caches) lives as long as
    the hub: frozen, the collector never walks it again. And collections of the young
    generation start after 10,000 new objects rather than 700: a storm of connections
    (each with TLS state, tasks and a session) otherwise triggered full collections that
    held the event loop for tenths of a second (measured with py-spy during 500
    reconnects; tests/reliability/test_logins_under_load.py)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


def _store_place(config: Config) -> str:
    if config.cluster_mode:
        name, node = config.cluster_name, config.cluster_node
        return f"of cluster {name} ({config.replicas} replicas), node {node}"
    return f"at {config.store_path}"


def _log_started(hub: Hub) -> None:
    # Logged only once the handlers are in place, so "started" means "stoppable".
    log.info(
        "wothub started: %s store %s; CA and server certificate in %s; "
        "listeners in %s; %s; press Ctrl-C to stop",
        hub.config.store_name,
        _store_place(hub.config),
        hub.config.home / "certs",
        hub.config.home / "listeners.json",
        _reach(hub.config),
    )
    if not hub.config.public_url:
        log.info(
            "twin TDs and Location headers point at %s; if clients elsewhere reach the "
            "hub by another name or address, set public_url (WOTHUB_PUBLIC_URL, "
            "--public-url) and add the name to server_names",
            hub.base_url,
        )


def serve(config: Config) -> int:
    """Run until SIGINT or SIGTERM; return the process exit code."""
    # The home holds the CA and keys: private before anything is created in it.
    config.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    config.home.chmod(0o700)
    try:
        loop = event_loop.chosen(config.event_loop)
    except RuntimeError as exc:  # uvloop asked for and not installed
        log.error("cannot start: %s", exc)
        return 1
    if config.workers > 1 and not config.worker:
        from .workers import serve_workers

        return serve_workers(config)
    deadline = _StopDeadline()
    try:
        if config.cluster_mode:
            event_loop.run(_serve_node(config, deadline), loop)
        else:
            with open_store(config.store_path, config.store_backend) as store:
                hub = Hub(config, store)
                hub.first_run()
                event_loop.run(_run_until_signal(hub, deadline), loop)
    except OSError as exc:  # e.g. the port is taken
        log.error(
            "cannot start: %s. The hub's home %s (CA, keys, admin password) is kept and "
            "used again at the next start",
            exc,
            config.home,
        )
        return 1
    finally:
        deadline.cancel()
    if deadline.signalled is None:
        log.info("wothub stopped")
    else:
        log.info("wothub stopped, %.1f s after the signal", time.monotonic() - deadline.signalled)
    return 0


async def _serve_node(config: Config, deadline: _StopDeadline) -> None:
    """A cluster node: its nats-server joins the cluster, then the store opens on the
    cluster's JetStream, then the hub runs on both (hub/cluster_node.py). Stopped in
    the reverse order: the hub, the store (the last values written), the server."""
    node = ClusterNode(config)
    await node.start()
    try:
        store = await node.open_store()
        # Until it serves, the node's writes wait for streams' leaders as long as for
        # the cluster: after a restart, the other streams may elect theirs seconds after
        # the first bucket opened (a node that gave up would just be restarted).
        store.write_wait = config.cluster_wait

        def serving() -> None:
            store.write_wait = store.timeout

        try:
            await asyncio.to_thread(node.adopt_single_hub, store)
            hub = Hub(config, store, node.server)
            hub.first_run()
            await _run_until_signal(hub, deadline, serving)
        finally:
            store.close()
    finally:
        await node.stop()
