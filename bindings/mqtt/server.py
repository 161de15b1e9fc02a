"""The MQTT binding: an embedded broker whose every message goes through the router.

Devices (agents) register TDs, report values and events and answer requests over MQTT;
consumers subscribe to twin topics and send requests. Clients never exchange messages
directly: the broker hands each PUBLISH to this binding (``message``), which parses the
envelope and passes it to ``router.handle``; what the router has for a client (its
responses, requests for an agent, twin notifications it subscribed to) is published by
the hub to that client alone. Topic scheme: docs/mqtt.md and ``topics``.

Authorization: an agent publishes only under ``wot/agent/{its id}/...`` (the router
then checks it owns the Thing) and subscribes only to its own request topic; every
client publishes requests only to ``wot/client/{its id}/req`` and gets responses on
``wot/client/{its id}/resp``; twin topics (``wot/twin/...``) are for the roles that may
observe, checked by the router's authorizer per Thing. A wildcard filter is accepted
when it covers something the client may see, and then only that is sent to it.

Bad input (not an envelope, over ``max_message_bytes``, a forbidden topic) is refused
with an error response on the client's ``resp`` topic and logged; more than
``max_bad_messages`` in ``bad_message_window`` seconds and the client is disconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import ssl
from dataclasses import dataclass, field
from typing import Any

import orjson
from amqtt.errors import BrokerError
from amqtt.mqtt.connack import BAD_USERNAME_PASSWORD, SERVER_UNAVAILABLE

from auth.credentials import Credentials
from auth.service import AuthService
from bindings.common.bad_messages import BadMessages
from bindings.common.encoded import EncodeCache
from bindings.common.hosts import public_host, url_host
from bindings.common.outbox import QUIET, pump
from bindings.common.receive import Receiver
from certs import CertificateAuthority
from core.connection import OVERFLOW, Connection
from core.contract import Core
from core.subscriptions import DIRECTORY, EVENT, PROPERTY
from vocabulary import operations as ops
from vocabulary.envelope import REQUEST, Message
from vocabulary.identity import Client
from vocabulary.problems import Problem

from . import topics
from .broker import PUBLISH, SUBSCRIBE, Link, Refused, WotBroker
from .forms import MqttForms

log = logging.getLogger("wothub.mqtt")

# What amqtt makes of an empty MQTT client id (amqtt.utils.gen_client_id).
_GENERATED_ID = "amqtt/"
_KIND_OF_FAMILY = {topics.PROP: PROPERTY, topics.EVENT: EVENT, topics.TD: DIRECTORY}
_PERMISSION = {
    PROPERTY: ops.OBSERVE_PROPERTY,
    EVENT: ops.SUBSCRIBE_EVENT,
    DIRECTORY: ops.READ_THING,
}


@dataclass
class _Plan:
    """What one subscription filter covers for one client."""

    responses: bool = False
    requests: bool = False
    twin: list[tuple[str, str | None, str | None]] = field(default_factory=list)


@dataclass(eq=False)
class _State:
    """The binding's side of one MQTT connection."""

    link: Link
    client: Client
    connection: Connection  # router.handle and twin subscriptions; yields responses
    bad: BadMessages  # this connection's bad-message window
    agent_connection: Connection | None = None  # requests for an agent
    filters: dict[str, tuple[int, _Plan]] = field(default_factory=dict)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    window: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(64))

    @property
    def responses_qos(self) -> int | None:
        granted = [q for q, plan in self.filters.values() if plan.responses]
        return max(granted) if granted else None

    @property
    def requests_qos(self) -> int:
        granted = [q for q, plan in self.filters.values() if plan.requests]
        return max(granted) if granted else 1


