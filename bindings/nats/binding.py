"""The NATS binding: devices and consumers on NATS, every message through the router.

The hub keeps three NATS connections (docs/nats.md): the auth callout responder (account
AUTH), the binding itself (account APP: it subscribes in a queue group to
``wot.agent.*.>`` and ``wot.client.*.req.*``, publishes requests to agents, responses to
consumers and twin notifications on ``wot.twin...``: the raw value, the rest of the
envelope in headers, vocabulary/twin_wire.py), and a system-account user that
follows ``$SYS.ACCOUNT.APP.CONNECT`` / ``DISCONNECT``. A hub worker (``wothub serve
--workers``) subscribes to its partition of the clients' subjects instead, as the
server's subject mapping gives them out (bindings/nats/partitions.py).

A NATS message says nothing about its sender except its subject, which the server only
lets that client publish to (the permissions the callout granted): the client id is taken
from the subject; the envelope may leave out what the subject implies and must agree
with it (vocabulary/channels.py, as on MQTT); the receive pipeline shared with the other
bindings parses it and the router authorizes it as on every binding.

Presence: an agent is online from its first message (``wot.agent.{id}.hello``, sent after
it subscribed to its request subject, or any report) until its last NATS connection
closes; then requests queued for it wait, and are delivered on its next hello. An MQTT
agent is online from its CONNECT event; what is sent to it waits for its hello (its
subscription exists then) or ``mqtt_hello_wait``, whichever comes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import nats.js.errors
import orjson
from nats.aio.client import Client as NatsConnection
from nats.aio.msg import Msg

from auth.roles import AGENT
from bindings.common.encoded import EncodeCache
from bindings.common.hosts import is_any_address
from bindings.common.outbox import QUIET, pump
from bindings.common.receive import Receiver, Reply
from bindings.mqtt import bus as mqtt_bus
from bindings.mqtt.restore import restore
from bindings.mqtt.retained import RetainedWriter
from bindings.mqtt.warmup import connect_once
from certs.authority import parse_certificate
from core.connection import OVERFLOW, Connection
from core.contract import Core
from core.subscriptions import ACTION, DIRECTORY, EVENT, PRESENCE, PROPERTY, STATE
from vocabulary import operations as ops
from vocabulary import twin_wire
from vocabulary.channels import HUB
from vocabulary.envelope import REQUEST, Message, error_frame
from vocabulary.identity import Client
from vocabulary.nats_close import close_connection
from vocabulary.nats_confirm import confirmed
from vocabulary.problems import Problem

from . import partitions, subjects
from .agent_routing import EXPECT, FOLLOW, LOGINS, AgentRouting
from .callout import AUTH_SUBJECT, AuthCallout, Login
from .ejection import KICK_TIMEOUT, Logins, kick, open_connections
from .forms import NatsForms
from .header_publish import HeaderPublisher
from .other_nodes import OtherNodes
from .server import (
    APP_ACCOUNT,
    MQTT_CERTIFICATE_REQUIRE,
    WARMUP_USER,
    MqttListener,
    NatsKeys,
    NatsServer,
)

log = logging.getLogger("wothub.nats")

QUEUE = "wothub"
# How long an MQTT agent's requests wait for its hello after its CONNECT (docs/mqtt.md).
MQTT_HELLO_WAIT = 1.0
# Permissions for MQTT QoS 1 come implicit from 2.12.3 on; retained values need 2.12.
MIN_SERVER_VERSION = (2, 12, 3)


@dataclass
class _Peer:
    """One client's router connection (shared by all its NATS connections)."""

    connection: Connection
    writer: asyncio.Task[None] | None = None
    nats_ids: set[tuple[str, int]] = field(default_factory=set)
    mqtt: bool = False  # an MQTT client: no reply inboxes, QoS 1 requests
    held: asyncio.Event | None = None  # an MQTT agent's outbox, until its hello


