"""The embedded MQTT broker (amqtt 0.12), behind a small interface.

The binding (server.py) only sees ``EmbeddedBroker`` and the ``BrokerHooks`` it
implements: start / stop, per-connection ``Link`` objects to publish to one client or
disconnect it, and hooks for authenticate, authorize (publish / subscribe / receive),
message, subscribed, unsubscribed, connected and disconnected. A faster broker can
replace amqtt by calling the same hooks.

How amqtt is used and where it is extended (``WotBroker``):

- Plugins, configured programmatically: ``HubAuthPlugin`` (an amqtt auth plugin) asks
  the hub's AuthService through the hooks; ``HubTopicPlugin`` (an amqtt topic-checking
  plugin) answers SUBSCRIBE / PUBLISH / RECEIVE with the hub's rules; ``HubEventPlugin``
  (amqtt broker events) tells the binding about connects and (un)subscriptions.
- amqtt runs the auth plugins only after it has looked up, and for a clean session
  deleted, the session of the client id in CONNECT, and a refused connection still
  takes over a connected session of that id: an unauthenticated client could kick any
  client off. ``WotBroker`` authenticates right after reading CONNECT, before any
  session is touched.
- amqtt exposes the TLS peer certificate (``session.ssl_object``), so client
  certificates need nothing more.
- Messages published by clients are never broadcast by the broker: each goes to the
  binding, which routes it through the hub's router; the hub publishes to each client
  itself (``Link.publish``). The broker's own broadcast (e.g. wills) is refused by the
  RECEIVE check, and its retained store is not used (the twin is the retained store).
- amqtt reads a whole packet before anyone can look at it (up to MQTT's 256 MB); the
  reader is wrapped so that a packet larger than ``cutoff_bytes`` ends the connection
  before its body is read.
- The TLS context is the hub CA's (``ssl_context_for_server``), not one amqtt builds.
- A connection must finish its TLS handshake within ``connect_timeout`` seconds and then
  send CONNECT within ``connect_timeout`` seconds, or it is closed (amqtt would wait for
  CONNECT for ever). At most ``max_connections`` connections are open at once, those
  not authenticated yet included; one more is closed at once (amqtt's own cap would
  hold it, waiting, instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import math
import ssl
import time
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

from amqtt.adapters import StreamReaderAdapter, StreamWriterAdapter
from amqtt.broker import Broker
from amqtt.contexts import Action, ListenerType
from amqtt.errors import AMQTTError, MQTTError, NoDataError
from amqtt.mqtt.connack import BAD_USERNAME_PASSWORD, ConnackPacket
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.plugins.base import BaseAuthPlugin, BasePlugin, BaseTopicPlugin
from amqtt.session import Session

log = logging.getLogger("wothub.mqtt.broker")

PUBLISH, SUBSCRIBE, RECEIVE = "publish", "subscribe", "receive"
_ACTIONS = {Action.PUBLISH: PUBLISH, Action.SUBSCRIBE: SUBSCRIBE, Action.RECEIVE: RECEIVE}


class Refused(Exception):
    """Raised by ``BrokerHooks.authenticate``: ``code`` 4 (bad credentials) or 2 (bad
    client id)."""

    def __init__(self, reason: str, code: int = BAD_USERNAME_PASSWORD) -> None:
        super().__init__(reason)
        self.code = code


class Link:
    """One client connection as the binding sees it."""

    def __init__(self, broker: WotBroker, session: Session, peer: str) -> None:
        self.broker = broker
        self.session = session
        self.peer = peer
        self.handler: BrokerProtocolHandler | None = None
        self.identity: Any = None  # what BrokerHooks.authenticate returned
        self.refusal: Refused | None = None
        self.authenticated = False
        self.started = False
        self.closed = False
        self.state: Any = None  # the binding's per-connection state

    @property
    def mqtt_client_id(self) -> str:
        return self.session.client_id or ""

    async def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False):
        """Send one PUBLISH to this client (for QoS 1, returns once it is acknowledged)."""
        if self.closed or self.handler is None:
            return
        await self.handler.mqtt_publish(topic, payload, qos, retain)

    async def disconnect(self) -> None:
        """Close the network connection (the client sees it drop)."""
        if self.closed:
            return
        self.closed = True
        handler = self.handler
        if handler is not None and handler.writer is not None:
            with contextlib.suppress(Exception):
                await handler.writer.close()

    def __repr__(self) -> str:
        return f"<mqtt link {self.mqtt_client_id!r} from {self.peer}>"


class BrokerHooks(Protocol):
    """What the broker asks of the hub; every method but ``authenticate`` is called
    after the client is authenticated. Exceptions are logged, never raised to amqtt."""

    async def authenticate(self, link: Link, username: str | None, password: str | None,
                           certificate_der: bytes | None) -> Any:  # fmt: skip
        """The client's identity, or raise Refused. May set ``link.session.client_id``
        (e.g. when the client sent none)."""

    def authorize(self, link: Link, action: str, topic: str) -> bool: ...
    def connected(self, link: Link) -> None: ...
    def message(self, link: Link, topic: str, payload: bytes) -> None: ...
    def refused(self, link: Link, topic: str) -> None: ...
    def subscribed(self, link: Link, topic_filter: str, qos: int) -> None: ...
    def unsubscribed(self, link: Link, topic_filter: str) -> None: ...
    def disconnected(self, link: Link) -> None: ...


_LINK: contextvars.ContextVar[Link | None] = contextvars.ContextVar(
    "wothub_mqtt_link", default=None
)


def _hooks() -> tuple[Link | None, BrokerHooks | None]:
    link = _LINK.get()
    return link, (link.broker.hooks if link is not None else None)


# -- amqtt plugins ---------------------------------------------------------------------------


class HubAuthPlugin(BaseAuthPlugin):
    """Authenticates through the hub (username = client id, password = its password or
    a token; or a client certificate). The result is kept on the connection's link, so
    amqtt's second call (after WotBroker's early one) costs nothing."""

    async def authenticate(self, *, session: Session) -> bool | None:
        link, hooks = _hooks()
        if link is None or hooks is None:
            return False
        if not link.authenticated and link.refusal is None:
            certificate = None
            ssl_object = session.ssl_object
            if ssl_object is not None:
                certificate = ssl_object.getpeercert(binary_form=True)
            try:
                link.identity = await hooks.authenticate(
                    link, session.username, session.password, certificate
                )
                link.authenticated = True
            except Refused as refused:
                link.refusal = refused
            except Exception as exc:  # a bug must not open the door
                log.exception("authenticating %r failed", session.client_id)
                link.refusal = Refused(str(exc))
        return link.authenticated


class HubTopicPlugin(BaseTopicPlugin):
    """SUBSCRIBE and PUBLISH by the hub's rules; RECEIVE (the broker's own fan-out) is
    never allowed: the hub sends each client what it may see itself."""

    async def topic_filtering(
        self, *, session: Session | None = None, topic: str | None = None, action: Any = None
    ) -> bool | None:
        link, hooks = _hooks()
        kind = _ACTIONS.get(action)
        if link is None or hooks is None or topic is None or kind is None or kind == RECEIVE:
            return False
        try:
            return bool(hooks.authorize(link, kind, topic))
        except Exception:
            log.exception("authorizing %s %s for %r failed", kind, topic, link)
            return False


class HubEventPlugin(BasePlugin):
    """Broker events to the binding: connected, subscribed, unsubscribed."""

    async def on_broker_client_connected(self, *, client_id: str, client_session: Session) -> None:
        link, hooks = _hooks()
        if link is not None and hooks is not None and not link.closed:
            link.broker.start_link(link)

    async def on_broker_client_subscribed(self, *, client_id: str, topic: str, qos: int) -> None:
        link, hooks = _hooks()
        if link is not None and hooks is not None and not link.closed:
            link.broker.start_link(link)
            _call(hooks.subscribed, link, topic, qos)

    async def on_broker_client_unsubscribed(self, *, client_id: str, topic: str) -> None:
        link, hooks = _hooks()
        if link is not None and hooks is not None and link.started:
            _call(hooks.unsubscribed, link, topic)


def _call(method: Callable[..., Any], *args: Any) -> Any:
    try:
        return method(*args)
    except Exception:
        log.exception("MQTT hook %s failed", getattr(method, "__name__", method))
        return None


# -- the broker --------------------------------------------------------------------------------

_PLUGINS: dict[str, dict[str, Any]] = {
    f"{__name__}.HubAuthPlugin": {},
    f"{__name__}.HubTopicPlugin": {},
    f"{__name__}.HubEventPlugin": {},
}


class PacketTooLarge(Exception):
    pass


class _LimitedReader(StreamReaderAdapter):
    """Refuses to read a packet body larger than ``limit`` (the connection ends)."""

    def __init__(self, reader: asyncio.StreamReader, limit: int, peer: str) -> None:
        super().__init__(reader)
        self._limit = limit
        self._peer = peer

    async def read(self, n: int = -1) -> bytes:
        if n > self._limit:
            log.warning(
                "closing MQTT connection from %s: a packet of %d bytes is over the limit of %d",
                self._peer,
                n,
                self._limit,
            )
            raise PacketTooLarge(n)
        return await super().read(n)


class WotBroker(Broker):
    def __init__(
        self,
        config: dict[str, Any],
        hooks: BrokerHooks,
        ssl_context: Callable[[], ssl.SSLContext],
        cutoff_bytes: int,
        plain_listeners: tuple[str, ...] = (),
        connect_timeout: float = 10.0,
        max_connections: int | None = None,
    ) -> None:
        super().__init__({**config, "plugins": dict(_PLUGINS)})
        self.hooks = hooks
        self._ssl_context = ssl_context
        self.cutoff_bytes = cutoff_bytes
        self.connect_timeout = connect_timeout
        self.max_connections = max_connections
        self.open_connections = 0  # every listener's, authenticated or not
        self.refused_connections = 0  # over max_connections, since the start
        self._refusal_logged = -math.inf  # when the last refusal was logged (monotonic)
        for name, listener in self.listeners_config.items():
            if name in plain_listeners:  # amqtt copies the default listener's TLS onto them
                listener.ssl = False
                listener.certfile = listener.keyfile = None
            if max_connections is not None:  # only for amqtt's log: we refuse before it
                listener.max_connections = max_connections

    def bound_port(self, listener: str) -> int:
        server = self._servers[listener].instance
        return server.sockets[0].getsockname()[1]

    def _create_ssl_context(self, listener: Any) -> ssl.SSLContext:  # type: ignore[override]
        return self._ssl_context()

    async def _create_server_instance(
        self,
        listener_name: str,
        listener_type: ListenerType,
        address: str | None,
        port: int,
        ssl_context: ssl.SSLContext | None,
    ) -> Any:
        """As amqtt's, with a deadline for the TLS handshake (asyncio's default: 60 s)."""
        if listener_type != ListenerType.TCP:
            return await super()._create_server_instance(
                listener_name, listener_type, address, port, ssl_context
            )
        return await asyncio.start_server(
            partial(self.stream_connected, listener_name=listener_name),
            address,
            port,
            reuse_address=True,
            ssl=ssl_context,
            ssl_handshake_timeout=self.connect_timeout if ssl_context is not None else None,
        )

    async def stream_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listener_name: str
    ) -> None:
        peer = writer.get_extra_info("peername")
        peer_text = f"{peer[0]}:{peer[1]}" if peer else "?"
        if self.max_connections is not None and self.open_connections >= self.max_connections:
            self._refuse(peer_text)
            writer.transport.abort()  # at once: a refused client gets nothing more
            return
        self.open_connections += 1
        try:
            await self._client_connected(
                listener_name,
                _LimitedReader(reader, self.cutoff_bytes, peer_text),
                StreamWriterAdapter(writer),
            )
        finally:
            self.open_connections -= 1

    def _refuse(self, peer: str) -> None:
        """Count a connection refused for the cap; warn at most every 10 seconds."""
        self.refused_connections += 1
        now = time.monotonic()
        if now - self._refusal_logged >= 10.0:
            log.warning(
                "MQTT connection from %s refused: %d connections are open, the limit "
                "([mqtt] max_connections); %d refused so far",
                peer,
                self.open_connections,
                self.refused_connections,
            )
            self._refusal_logged = now

    async def _client_connected(self, listener_name: str, reader: Any, writer: Any) -> None:
        try:
            await super()._client_connected(listener_name, reader, writer)
        except Exception:
            log.exception("MQTT connection handling failed")
        finally:
            link = _LINK.get()
            if link is not None:
                link.closed = True
                if link.started:
                    _call(self.hooks.disconnected, link)
            with contextlib.suppress(Exception):
                await writer.close()

    def start_link(self, link: Link) -> None:
        """Tell the binding a client is connected (once)."""
        if not link.started and link.authenticated and not link.closed:
            link.started = True
            _call(self.hooks.connected, link)

    async def _initialize_client_session(
        self, reader: Any, writer: Any, remote_address: str, remote_port: int
    ) -> tuple[BrokerProtocolHandler, Session]:
        """Read CONNECT and authenticate before any session of that client id is looked
        at (amqtt authenticates later, after deleting or taking over that session)."""
        try:
            async with asyncio.timeout(self.connect_timeout):
                handler, session = await BrokerProtocolHandler.init_from_connect(
                    reader, writer, self.plugins_manager
                )
        except TimeoutError:
            log.info(
                "closing MQTT connection from %s:%s: no CONNECT within %s s",
                remote_address,
                remote_port,
                self.connect_timeout,
            )
            with contextlib.suppress(Exception):
                await writer.close()
            raise AMQTTError("no CONNECT in time") from None
        except (AMQTTError, NoDataError) as exc:
            raise AMQTTError(exc) from exc
        except MQTTError as exc:
            with contextlib.suppress(Exception):
                await writer.close()
            raise MQTTError(exc) from exc
        except PacketTooLarge as exc:
            raise AMQTTError(f"CONNECT of {exc} bytes") from None
        link = Link(self, session, f"{remote_address}:{remote_port}")
        _LINK.set(link)
        if not await self._authenticate(session, None):  # runs HubAuthPlugin
            refusal = link.refusal or Refused("refused")
            log.warning("MQTT connection from %s refused: %s", link.peer, refusal)
            connack = ConnackPacket.build(0, refusal.code)
            with contextlib.suppress(Exception):
                await connack.to_stream(writer)
                await writer.close()
            raise MQTTError(f"refused: {refusal}")
        # From here on as amqtt does it (Broker._initialize_client_session).
        if session.clean_session:
            await self._delete_session(session.client_id)
            session.parent = 0
        elif session.client_id in self._sessions:
            existing, _ = self._sessions[session.client_id]
            for attribute in (
                "will_flag",
                "will_message",
                "will_topic",
                "will_qos",
                "keep_alive",
                "username",
                "password",
                "ssl_object",
            ):
                setattr(existing, attribute, getattr(session, attribute))
            session = existing
            session.parent = 1
            link.session = session
        else:
            session.parent = 0
        delay = self.config.get("timeout-disconnect-delay", 0)
        if session.keep_alive > 0 and isinstance(delay, int):
            session.keep_alive += delay
        link.handler = handler
        return handler, session

    async def _handle_message_delivery(
        self, client_session: Session, handler: BrokerProtocolHandler, wait_deliver: Any
    ) -> bool:
        """A client's PUBLISH: checked, then handed to the hub; never broadcast."""
        return await self._deliver(client_session, wait_deliver.result())

    async def _handle_disconnect(
        self, client_session: Session, handler: BrokerProtocolHandler, disconnect_waiter: Any
    ) -> None:
        """amqtt drops what a client published but the broker had not yet taken when its
        DISCONNECT arrives (a burst then a disconnect loses its tail): take it first."""
        queue = client_session.delivered_message_queue
        while not queue.empty():
            if not await self._deliver(client_session, queue.get_nowait()):
                break
        await super()._handle_disconnect(client_session, handler, disconnect_waiter)

    async def _deliver(self, client_session: Session, app_message: Any) -> bool:
        if app_message is None:
            return True
        link = _LINK.get()
        topic = app_message.topic
        if not topic or "#" in topic or "+" in topic or topic.startswith("$") or link is None:
            log.warning("closing %r: invalid topic %r in PUBLISH", link, topic)
            return False
        if not await self._topic_filtering(client_session, topic, Action.PUBLISH):
            _call(self.hooks.refused, link, topic)
        else:
            _call(self.hooks.message, link, topic, bytes(app_message.data))
        return not link.closed

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Session
    ) -> None:
        """Not used: the hub sends the twin's latest values itself on subscribe."""

    async def add_subscription(self, subscription: tuple[str, int], session: Session) -> int:
        qos = await super().add_subscription(subscription, session)
        if qos == 0x80:
            log.info("refused subscription of %r to %r", session.client_id, subscription[0])
        return qos