class MqttBinding:
    def __init__(
        self,
        router: Core,
        auth: AuthService,
        ca: CertificateAuthority,
        *,
        host: str = "0.0.0.0",
        port: int = 8883,
        plain_port: int | None = None,
        plain_host: str | None = None,
        max_message_bytes: int = 1 << 20,
        public_host: str | None = None,
        security: Any = None,
        max_bad_messages: int = 20,
        bad_message_window: float = 10.0,
        connect_timeout: float = 10.0,
        max_connections: int | None = 1000,
    ) -> None:
        self.router = router
        self.auth = auth
        self.ca = ca
        self.host = host
        self.port = port
        self.plain_port = plain_port
        self.plain_host = plain_host or "127.0.0.1"
        self.max_message_bytes = max_message_bytes
        self.public_host = public_host
        self.max_bad_messages = max_bad_messages
        self.bad_message_window = bad_message_window
        self.connect_timeout = connect_timeout  # TLS handshake, then CONNECT, each
        self.max_connections = max_connections  # open at once, authenticated or not
        self.forms = MqttForms(security=security)
        self.broker: WotBroker | None = None
        self._states: set[_State] = set()
        self._refusals: set[asyncio.Future[None]] = set()  # disconnects of refused links
        self._encoded = EncodeCache()
        self.receiver = Receiver(router, max_message_bytes, log)

    # -- life cycle --------------------------------------------------------------------

    async def start(self) -> None:
        listeners: dict[str, Any] = {
            "default": {
                "type": "tcp",
                "bind": f"{self.host}:{self.port}",
                "ssl": True,
                "certfile": str(self.ca.server_cert_path),
                "keyfile": str(self.ca.server_key_path),
            }
        }
        plain: tuple[str, ...] = ()
        if self.plain_port is not None:
            listeners["plain"] = {"type": "tcp", "bind": f"{self.plain_host}:{self.plain_port}"}
            plain = ("plain",)
        self.broker = WotBroker(
            {"listeners": listeners, "timeout_disconnect_delay": 2},
            self,
            self.ca.ssl_context_for_server,
            # Packets up to twice the limit (plus topic) are read and refused with an
            # error response; larger ones end the connection before they are read.
            cutoff_bytes=2 * self.max_message_bytes + 65_536,
            plain_listeners=plain,
            connect_timeout=self.connect_timeout,
            max_connections=self.max_connections,
        )
        try:
            await self.broker.start()
        except BrokerError as exc:
            if isinstance(exc.__cause__, OSError):  # the address is taken: say so plainly
                raise exc.__cause__ from None
            raise
        self.port = self.broker.bound_port("default")
        if self.plain_port is not None:
            self.plain_port = self.broker.bound_port("plain")
        self.forms.set_base_url(self.url)
        log.info("MQTT over TLS on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        for state in list(self._states):
            state.connection.close("hub stopping")
            await state.link.disconnect()
            self._close(state)
        if self.broker is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.broker.shutdown(), 10)
            self.broker = None

    @property
    def public_name(self) -> str:
        return public_host(self.host, self.public_host)

    @property
    def url(self) -> str:
        return f"mqtts://{url_host(self.public_name)}:{self.port}"

    def listeners(self) -> dict[str, dict[str, Any]]:
        out = {"mqtts": {"host": self.host, "port": self.port, "url": self.url}}
        if self.plain_port is not None:
            out["mqtt"] = {
                "host": self.plain_host,
                "port": self.plain_port,
                "url": f"mqtt://{self.plain_host}:{self.plain_port}",
            }
        return out

    # -- BrokerHooks: authentication -----------------------------------------------------

    async def authenticate(
        self,
        link: Link,
        username: str | None,
        password: str | bytes | None,
        certificate_der: bytes | None,
    ) -> Client:
        if isinstance(password, bytes):
            password = password.decode("utf-8", "replace")
        pem = ssl.DER_cert_to_PEM_cert(certificate_der).encode() if certificate_der else None
        credentials = Credentials(pem, client_id=username or None, password=password or None)
        source = link.peer.rsplit(":", 1)[0]  # the address, for the throttle
        try:
            client = await self.auth.authenticate(
                credentials, source, self.ca.verify_client_certificate
            )
        except Problem as problem:  # throttled or busy: "server unavailable", retry later
            code = SERVER_UNAVAILABLE if problem.status in (429, 503) else BAD_USERNAME_PASSWORD
            raise Refused(problem.detail, code) from None
        link.session.client_id = _session_id(client.id, link.session.client_id or "")
        log.info("MQTT client %s (%s) connected from %s", client.id, client.role, link.peer)
        return client

    # -- BrokerHooks: authorization --------------------------------------------------------

    def authorize(self, link: Link, action: str, topic: str) -> bool:
        client: Client = link.identity
        if action == PUBLISH:
            try:
                return topics.parse(topic).may_publish(client)
            except topics.AddressError:
                return False
        if action == SUBSCRIBE:
            try:  # a subscription is a request like any other: it spends the rate
                self.router.admit(client)
            except Problem:
                return False
            return self._plan(client, topic) is not None
        return False

    def _plan(self, client: Client, topic_filter: str) -> _Plan | None:
        """What a filter covers for this client; None when it covers nothing it may see."""
        if not topics.valid_filter(topic_filter):
            return None
        levels = topic_filter.split("/")
        own = topics.own(client.id)
        plan = _Plan(
            responses=topics.match_channel(levels, topics.CLIENT_RESPONSES, own)[0],
            requests=client.is_agent
            and topics.match_channel(levels, topics.AGENT_REQUESTS, own)[0],
        )
        for family, channel in topics.TWIN_FAMILIES.items():
            matched, fixed = topics.match_channel(levels, channel, {})
            if not matched:
                continue
            try:
                fixed_thing, fixed_name = fixed.get(topics.THING), fixed.get(topics.NAME)
                thing = topics.decode(fixed_thing) if fixed_thing else None
                name = topics.decode(fixed_name) if fixed_name else None
            except UnicodeDecodeError:
                return None
            kind = _KIND_OF_FAMILY[family]
            owner = self.router.owner_of(thing) if thing else None
            try:
                reason = self.router.authorize(client, _PERMISSION[kind], thing, owner)
            except Problem:
                return None
            if reason is None:
                plan.twin.append((kind, thing, name))
        if not (plan.responses or plan.requests or plan.twin):
            log.info("refused %s (%s) a subscription to %s", client.id, client.role, topic_filter)
            return None
        return plan

    # -- BrokerHooks: connections and subscriptions ------------------------------------------

    def connected(self, link: Link) -> None:
        client: Client = link.identity
        try:
            connection = self.router.connect(client, "mqtt", receives_requests=False)
        except Problem as problem:  # a limit: max_connections_per_client
            log.warning("MQTT client %s refused: %s", client.id, problem.detail)
            self._refusals.add(task := asyncio.ensure_future(link.disconnect()))
            task.add_done_callback(self._refusals.discard)
            return
        state = _State(
            link, client, connection, BadMessages(self.max_bad_messages, self.bad_message_window)
        )
        link.state = state
        self._states.add(state)
        self._spawn(state, self._write(state, connection))

    def disconnected(self, link: Link) -> None:
        state: _State | None = link.state
        if state is not None:
            self._close(state)
            log.info("MQTT client %s disconnected", state.client.id)

    def _close(self, state: _State) -> None:
        if state not in self._states:
            return
        self._states.discard(state)
        self.router.disconnect(state.connection)
        if state.agent_connection is not None:
            self.router.disconnect(state.agent_connection)
            state.agent_connection = None
        for task in list(state.tasks):
            task.cancel()

    def subscribed(self, link: Link, topic_filter: str, qos: int) -> None:
        state: _State | None = link.state
        if state is None:
            return
        plan = self._plan(state.client, topic_filter)
        if plan is None:  # the rights changed since SUBACK
            return
        state.filters[topic_filter] = (min(qos, 1), plan)
        self._apply_filters(state)
        if any(thing is not None for _, thing, _ in plan.twin):
            self._spawn(state, self._send_retained(state, plan, min(qos, 1)))

    def unsubscribed(self, link: Link, topic_filter: str) -> None:
        state: _State | None = link.state
        if state is not None and state.filters.pop(topic_filter, None) is not None:
            self._apply_filters(state)

    def _apply_filters(self, state: _State) -> None:
        """Router subscriptions and the request connection from the current filters."""
        plans = [plan for _, plan in state.filters.values()]
        self.router.replace_subscriptions(state.connection, [t for p in plans for t in p.twin])
        wants_requests = any(plan.requests for plan in plans)
        if wants_requests and state.agent_connection is None:
            # An agent is online for its requests once it listens for them: the router
            # then delivers what was queued while it was away.
            # Not counted again: the same network connection as state.connection.
            agent = self.router.connect(state.client, "mqtt", counted=False)
            state.agent_connection = agent
            self._spawn(state, self._write(state, agent))
        elif not wants_requests and state.agent_connection is not None:
            self.router.disconnect(state.agent_connection)
            state.agent_connection = None

    # -- BrokerHooks: messages from clients ---------------------------------------------------

    def message(self, link: Link, topic: str, payload: bytes) -> None:
        if link.state is None:
            link.broker.start_link(link)
        state: _State | None = link.state
        if state is None or state.connection.closed:
            return
        address = topics.parse(topic)  # authorize() let it through: it parses (cached)
        if not self.receiver.receive(state.connection, payload, state.connection.send, address):
            self._bad(state)

    def refused(self, link: Link, topic: str) -> None:
        state: _State | None = link.state
        client = link.identity
        log.warning("refused %s a publish to %s", getattr(client, "id", "?"), topic)
        if state is not None:
            detail = f"{state.client.id} may not publish to {topic}"
            self.receiver.refuse(state.connection, state.connection.send, 403, detail)
            self._bad(state)

    def _bad(self, state: _State) -> None:
        if state.bad.count():
            log.warning("disconnecting MQTT client %s: too many bad messages", state.client.id)
            self._spawn(state, self._disconnect_later(state))

    async def _disconnect_later(self, state: _State) -> None:
        await asyncio.sleep(0.05)  # let the last error response go out
        await state.link.disconnect()

    # -- to clients --------------------------------------------------------------------------

    def _spawn(self, state: _State, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        state.tasks.add(task)
        task.add_done_callback(state.tasks.discard)

    async def _write(self, state: _State, connection: Connection) -> None:
        client_id = state.client.id

        async def send(seq: int | None, message: Any) -> None:
            if seq is not None:
                sent = self._notification(message)
                if sent is not None:
                    await self._send(state, sent[0], sent[1], 0)
            elif isinstance(message, Message) and message.message_type == REQUEST:
                topic = topics.agent_requests(client_id)
                await self._send(state, topic, self._encoded.envelope(message), state.requests_qos)
            else:
                await self._respond(client_id, self._encoded.envelope(message))

        async def end(reason: str) -> None:
            if reason in QUIET:
                return
            if reason != OVERFLOW:  # removed, changed
                log.info("MQTT client %s disconnected: %s", client_id, reason)
            await state.link.disconnect()

        try:
            await pump(connection, send, end)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("writing to MQTT client %s failed", client_id)
            await state.link.disconnect()

    async def _respond(self, client_id: str, payload: bytes) -> None:
        """A response (or error) for a client goes to every connection of that client
        that subscribes to its response topic, not only to the one that asked: the
        usual `mosquitto_sub` in one terminal and `mosquitto_pub` in another."""
        topic = topics.client_responses(client_id)
        listeners = [
            (state, qos)
            for state in list(self._states)
            if state.client.id == client_id and (qos := state.responses_qos) is not None
        ]
        if not listeners:
            log.debug("no connection of %s subscribes to its responses; dropped", client_id)
        for state, qos in listeners:
            await self._send(state, topic, payload, qos)

    async def _send(
        self, state: _State, topic: str, payload: bytes, qos: int, retain: bool = False
    ) -> None:
        if qos == 0:
            await state.link.publish(topic, payload, 0, retain)
            return
        # QoS 1: keep up to 64 in flight rather than wait for each PUBACK in turn.
        await state.window.acquire()
        task = asyncio.create_task(state.link.publish(topic, payload, qos, retain))
        state.tasks.add(task)

        def done(task: asyncio.Task[Any]) -> None:
            state.tasks.discard(task)
            state.window.release()
            if not task.cancelled() and task.exception() is not None:
                log.info("publish to %s failed: %r", state.client.id, task.exception())

        task.add_done_callback(done)

    def _notification(self, message: Message) -> tuple[str, bytes] | None:
        thing_id = message.required_thing_id()  # the twin's notifications all name one
        if message.operation == ops.OBSERVE_PROPERTY:
            topic = topics.twin_property(thing_id, message.required_name())
            return topic, self._encoded.value(message)
        if message.operation == ops.SUBSCRIBE_EVENT:
            topic = topics.twin_event(thing_id, message.required_name())
            return topic, self._encoded.value(message)
        if message.operation == ops.UPDATE_THING:
            td = self.router.twin_td(thing_id)
            return topics.twin_td(thing_id), orjson.dumps(td) if td is not None else b""
        if message.operation == ops.DELETE_THING:
            return topics.twin_td(thing_id), b""
        return None

    async def _send_retained(self, state: _State, plan: _Plan, qos: int) -> None:
        """The twin's latest values for a new subscription, as retained messages."""
        for kind, thing, name in plan.twin:
            if thing is None:
                continue  # filters over every Thing get live values only
            try:
                if kind == PROPERTY:
                    values = self.router.read_all_properties(thing)
                    for prop, entry in values.items():
                        if (name is None or prop == name) and "value" in entry:
                            payload = orjson.dumps(entry["value"])
                            topic = topics.twin_property(thing, prop)
                            await self._send(state, topic, payload, qos, retain=True)
                elif kind == DIRECTORY:
                    td = self.router.twin_td(thing)
                    if td is not None:
                        await self._send(
                            state, topics.twin_td(thing), orjson.dumps(td), qos, retain=True
                        )
            except Problem:
                continue


def _session_id(client_id: str, mqtt_id: str) -> str:
    """The broker session of a connection: under the client's own id, so no client can
    take over another's session whatever MQTT client id it sends. ``client`` and
    ``client/anything`` stay as they are (several connections of one client); an empty
    id (which amqtt replaces with ``amqtt/<random>``) becomes ``client/<random>``; any
    other id (``mosq-…`` from mosquitto_sub) is kept after ``client/``."""
    if mqtt_id == client_id or mqtt_id.startswith(client_id + "/"):
        return mqtt_id
    if not mqtt_id or mqtt_id.startswith(_GENERATED_ID):
        return f"{client_id}/{secrets.token_hex(6)}"
    return f"{client_id}/{mqtt_id}"
