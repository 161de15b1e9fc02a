"""The NATS binding: devices and consumers on NATS, every message through the router.

The hub keeps three NATS connections (docs/nats.md): the auth callout responder (account
AUTH), the binding itself (account APP: it subscribes in a queue group to
``wot.agent.*.>`` and ``wot.client.*.req.*``, publishes requests to agents, responses to
consumers and twin notifications on ``wot.twin...``), and a system-account user that
follows ``$SYS.ACCOUNT.APP.CONNECT`` / ``DISCONNECT``.

A NATS message says nothing about its sender except its subject, which the server only
lets that client publish to (the permissions the callout granted): the client id is taken
from the subject, the envelope is parsed strictly and must agree with the subject, and
then the router authorizes it as on every binding.

Presence: an agent is online from its first message (``wot.agent.{id}.hello``, sent after
it subscribed to its request subject, or any report) until its last NATS connection
closes; then requests queued for it wait, and are delivered on its next hello.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import orjson
from nats.aio.client import Client as NatsConnection
from nats.aio.msg import Msg

from auth.roles import AGENT
from core.connection import OVERFLOW, Connection, ConnectionClosed
from core.contract import Core
from core.subscriptions import DIRECTORY, EVENT, PRESENCE, PROPERTY
from vocabulary import operations as ops
from vocabulary.envelope import (
    NOTIFICATION,
    REQUEST,
    RESPONSE,
    EnvelopeError,
    Message,
    error_frame,
    parse_message,
)
from vocabulary.identity import Client
from vocabulary.problems import Problem

from . import subjects
from .callout import AUTH_SUBJECT, AuthCallout, Login
from .forms import NatsForms
from .server import APP_ACCOUNT, NatsKeys, NatsServer

log = logging.getLogger("wothub.nats")

QUEUE = "wothub"
_TWIN_KINDS = {
    ops.OBSERVE_PROPERTY: "prop",
    ops.SUBSCRIBE_EVENT: "event",
    ops.UPDATE_THING: "td",
    ops.DELETE_THING: "td",
    ops.UPDATE_PRESENCE: "presence",
}


@dataclass
class _Peer:
    """One client's router connection (shared by all its NATS connections)."""

    connection: Connection
    writer: asyncio.Task[None] | None = None
    nats_ids: set[tuple[str, int]] = field(default_factory=set)


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
    ) -> None:
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
        self.keys = NatsKeys.load_or_create(self.home / "nats")
        self.tls = tls or ssl.create_default_context(cadata=ca.ca_cert_pem.decode())
        self.callout = AuthCallout(
            auth, ca.verify_client_certificate, self.keys.issuer, self.keys.xkey
        )
        self.callout.on_login = self._on_login
        self.forms = NatsForms()
        self.server: NatsServer | None = None
        self.url = external_url or ""
        self._callout_nc: NatsConnection | None = None
        self._nc: NatsConnection | None = None
        self._sys_nc: NatsConnection | None = None
        self._peers: dict[str, _Peer] = {}
        self._logins: dict[tuple[str, int], Client] = {}
        self._twin: Connection | None = None
        self._twin_writer: asyncio.Task[None] | None = None
        self._logins_under_way: set[asyncio.Task[None]] = set()
        self.refused = 0  # malformed or mismatched messages (for tests and stats)

    # -- life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        if self.external_url is None:
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
            )
            await self.server.start()
            host = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host
            self.url = f"nats://{'[' + host + ']' if ':' in host else host}:{self.server.port}"
        try:
            await self._connect()
        except BaseException:
            await self.stop()
            raise
        self.forms.set_url(self.public_url or (self.server.url if self.server else self.url))
        self._start_twin_publisher()
        log.info("NATS binding on %s", self.url)

    async def _connect(self) -> None:
        self._callout_nc = await self._open(self.keys.callout_user.seed, "wothub-callout")
        await self._callout_nc.subscribe(AUTH_SUBJECT, queue=QUEUE, cb=self._on_auth)
        await self._callout_nc.flush()
        self._sys_nc = await self._open(self.keys.sys_user.seed, "wothub-events")
        await self._sys_nc.subscribe(f"$SYS.ACCOUNT.{APP_ACCOUNT}.CONNECT", cb=self._on_event)
        await self._sys_nc.subscribe(f"$SYS.ACCOUNT.{APP_ACCOUNT}.DISCONNECT", cb=self._on_event)
        await self._sys_nc.flush()
        self._nc = await self._open(
            self.keys.hub_user.seed,
            "wothub",
            disconnected_cb=self._on_link_lost,
            reconnected_cb=self._on_link_back,
        )
        await self._nc.subscribe(f"{subjects.PREFIX}.agent.*.>", queue=QUEUE, cb=self._on_message)
        await self._nc.subscribe(
            f"{subjects.PREFIX}.client.*.req.*", queue=QUEUE, cb=self._on_message
        )
        await self._nc.flush()

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
        if self.server is not None:
            self.server.stop_supervising()  # its exit from here on is no crash
        for task in list(self._logins_under_way):
            task.cancel()
        if self._twin_writer is not None:
            self._twin_writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._twin_writer
            self._twin_writer = None
        if self._twin is not None:
            self.router.disconnect(self._twin)
            self._twin = None
        self._drop_peers("hub stopping")
        connections = (self._nc, self._sys_nc, self._callout_nc)
        self._nc = self._sys_nc = self._callout_nc = None
        await asyncio.gather(*(_close(nc) for nc in connections if nc is not None))
        if self.server is not None:
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
        self._logins[(login.server_id, login.connection_id)] = login.client
        peer = self._peers.get(login.client.id)
        if peer is not None:
            peer.nats_ids.add((login.server_id, login.connection_id))
        if len(self._logins) > 10_000:  # logins that never became connections
            self._logins.pop(next(iter(self._logins)))

    # -- connections and presence ------------------------------------------------------

    async def _on_event(self, msg: Msg) -> None:
        try:
            event = orjson.loads(msg.data)
            info = event["client"]
            key = (event["server"]["id"], int(info["id"]))
            client_id = info.get("user")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.debug("ignoring an event on %s", msg.subject)
            return
        if msg.subject.endswith(".CONNECT"):
            client = self._logins.get(key)
            peer = self._peers.get(client.id) if client else None
            if peer is not None:
                peer.nats_ids.add(key)
            return
        seen = self._logins.pop(key, None)
        if seen is not None:  # a token login's user is "[REDACTED]", a certificate's ""
            client_id = seen.id
        peer = self._peers.get(client_id or "")
        if peer is None:
            return
        if key in peer.nats_ids:
            peer.nats_ids.discard(key)
        elif peer.nats_ids:
            return  # another of its connections, still open
        if not peer.nats_ids:
            self._drop_peer(client_id, "disconnected")

    def _peer(self, client_id: str) -> _Peer | None:
        """The client's peer, opened if need be; None for an unknown or disabled client,
        Problem when a limit refuses it."""
        peer = self._peers.get(client_id)
        if peer is not None and not peer.connection.closed:
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
        peer = _Peer(connection)
        peer.nats_ids = {key for key, c in self._logins.items() if c.id == client_id}
        self._peers[client_id] = peer
        peer.writer = asyncio.create_task(self._write(peer), name=f"nats-{client_id}")
        return peer

    def _client_of(self, client_id: str) -> Client | None:
        for client in reversed(self._logins.values()):
            if client.id == client_id:
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
        # The writer ends by itself once the outbox is drained and closed.

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
        log.info("NATS link back on %s (subscriptions restored)", self._nc.connected_url)

    # -- what clients send -------------------------------------------------------------

    async def _on_message(self, msg: Msg) -> None:
        try:
            await self._handle(msg)
        except Exception:
            log.exception("handling a NATS message on %s failed", msg.subject)
            if msg.reply and self._nc is not None:  # a bug of ours: still an answer
                error = error_frame(_reply_id(msg.data), 500, "the hub failed to handle it")
                with contextlib.suppress(Exception):
                    await self._nc.publish(msg.reply, orjson.dumps(error))

    async def _handle(self, msg: Msg) -> None:
        tokens = msg.subject.split(".")
        try:
            client_id = subjects.decode(tokens[2])
        except (UnicodeDecodeError, IndexError):
            self._refuse(None, msg, None, 400, f"bad subject {msg.subject}")
            return
        if tokens[1] == "agent" and tokens[3:] == [subjects.REQ]:
            # The hub's own requests to the agent, heard back on wot.agent.*.>: refusing
            # them would answer on this same subject, and loop; looking up the peer
            # could bring a departed agent back online.
            return
        try:
            peer = self._peer(client_id)
        except Problem as problem:  # a limit: the request still gets its answer
            if msg.reply:
                error = error_frame(
                    _reply_id(msg.data), problem.status, problem.detail, **problem.extensions
                )
                await self._nc.publish(msg.reply, orjson.dumps(error))
            return
        if peer is None:
            return
        if tokens[1] == "agent" and tokens[3] == subjects.HELLO:
            if msg.reply:
                await self._nc.publish(msg.reply, b"{}")
            return
        if len(msg.data) > self.max_message_bytes:
            await self._refuse_async(peer, msg, None, 413, "message too large")
            return
        try:
            message = parse_message(msg.data, client_id)
        except EnvelopeError as exc:
            await self._refuse_async(
                peer,
                msg,
                _reply_id(msg.data),
                400,
                f"not a valid message: {exc}",
                validationErrors=[{"field": exc.field, "description": exc.description}],
            )
            return
        problem = _check_subject(tokens, message, peer.connection.client)
        if problem is not None:
            await self._refuse_async(
                peer, msg, message.correlation_id or message.message_id, 400, problem
            )
            return
        response = self.router.handle(peer.connection, message)
        if response is not None:
            await self._nc.publish(
                msg.reply or self._default_subject(peer, response), response.to_json()
            )

    async def _refuse_async(self, peer, msg, correlation_id, status, detail, **extra) -> None:
        subject, payload = self._refuse(peer, msg, correlation_id, status, detail, **extra)
        if subject:
            await self._nc.publish(subject, payload)

    def _refuse(self, peer, msg, correlation_id, status, detail, **extra):
        self.refused += 1
        who = peer.connection.client.id if peer else "?"
        log.warning("refused a NATS message from %s on %s: %s", who, msg.subject, detail)
        error = error_frame(correlation_id, status, detail, **extra)
        subject = msg.reply or (self._default_subject(peer, None) if peer else None)
        return subject, orjson.dumps(error)

    def _default_subject(self, peer: _Peer, message: Message | None) -> str:
        """Where a message for a client goes without a reply inbox: requests (and
        anything for a pure agent) on its request subject, the rest on its responses."""
        client = peer.connection.client
        if client.role == AGENT or (message is not None and message.message_type == REQUEST):
            return subjects.agent(client.id, subjects.REQ)
        return subjects.client_responses(client.id)

    async def _write(self, peer: _Peer) -> None:
        connection = peer.connection
        try:
            while True:
                _, message = await connection.next()
                if isinstance(message, dict):
                    subject, payload = self._default_subject(peer, None), orjson.dumps(message)
                else:
                    subject, payload = self._default_subject(peer, message), message.to_json()
                await self._publish(subject, payload)
        except ConnectionClosed as closed:
            if closed.reason not in ("disconnected", "hub stopping"):  # overflow, or changed
                log.warning("%s on NATS: %s", connection, closed.reason)
                if self._peers.get(connection.client.id) is peer:  # not its successor
                    del self._peers[connection.client.id]
                self.router.disconnect(connection)

    async def _publish(self, subject: str, payload: bytes) -> None:
        nc = self._nc
        if nc is None:
            return
        try:
            await nc.publish(subject, payload)
        except Exception as exc:  # e.g. the reconnect buffer is full
            log.warning("dropped a NATS message on %s: %s", subject, exc)

    # -- twin notifications --------------------------------------------------------------

    def _start_twin_publisher(self) -> None:
        self._twin = self.router.connect_relay("nats")
        for kind in (PROPERTY, EVENT, DIRECTORY, PRESENCE):
            self.router.subscribe(self._twin, kind)
        self._twin_writer = asyncio.create_task(self._write_twin(), name="nats-twin")

    async def _write_twin(self) -> None:
        assert self._twin is not None
        while True:
            try:
                _, message = await self._twin.next()
            except ConnectionClosed as closed:
                if closed.reason != OVERFLOW:
                    return  # the binding is stopping
                # NATS fell behind (reconnecting, say): what is lost is lost, but the
                # relay starts again rather than leaving wot.twin silent for good.
                log.error("the NATS twin relay fell behind; starting it again")
                self.router.disconnect(self._twin)
                self._start_twin_publisher()
                return
            kind = _TWIN_KINDS.get(message.operation)
            if kind is None or message.thing_id is None:
                continue
            name = message.name if kind in ("prop", "event") else None
            try:
                subject = subjects.twin(message.thing_id, kind, name)
            except ValueError:  # a name no subject can carry: skip it, keep relaying
                log.exception("cannot relay %s of %s on NATS", message.operation, message.thing_id)
                continue
            await self._publish(subject, message.to_json())