class NatsBinding:
    def __init__(
        self,
        router: Core,
        auth: Any,
        ca: Any,
        home: Path,
        *,
        external_url: str | None = None,
        host: str = "127.0.0.1",
        port: int = 4222,
        ws_port: int | None = 4223,
        public_url: str | None = None,
        binary: str | None = None,
        tls: ssl.SSLContext | None = None,
        max_message_bytes: int = 1 << 20,
        auth_timeout: float = 10.0,
        max_connections: int | None = 1000,
        mqtt: MqttListener | None = None,
        server: NatsServer | None = None,
        node_id: str | None = None,
        follow_other_nodes: bool = False,
        route_agents: bool = False,
        partition: tuple[int, int] | None = None,
    ) -> None:
        """``node_id`` names this hub process on its twin notifications (header
        ``Wothub-Node``; new on every start unless given). ``follow_other_nodes`` (cluster
        mode, bindings/nats/other_nodes.py): hand the other nodes' notifications to this
        node's subscribers; may be set until ``start``. ``partition``: (index, count) of
        this hub among the workers of one machine (``--workers``): it takes the messages
        of the clients of its partition only (bindings/nats/partitions.py)."""
        self.router = router
        self.auth = auth
        self.ca = ca
        self.home = Path(home)
        self.external_url = external_url
        self.host, self.port, self.ws_port = host, port, ws_port
        self.public_url = public_url
        self.binary = binary
        self.max_message_bytes = max_message_bytes
        self.auth_timeout = auth_timeout  # the managed nats-server's limits
        self.max_connections = max_connections
        self.mqtt = mqtt  # the managed server's MQTT listener (external: MQTT on if set)
        self.mqtt_hello_wait = MQTT_HELLO_WAIT
        self.node_id = node_id or f"wothub-{secrets.token_hex(6)}"
        self.follow_other_nodes = follow_other_nodes
        self.partition = partition
        self._other_nodes: OtherNodes | None = None
        # A cluster node (bindings/nats/agent_routing.py): every node hears every
        # agent's messages and handles those of the agents connected at its own server.
        self.route_agents = route_agents
        self.routing: AgentRouting | None = None
        self.cluster_node: str | None = None  # set_cluster: this hub's node name
        self._hubs: Callable[[], dict[str, str]] | None = None
        # The agents this node subscribes to (their newest connection is here), and
        # when it last made ready for a login of each (loop time).
        self._agent_subs: dict[str, Any] = {}
        self._expected: dict[str, float] = {}
        self._background: set[asyncio.Future[Any]] = set()
        self.keys = NatsKeys.load_or_create(self.home / "nats")
        self.tls = tls or ssl.create_default_context(cadata=ca.ca_cert_pem.decode())
        self.callout = AuthCallout(
            auth, ca.verify_client_certificate, self.keys.issuer, self.keys.xkey
        )
        self.callout.on_login = self._on_login
        if partition is not None:  # permissions for the clients' mapped subjects
            self.callout.partitions = partition[1]
        self.forms = NatsForms()
        # A server given here runs already (a cluster node's, started before the store):
        # not this binding's to start or stop. Otherwise start() starts its own.
        self.server: NatsServer | None = server
        self._owns_server = False
        self.url = external_url or ""
        self._callout_nc: NatsConnection | None = None
        self._nc: NatsConnection | None = None
        self._sys_nc: NatsConnection | None = None
        self._peers: dict[str, _Peer] = {}
        # The open NATS connections of this hub's clients, from the server's CONNECT and
        # DISCONNECT events: with workers, another worker's callout saw their logins.
        self._open_by_client: dict[str, set[tuple[str, int]]] = {}
        self._logins = Logins()  # which NATS connection is whose, from the callout
        self._kicks: set[asyncio.Task[int]] = set()
        self._twin: Connection | None = None
        self._twin_writer: asyncio.Task[None] | None = None
        self._retained: RetainedWriter | None = None  # with MQTT on
        self._restoring: asyncio.Task[None] | None = None
        self._logins_under_way: set[asyncio.Task[None]] = set()
        self._encoded = EncodeCache()
        self.receiver = Receiver(router, max_message_bytes, log)

    @property
    def refused(self) -> int:
        """Messages refused as malformed or mismatched (for tests and stats)."""
        return self.receiver.refused

    # -- life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        if self.server is not None and not self._owns_server:
            self.mqtt = self.server.mqtt
            self.url = self.server.local_url
        elif self.external_url is None:
            self._owns_server = True
            self.server = NatsServer(
                self.home,
                host=self.host,
                port=self.port,
                ws_port=self.ws_port,
                cert_file=self.ca.server_cert_path,
                key_file=self.ca.server_key_path,
                ca_file=self.ca.ca_cert_path,
                keys=self.keys,
                binary=self.binary,
                auth_timeout=self.auth_timeout,
                max_connections=self.max_connections,
                mqtt=self.mqtt,
            )
            await self.server.start()
            self.mqtt = self.server.mqtt  # its port, if it was picked
            self.url = self.server.local_url
        try:
            await self._connect()
        except BaseException:
            await self.stop()
            raise
        self.forms.set_url(self.public_url or (self.server.url if self.server else self.url))
        if self.follow_other_nodes:
            self._other_nodes = OtherNodes(self.router, self.node_id)
            assert self._nc is not None
            await self._other_nodes.follow(self._nc)
        self._start_twin_publisher()
        log.info("NATS binding on %s", self.url)

    async def _connect(self) -> None:
        self._callout_nc = await self._open(self.keys.callout_user.seed, "wothub-callout")
        await self._callout_nc.subscribe(AUTH_SUBJECT, queue=QUEUE, cb=self._on_auth)
        await confirmed(self._callout_nc)
        self._sys_nc = await self._open(self.keys.sys_user.seed, "wothub-events")
        await self._sys_nc.subscribe(f"$SYS.ACCOUNT.{APP_ACCOUNT}.CONNECT", cb=self._on_event)
        await self._sys_nc.subscribe(f"$SYS.ACCOUNT.{APP_ACCOUNT}.DISCONNECT", cb=self._on_event)
        await confirmed(self._sys_nc)
        self._nc = await self._open(
            self.keys.hub_user.seed,
            "wothub",
            disconnected_cb=self._on_link_lost,
            reconnected_cb=self._on_link_back,
        )
        _check_version(self._nc.connected_server_version)
        if self.partition is not None:  # a worker: its clients' messages, mapped
            for subject in partitions.subscriptions(self.partition[0]):
                await self._nc.subscribe(subject, queue=QUEUE, cb=self._on_message)
        else:
            if self.route_agents:
                server_name = self._nc._server_info.get("server_name", "")
                self.routing = AgentRouting(self.cluster_node or server_name, server_name)
                if self._hubs is not None:
                    self.routing.set_hubs(self._hubs())
                await self._nc.subscribe(LOGINS, cb=self._on_login_elsewhere)
                await self._nc.subscribe(f"{FOLLOW}.{self.routing.node}", cb=self._on_follow)
                self.callout.before_answer = self._before_login_answer
            else:
                await self._nc.subscribe(
                    f"{subjects.PREFIX}.agent.*.>", queue=QUEUE, cb=self._on_message
                )
            # requests: wot.client.{c}.req.{operation} (NATS), wot.client.{c}.req (MQTT)
            await self._nc.subscribe(
                f"{subjects.PREFIX}.client.*.req.*", queue=QUEUE, cb=self._on_message
            )
            await self._nc.subscribe(
                f"{subjects.PREFIX}.client.*.req", queue=QUEUE, cb=self._on_message
            )
        await confirmed(self._nc)
        if self.partition is not None:
            await self._reconnect_partition("a hub worker started")

    def set_cluster(self, node: str, hubs: Callable[[], dict[str, str]]) -> None:
        """A cluster node (before ``start``): its name, and the hubs alive with the
        server each is connected to (their leases, hub/node_leases.py), which decide
        which hub handles the agents at each server (bindings/nats/agent_routing.py).
        ``hubs_changed`` is to be called when they change."""
        self.cluster_node, self._hubs = node, hubs

    @property
    def server_name(self) -> str | None:
        """The nats-server whose agents this cluster node handles, once connected."""
        return self.routing.server_name if self.routing is not None else None

    async def mqtt_warm_up(self, timeout: float = 30.0) -> bool:
        """Make the MQTT streams exist (the managed server's warm-up connection), then
        wait until the server loaded the retained values (it does so in the background
        after a start: a subscriber before then would miss them). False when an external
        server has no MQTT streams yet."""
        assert self._nc is not None and self.mqtt is not None
        js = self._nc.jetstream()
        deadline = asyncio.get_running_loop().time() + timeout
        if self.server is not None:
            host = "127.0.0.1" if is_any_address(self.mqtt.host) else self.mqtt.host
            tls = self._warm_up_tls() if self.mqtt.tls else None
            while True:
                try:
                    code = await connect_once(
                        host, self.mqtt.port, WARMUP_USER, self.server.warmup_password, tls
                    )
                    break
                except (OSError, EOFError) as exc:  # a cluster still forming drops it
                    if asyncio.get_running_loop().time() > deadline:
                        raise
                    log.info("the MQTT warm-up connection failed (%r); trying again", exc)
                await asyncio.sleep(0.5)  # paces the attempts
            if code != 0:
                raise RuntimeError(f"the MQTT warm-up login was refused (CONNACK {code})")
        while True:
            try:
                for stream in mqtt_bus.MQTT_STREAMS:
                    await js.stream_info(stream)
                consumers = await js.consumers_info(mqtt_bus.RETAINED_STREAM)
                # The newest is this server's: one left by a server stopped before it
                # read everything stays behind for good (recovered from the store).
                if consumers and max(consumers, key=lambda c: c.created).num_pending == 0:
                    return True
            except nats.js.errors.NotFoundError:
                if self.server is None:
                    log.warning(
                        "no MQTT streams on %s yet: retained values start with the first "
                        "MQTT client",
                        self.url,
                    )
                    return False
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("nats-server did not create its MQTT streams in time")
            await asyncio.sleep(0.02)  # polled: the server says nothing when it is done

    def restore_retained(self) -> None:
        """Write every twin's TD and latest values into the retained stream again, in the
        background (bindings/mqtt/restore.py). Of several workers, the first does it."""
        if self.partition is not None and self.partition[0] != 0:
            return
        if self._retained is not None and self._restoring is None:
            self._restoring = asyncio.create_task(
                self._restore(self._retained), name="mqtt-restore"
            )

    async def _restore(self, writer: RetainedWriter) -> None:
        started = asyncio.get_running_loop().time()

        async def flush() -> None:
            if self._nc is None:
                raise ConnectionError("the hub's NATS connection is closed")
            # shielded: nats-py fails its read loop on the PONG of a cancelled flush, and
            # the hub's stop cancels the restore
            await asyncio.shield(self._nc.flush(timeout=30))

        try:
            things, written = await restore(self.router, writer, flush)
        except Exception as exc:  # the link went meanwhile: the live values still come
            log.warning("writing the retained twin values again stopped: %r", exc)
            return
        took = asyncio.get_running_loop().time() - started
        log.info("MQTT: %d retained values of %d Things written in %.1f s", written, things, took)

    def _warm_up_tls(self) -> ssl.SSLContext:
        """The warm-up connection's TLS: when the listener requires client certificates,
        with one from the hub CA for the warm-up user, issued once and kept in the home."""
        assert self.mqtt is not None
        if self.mqtt.client_certificate != MQTT_CERTIFICATE_REQUIRE:
            return self.tls
        cert_path = self.home / "nats" / "mqtt-warmup.pem"
        key_path = self.home / "nats" / "mqtt-warmup.key"
        if not (key_path.exists() and _valid_for_a_day(cert_path)):
            issued, key = self.ca.generate_for(WARMUP_USER)
            key_path.touch(mode=0o600)
            key_path.write_bytes(key)
            cert_path.write_bytes(issued.cert_pem)
        context = ssl.create_default_context(cadata=self.ca.ca_cert_pem.decode())
        context.load_cert_chain(cert_path, key_path)
        return context

    async def _open(self, seed: str, name: str, **callbacks: Any) -> NatsConnection:
        async def error_cb(exc: Exception) -> None:
            log.debug("%s: %s", name, exc)

        return await nats.connect(
            self.url,
            name=name,
            tls=self.tls,
            nkeys_seed_str=seed,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.2,
            connect_timeout=5,
            error_cb=error_cb,
            **callbacks,
        )

    async def stop(self) -> None:
        """Bounded: a few seconds whatever the load (the hub's stop has 10 s in all)."""
        if self.server is not None and self._owns_server:
            self.server.stop_supervising()  # its exit from here on is no crash
        for task in [*self._logins_under_way, *self._kicks, self._restoring]:
            if task is not None:
                task.cancel()
        if self._other_nodes is not None:
            self._other_nodes.stop()
        if self._twin_writer is not None:
            self._twin_writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._twin_writer
            self._twin_writer = None
        if self._twin is not None:
            self.router.disconnect(self._twin)
            self._twin = None
        if self._retained is not None:
            await self._retained.close()  # the latest values outlive the hub
        self._drop_peers("hub stopping")
        connections = (self._nc, self._sys_nc, self._callout_nc)
        self._nc = self._sys_nc = self._callout_nc = None
        await asyncio.gather(*(_close(nc) for nc in connections if nc is not None))
        if self.server is not None and self._owns_server:
            await self.server.stop()
            self.server = None

    def listeners(self) -> dict[str, dict[str, Any]]:
        """For ``<home>/listeners.json``."""
        if self.server is None:
            return {"nats": {"url": self.url, "external": True}}
        out: dict[str, dict[str, Any]] = {
            "nats": {
                "host": self.server.host,
                "port": self.server.port,
                "url": self.forms.url,
                "local_url": self.url,
                "tls": True,
                "config": str(self.server.config_path),
            }
        }
        if self.server.ws_port is not None:
            out["nats-wss"] = {
                "host": self.server.host,
                "port": self.server.ws_port,
                "url": self.server.ws_url,
                "client_certificate": True,
            }
        return out

    # -- the auth callout ----------------------------------------------------------------

    async def _on_auth(self, msg: Msg) -> None:
        # Each login is answered on a task of its own: a password check waits for the
        # hash pool, and the logins behind it (tokens, certificates) must not queue.
        task = asyncio.create_task(self._answer_auth(msg))
        self._logins_under_way.add(task)
        task.add_done_callback(self._logins_under_way.discard)

    async def _answer_auth(self, msg: Msg) -> None:
        try:
            reply = await self.callout.respond(msg.data, msg.headers)
            if reply is not None and msg.reply:
                await msg.respond(reply)
        except Exception:
            log.exception("the auth callout failed")

    def _on_login(self, login: Login) -> None:
        self._logins.logged_in(login)
        if self.routing is not None and self._nc is not None:  # the other nodes learn whose
            key = (login.server_id, login.connection_id)
            self.routing.logged_in(key, login.client.id)
            note = orjson.dumps([login.server_id, login.connection_id, login.client.id])
            self._soon(self._nc.publish(LOGINS, note))
        peer = self._peers.get(login.client.id)
        if peer is not None:
            peer.nats_ids.add((login.server_id, login.connection_id))

    def eject(self, wanted: Callable[[Login], bool], reason: str) -> None:
        """Close the NATS connections whose login ``wanted`` picks (bindings.nats.ejection:
        a removed client, an ended session, a revoked certificate); their reconnects go
        through the callout again."""
        self._kick(self._logins.matching(wanted), reason)

    def _kick(self, keys: list[tuple[str, int]], reason: str) -> None:
        nc = self._sys_nc
        if not keys or nc is None:
            return
        task = asyncio.create_task(self._kick_after_answers(nc, keys, reason))
        self._kicks.add(task)
        task.add_done_callback(self._kicks.discard)

    async def _kick_after_answers(self, nc: Any, keys: list[tuple[str, int]], reason: str) -> int:
        # The answers published already (a logout's own) go through the server before the
        # kick, which sends a connection what it holds for it before closing it: else
        # the kick, on another connection, can overtake the answer.
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._nc.flush(), KICK_TIMEOUT)
        return await kick(nc, keys, reason)

    # -- connections and presence ------------------------------------------------------

    @functools.cached_property
    def _own_users(self) -> set[str]:
        """The hubs' own NATS users (every node of a cluster has the same keys)."""
        users = (self.keys.callout_user, self.keys.hub_user, self.keys.sys_user)
        return {key.public_key for key in users}

    async def _on_event(self, msg: Msg) -> None:
        try:
            event = orjson.loads(msg.data)
            info = event["client"]
            key = (event["server"]["id"], int(info["id"]))
            client_id = info.get("user")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.debug("ignoring an event on %s", msg.subject)
            return
        if client_id in self._own_users:  # a hub's own connection (another node's)
            return
        routing = self.routing
        if msg.subject.endswith(".CONNECT"):
            login, ejected = self._logins.connected(key)
            if ejected:  # while its login was under way
                self._kick([key], "ejected while logging in")
                return
            client = login.client if login is not None else None
            if routing is not None:
                routing.connected(key, str(event["server"].get("name", "")), info)
                client = self._routed_client(key, client)
                if client is None:
                    return
                if not routing.here(client.id):  # its newest connection is elsewhere
                    self._drop_peer(client.id, "connected to another node")
                    self._unfollow_agent(client.id)
                    return
                if client.is_agent and client.id not in self._agent_subs:
                    self._soon(self._follow_agent(client.id))  # made ready elsewhere: late
            if client is not None:
                client_id = client.id
            # Else the event's user: with workers, another worker's callout may have seen
            # the login (the callout's user JWT names the client).
            if not isinstance(client_id, str) or client_id in _HIDDEN_USERS:
                return
            if not self._owns(client_id):
                return
            self._open_by_client.setdefault(client_id, set()).add(key)
            peer = self._peers.get(client_id)
            if peer is None and info.get("client_type") == "mqtt":
                # An MQTT client is online from its CONNECT; an agent's requests wait
                # for its hello (it has subscribed) or mqtt_hello_wait (docs/mqtt.md).
                if client is None:
                    client = self._client_of(client_id)
                if client is not None:
                    with contextlib.suppress(Problem):
                        peer = self._peer(client.id, mqtt=True, held=client.is_agent)
            if peer is not None:
                peer.nats_ids.add(key)
            return
        seen = self._logins.pop(key)
        if seen is not None:
            client_id = seen.client.id
        if routing is not None:
            client_id = routing.disconnected(key) or client_id
            if client_id and not routing.here(client_id):  # none left at this server
                self._drop_peer(client_id, "disconnected")
                self._unfollow_agent(client_id)
            return
        if isinstance(client_id, str) and client_id in self._open_by_client:
            self._open_by_client[client_id].discard(key)
            if not self._open_by_client[client_id]:
                del self._open_by_client[client_id]
        peer = self._peers.get(client_id or "")
        if peer is None:
            return
        if key in peer.nats_ids:
            peer.nats_ids.discard(key)
        elif peer.nats_ids:
            return  # another of its connections, still open
        if not peer.nats_ids:
            self._drop_peer(client_id, "disconnected")

    async def _until_subscribed(self, peer: _Peer) -> None:
        """Hold a held peer's outbox until its hello, or ``mqtt_hello_wait`` for an agent
        that says none (at QoS 1 its requests then reach a kept session whenever it
        subscribed; a new session must have subscribed by then)."""
        if peer.held is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.mqtt_hello_wait):
                await peer.held.wait()
        peer.held = None

    def _peer(self, client_id: str, mqtt: bool = False, held: bool = False) -> _Peer | None:
        """The client's peer, opened if need be; None for an unknown or disabled client,
        Problem when a limit refuses it. A new ``held`` peer sends nothing until its
        hello (``_until_subscribed``)."""
        peer = self._peers.get(client_id)
        if peer is not None and not peer.connection.closed:
            peer.mqtt = peer.mqtt or mqtt
            return peer
        if peer is not None:  # closed (it fell behind): release it before replacing it
            self.router.disconnect(peer.connection)
        client = self._client_of(client_id)
        if client is None:
            return None
        try:
            connection = self.router.connect(client, "nats")
        except Problem as problem:  # a limit: max_connections_per_client
            log.warning("NATS client %s refused: %s", client_id, problem.detail)
            raise
        peer = _Peer(connection, mqtt=mqtt, held=asyncio.Event() if held else None)
        peer.nats_ids = self._logins.of_client(client_id) | self._open_by_client.get(
            client_id, set()
        )
        self._peers[client_id] = peer
        peer.writer = asyncio.create_task(self._write(peer), name=f"nats-{client_id}")
        return peer

    def _owns(self, client_id: str) -> bool:
        """Whether the client's messages come to this hub (always, unless a worker)."""
        if self.partition is None:
            return True
        index, count = self.partition
        return partitions.partition_of(subjects.encode(client_id), count) == index

    def _soon(self, work: Any) -> None:
        """Run ``work`` (a coroutine) as a task the binding keeps until it is done."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _routed_client(self, key: tuple[str, int], client: Client | None) -> Client | None:
        """The client of a connection at any node (a cluster node): the login this node
        saw, else its account, once some node said whose connection it is."""
        if client is not None:
            return client
        assert self.routing is not None
        client_id = self.routing.client_of(key)
        return self._client_of(client_id) if client_id is not None else None

    def server_gone(self, server_name: str) -> None:
        """A cluster node died with its connections: forget where they were."""
        if self.routing is not None:
            self.routing.server_gone(server_name)

    def hubs_changed(self) -> None:
        """A hub came or went (its lease): this hub takes the agents of each server it
        handles now and did not before, where they are connected, and lets go of those
        another hub handles now. No agent is disconnected."""
        if self.routing is None or self._hubs is None:
            return
        for server in self.routing.set_hubs(self._hubs()):
            owner = self.routing.handler(server)
            log.info("the agents at nats-server %s are handled by hub %s now", server, owner)
            if owner == self.routing.node:
                self._soon(self._take_agents_at(server))
        for client_id in list(self._agent_subs):
            if self.routing.here(client_id) is False:
                self._drop_peer(client_id, "handled by another hub")
                self._unfollow_agent(client_id)

    async def claim_agents(self) -> None:
        """A cluster node whose link to its server is (again) up, once the other hubs
        can know which server that is (its lease): it takes the agents that stayed
        connected to that server while it was not there."""
        if self.routing is not None:
            await self._take_agents_at(self.routing.server_name)

    async def _take_agents_at(self, server: str) -> None:
        """Handle the agents connected at ``server`` where they are, if this hub is
        its handler: their connections as the server lists them (CONNZ), their
        subjects subscribed, their peers open (online; their queued requests go)."""
        nc, sys_nc, routing = self._nc, self._sys_nc, self.routing
        if nc is None or sys_nc is None or routing is None:
            return
        if routing.handler(server) != routing.node:
            return
        server_ids = routing.server_ids(server)
        if server == routing.server_name:
            server_ids.add(str((nc._server_info or {}).get("server_id")))
        for server_id in server_ids:
            try:
                found = await open_connections(sys_nc, server_id, APP_ACCOUNT)
            except Exception as exc:  # a server that is gone or restarting: so are its clients
                log.debug("cannot list the connections at %s (%s): %r", server, server_id, exc)
                continue
            for key, user, info in found:
                routing.connected(key, server, info)
                routing.logged_in(key, user)
        for client_id, mqtt in routing.clients_at(server).items():
            account = self.auth.accounts.get(client_id)
            if account is None or not Client(account.client_id, account.role).is_agent:
                continue
            if routing.here(client_id) and client_id not in self._peers:
                await self._follow_agent(client_id)
                try:
                    self._peer(client_id, mqtt=mqtt)
                except Problem:  # a limit: its next login is refused the same way
                    continue
                log.info("took agent %s at nats-server %s", client_id, server)

    def _client_of(self, client_id: str) -> Client | None:
        client = self._logins.latest(client_id)
        if client is not None:
            return client
        account = self.auth.accounts.get(client_id)
        if account is None or not account.enabled:
            log.warning("NATS message from unknown or disabled client %r dropped", client_id)
            return None
        return Client(account.client_id, account.role)

    def _drop_peer(self, client_id: str, reason: str) -> None:
        peer = self._peers.pop(client_id, None)
        if peer is None:
            return
        peer.connection.close(reason)
        self.router.disconnect(peer.connection)
        if peer.held is not None and peer.writer is not None:
            peer.writer.cancel()  # gone before its hello: it was sent nothing, nor will be
        # Otherwise the writer ends by itself once the outbox is drained and closed.

    def _drop_peers(self, reason: str) -> None:
        for client_id in list(self._peers):
            self._drop_peer(client_id, reason)

    async def _on_link_lost(self) -> None:
        """The hub lost NATS (the server died or restarts): every client connection went
        with it. Agents are offline until they say hello again."""
        if self._nc is None or self._nc.is_closed or self._nc.is_draining:
            return  # closing on purpose
        log.warning("NATS link lost; %d client connection(s) closed", len(self._peers))
        self._drop_peers("nats link lost")
        self._logins.clear()

    async def _on_link_back(self) -> None:
        if self._nc is None:
            return  # stopped meanwhile
        log.info("NATS link back on %s (subscriptions restored)", self._nc.connected_url)
        if self.partition is not None:
            await self._reconnect_partition("a hub worker's NATS link came back")
        elif self.routing is not None:
            await self.claim_agents()

    async def _reconnect_partition(self, reason: str) -> None:
        """A worker that starts (again) or got its NATS link back does not know the
        clients of its partition that stayed connected to nats-server meanwhile (their
        hello went to the worker before it, or nowhere). It closes their connections:
        they reconnect, log in, and say hello to it."""
        nc, sys_nc = self._nc, self._sys_nc
        if nc is None or sys_nc is None:
            return
        server_id = (nc._server_info or {}).get("server_id")
        own_users = self._own_users
        try:
            found = await open_connections(sys_nc, str(server_id), APP_ACCOUNT)
        except Exception as exc:  # the server is restarting: so are its clients
            log.warning("cannot list the NATS connections of this worker's clients: %r", exc)
            return
        keys = [
            key
            for key, user, _ in found
            if user not in own_users and user != WARMUP_USER and self._owns(user)
        ]
        self._kick(keys, reason)

    # -- what clients send -------------------------------------------------------------

    async def _on_login_elsewhere(self, msg: Msg) -> None:
        try:
            server_id, connection_id, client_id = orjson.loads(msg.data)
            key = (str(server_id), int(connection_id))
        except (orjson.JSONDecodeError, TypeError, ValueError):
            return
        if self.routing is not None and isinstance(client_id, str):
            self.routing.logged_in(key, client_id)

    async def _before_login_answer(self, login: Login, server_name: str) -> None:
        """An agent logs in at ``server_name``: the hub that handles that server's agents
        subscribes to the agent's subjects before the login is answered, so no message
        of it goes unheard (a message with no subscriber is dropped by nats-server)."""
        if not login.client.is_agent or self._nc is None or self.routing is None:
            return
        handler = self.routing.handler(server_name)
        if handler == self.routing.node:
            await self._follow_agent(login.client.id)
            return
        try:
            await self._nc.request(f"{FOLLOW}.{handler}", login.client.id.encode(), 2.0)
        except (nats.errors.Error, TimeoutError) as exc:  # that hub is not there
            log.warning("hub %s did not take agent %s: %r", handler, login.client.id, exc)

    async def _on_follow(self, msg: Msg) -> None:
        try:
            client_id = msg.data.decode()
        except UnicodeDecodeError:
            return
        await self._follow_agent(client_id)
        if msg.reply:
            await msg.respond(b"")

    async def _follow_agent(self, client_id: str) -> None:
        """Subscribe to the agent's subjects (once), confirmed by the server."""
        self._expected[client_id] = asyncio.get_running_loop().time()
        if client_id in self._agent_subs or self._nc is None:
            return
        subject = f"{subjects.PREFIX}.agent.{subjects.encode(client_id)}.>"
        self._agent_subs[client_id] = await self._nc.subscribe(subject, cb=self._on_routed)
        await confirmed(self._nc)

    def _unfollow_agent(self, client_id: str) -> None:
        """Not this node's agent any more (its newest connection is elsewhere, or it has
        none), unless a login of it was made ready here a moment ago."""
        expected = self._expected.get(client_id)
        if expected is not None and asyncio.get_running_loop().time() - expected < EXPECT:
            return
        self._expected.pop(client_id, None)
        subscription = self._agent_subs.pop(client_id, None)
        if subscription is not None:
            self._soon(subscription.unsubscribe())

    async def _on_routed(self, msg: Msg) -> None:
        """An agent's message, heard by every node: handled here only if the agent's
        newest connection is at this node's server; kept a moment while that is not
        known yet."""
        assert self.routing is not None
        try:
            client_id = subjects.decode(msg.subject.split(".")[2])
        except (UnicodeDecodeError, IndexError, ValueError):
            return
        here = self.routing.here(client_id)
        if here is None:
            self.routing.hold(client_id, lambda: self._soon(self._on_message(msg)))
        elif here:
            await self._on_message(msg)

    async def _on_message(self, msg: Msg) -> None:
        answers: list[Message | dict[str, Any]] = []
        try:
            peer = self._receive(msg, answers.append)
            if answers:  # most messages (reports) have none: no await on their path
                await self._answer(msg, peer, answers)
        except Exception:
            log.exception("handling a NATS message on %s failed", msg.subject)
            if msg.reply and self._nc is not None:  # a bug of ours: still an answer
                error = error_frame(_reply_id(msg.data), 500, "the hub failed to handle it")
                with contextlib.suppress(Exception):
                    await self._nc.publish(msg.reply, orjson.dumps(error))

    async def _answer(
        self, msg: Msg, peer: _Peer | None, answers: list[Message | dict[str, Any]]
    ) -> None:
        nc = self._nc
        if nc is None:  # stopping
            return
        for answer in answers:
            to = answer if isinstance(answer, Message) else None
            subject = msg.reply or (
                self._default_subject(peer, to) if peer else _mqtt_responses(msg)
            )
            if subject:
                await nc.publish(subject, self._encoded.envelope(answer))

    def _receive(self, msg: Msg, reply: Reply) -> _Peer | None:
        """One message through the receive pipeline; the answers go to ``reply``. The
        sender's peer, if it has one."""
        subject = msg.subject
        if self.partition is not None:  # a worker's: as the client sent it
            subject = partitions.unmapped(subject)
        try:
            address: subjects.Address | None = subjects.parse(subject)
        except subjects.AddressError as exc:
            address, unknown = None, str(exc)
        if address is not None and address.owner is not None:
            client_id = address.owner  # the parsed (and cached) address decoded it
        else:
            try:
                client_id = subjects.decode(subject.split(".")[2])
            except (UnicodeDecodeError, IndexError):
                self.receiver.refuse(None, reply, 400, f"bad subject {subject}")
                return None
        if self.partition is not None and not self._owns(client_id):  # another's, by hand
            detail = f"{subject} belongs to another hub worker's partition"
            self.receiver.refuse(None, reply, 400, detail)
            return None
        if address is not None and address.channel.publisher == HUB:
            # The hub's own requests to the agent, heard back on wot.agent.*.>: refusing
            # them would answer on this same subject, and loop; looking up the peer
            # could bring a departed agent back online.
            return None
        try:
            peer = self._peer(client_id, mqtt_bus.from_mqtt(msg.headers))
        except Problem as problem:  # a limit: the request still gets its answer
            extensions = problem.extensions
            reply(error_frame(_reply_id(msg.data), problem.status, problem.detail, **extensions))
            return None
        if peer is None:
            return None
        connection = peer.connection
        if address is None:
            self.receiver.refuse(connection, reply, 400, unknown)
        elif address.channel.kind == subjects.HELLO:
            if peer.held is not None:  # an MQTT agent that subscribed: what waits may go
                peer.held.set()
            if msg.reply:
                reply({})
        elif not address.may_publish(connection.client):
            detail = f"{client_id} may not publish to {subject}"
            self.receiver.refuse(connection, reply, 403, detail)
        else:
            self.receiver.receive(connection, msg.data, reply, address)
        return peer

    def _default_subject(self, peer: _Peer, message: Message | None) -> str:
        """Where a message for a client goes without a reply inbox: requests (and
        anything for a pure agent) on its request subject, the rest on its responses."""
        client = peer.connection.client
        request = message is not None and message.message_type == REQUEST
        if request or (client.role == AGENT and not peer.mqtt):
            return subjects.agent(client.id, subjects.REQ)
        return subjects.client_responses(client.id)  # MQTT agents' answers too

    async def _write(self, peer: _Peer) -> None:
        await self._until_subscribed(peer)
        connection = peer.connection

        async def send(_seq: int | None, message: Message | dict) -> None:
            to = message if isinstance(message, Message) else None
            subject = self._default_subject(peer, to)
            payload = self._encoded.envelope(message)
            if peer.mqtt and to is not None and to.message_type == REQUEST:
                # QoS 1, kept for the agent's session while it is away (bindings/mqtt/bus.py)
                await self._publish(subject, payload, mqtt_bus.QOS1)
                await self._publish(mqtt_bus.queued(subject), payload, mqtt_bus.QOS1)
            else:
                await self._publish(subject, payload)

        async def end(reason: str) -> None:
            if reason not in QUIET:  # overflow, or the client was removed or changed
                log.warning("%s on NATS: %s", connection, reason)
                if self._peers.get(connection.client.id) is peer:  # not its successor
                    del self._peers[connection.client.id]
                self.router.disconnect(connection)

        await pump(connection, send, end)

    async def _publish(
        self, subject: str, payload: bytes, headers: dict[str, str] | None = None
    ) -> None:
        nc = self._nc
        if nc is None:
            return
        try:
            await nc.publish(subject, payload, headers=headers)
        except Exception as exc:  # e.g. the reconnect buffer is full
            log.warning("dropped a NATS message on %s: %s", subject, exc)

    # -- twin notifications --------------------------------------------------------------

    def _start_twin_publisher(self) -> None:
        self._twin = self.router.connect_relay("nats")
        for kind in (PROPERTY, EVENT, DIRECTORY, PRESENCE, STATE):
            self.router.subscribe(self._twin, kind)
        if self._other_nodes is not None:  # action statuses, for the other nodes only
            self.router.subscribe(self._twin, ACTION)
        if self.mqtt is not None and self._retained is None:
            self._retained = RetainedWriter(self._publish)
        self._twin_writer = asyncio.create_task(self._write_twin(), name="nats-twin")

    async def _write_twin(self) -> None:
        relay = self._twin
        assert relay is not None and self._nc is not None
        publisher = HeaderPublisher(self._nc)
        node, node_line = self.node_id, twin_wire.node_line(self.node_id)
        other_nodes = self._other_nodes

        async def send(_seq: int | None, message: Message) -> None:
            if message.thing_id is None:
                return
            try:
                subject = subjects.notification(message.operation, message.thing_id, message.name)
            except ValueError:  # a name no subject can carry: skip it, keep relaying
                log.exception("cannot relay %s of %s on NATS", message.operation, message.thing_id)
                return
            if subject is None:
                if other_nodes is not None and message.operation == ops.QUERY_ACTION:
                    await self._publish(*other_nodes.action_status(message))
                return
            payload = self._twin_payload(message)
            if not publisher.try_publish(
                subject, payload, twin_wire.header_block(message, node_line)
            ):
                await self._publish(subject, payload, twin_wire.headers(message, node))
            if self._retained is not None and message.operation in _RETAINED:
                # the latest value (or TD) for MQTT subscribers to come: retained
                await self._retained.put(subject, payload)

        async def end(reason: str) -> None:
            if reason != OVERFLOW:
                return  # the binding is stopping
            # NATS fell behind (reconnecting, say): what is lost is lost, but the relay
            # starts again rather than leaving wot.twin silent for good.
            log.error("the NATS twin relay fell behind; starting it again")
            self.router.disconnect(relay)
            self._start_twin_publisher()

        await pump(relay, send, end)

    def _twin_payload(self, message: Message) -> bytes:
        """What a twin subject carries (vocabulary/twin_wire.py): the raw value, or the
        twin TD (empty once the Thing is gone)."""
        if message.operation == ops.UPDATE_THING:
            td = self.router.twin_td(message.required_thing_id())
            return orjson.dumps(td) if td is not None else b""
        if message.operation == ops.DELETE_THING:
            return b""
        return self._encoded.value(message)