async def _close(nc: NatsConnection, timeout: float = 1.0) -> None:
    if nc.is_closed:
        return
    try:
        async with asyncio.timeout(timeout):
            await nc.close()
    except Exception as exc:  # the server may be gone already; the hub stops anyway
        log.debug("closing a NATS connection: %r", exc)


def _check_subject(tokens: list[str], message: Message, client: Client) -> str | None:
    """Why the envelope does not belong on its subject, or None."""
    if tokens[1] == "client":
        if len(tokens) != 5 or tokens[3] != "req":
            return f"no such subject {'.'.join(tokens)}"
        if message.message_type != REQUEST or message.operation != tokens[4]:
            return f"{'.'.join(tokens)} takes {tokens[4]} requests only"
        return None
    if not client.is_agent:
        return "only agents publish under wot.agent"
    kind, rest = tokens[3], tokens[4:]
    expected = {
        subjects.TD: ((REQUEST,), (ops.UPDATE_THING, ops.DELETE_THING), (0, 1)),
        subjects.PROP: (
            (NOTIFICATION,),
            (ops.OBSERVE_PROPERTY, ops.OBSERVE_ALL_PROPERTIES),
            (1, 2),
        ),
        subjects.EVENT: ((NOTIFICATION,), (ops.SUBSCRIBE_EVENT,), (2,)),
        subjects.RESP: ((RESPONSE,), None, (0,)),
    }.get(kind)
    if expected is None:
        return f"agents do not publish on wot.agent.{{id}}.{kind}"
    types, operations, lengths = expected
    if message.message_type not in types or (
        operations is not None and message.operation not in operations
    ):
        return f"wot.agent.{{id}}.{kind} does not take a {message.operation} {message.message_type}"
    if len(rest) not in lengths:
        return f"wrong number of tokens in {'.'.join(tokens)}"
    thing_id = message.thing_id
    if thing_id is None and isinstance(message.data, dict) and kind == subjects.TD:
        thing_id = message.data.get("id")  # the TD's: checked here, before it is encoded
        if thing_id is not None and not isinstance(thing_id, str):
            return "the TD's id must be a string"
    if rest and rest[0] != (subjects.encode(thing_id) if thing_id else None):
        return f"the subject's Thing token {rest[0]} is not the message's thingID {thing_id}"
    if kind == subjects.PROP and message.operation == ops.OBSERVE_PROPERTY and len(rest) != 2:
        return "a property value goes to wot.agent.{id}.prop.{thing}.{name}"
    if len(rest) == 2 and rest[1] != (subjects.encode(message.name) if message.name else None):
        return f"the subject's name token {rest[1]} is not the message's name {message.name}"
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