async def _close(nc: NatsConnection, timeout: float = 1.0) -> None:
    if nc.is_closed:
        return
    try:
        async with asyncio.timeout(timeout):
            await close_connection(nc)
    except Exception as exc:  # the server may be gone already; the hub stops anyway
        log.debug("closing a NATS connection: %r", exc)


def _check_version(version: Any) -> None:
    """Refuse a nats-server too old for the MQTT contract (docs/nats.md)."""
    found = (version.major, version.minor, version.patch)
    if found < MIN_SERVER_VERSION:
        wanted = ".".join(map(str, MIN_SERVER_VERSION))
        raise RuntimeError(
            f"nats-server {'.'.join(map(str, found))} is too old: wothub needs {wanted} or "
            "newer (MQTT QoS 1 permissions and retained values)"
        )


def _valid_for_a_day(cert_path: Path) -> bool:
    if not cert_path.exists():
        return False
    expires = parse_certificate(cert_path.read_bytes()).not_valid_after_utc
    return expires - datetime.now(UTC) > timedelta(days=1)


_HIDDEN_USERS = ("", "[REDACTED]")  # what a login's user may be when it names nobody

_RETAINED = frozenset({ops.OBSERVE_PROPERTY, ops.UPDATE_THING, ops.DELETE_THING})


def _mqtt_responses(msg: Msg) -> str | None:
    """Where an MQTT sender with no peer (refused by a limit) gets its answer: MQTT has
    no reply inboxes, its responses topic is the one place it listens."""
    if not mqtt_bus.from_mqtt(msg.headers):
        return None
    try:
        return subjects.client_responses(subjects.decode(msg.subject.split(".")[2]))
    except (UnicodeDecodeError, IndexError):
        return None


def _reply_id(data: bytes) -> str | None:
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if isinstance(parsed, dict):
        for key in ("correlationID", "messageID"):
            if isinstance(parsed.get(key), str):
                return parsed[key]
    return None
