"""The Python client for the hub's MQTT binding: an agent or a consumer.

Built on paho-mqtt 2.x, the client MQTT users already use (TLS, QoS and the broker
interop are well tried), driven by the asyncio loop through paho's external-loop API:
its socket is watched by the loop (epoll), not by a thread of its own with select(),
so one process can hold thousands of clients (select() fails past file descriptor
1024) and every callback runs on the loop. A lost connection is reconnected, with a
growing delay, and the subscriptions are made again. Given several URLs (the nodes of a
hub cluster, docs/cluster.md), a reconnect tries each in turn, the next one first when
the current one does not answer.
TLS trusts the hub CA; credentials are the client id with its password or a token (as
the MQTT password), or a client certificate the hub issued. An agent (``agent=True``)
connects with ``clean_session`` false, subscribes to its request topic at QoS 1 and then
says hello (an empty publish on ``wot/agent/{id}/hello``), on every (re)connect: the hub
sends it requests, those queued while it was away first, only once it said hello
(docs/mqtt.md), and the broker keeps the subscription while it is away.

    client = MqttClient("mqtts://hub.local:8883", "lamp-agent", password="...",
                        ca_pem=open("ca.pem", "rb").read(), agent=True)
    await client.connect()
    await client.update_thing(td)                      # agent
    client.report_property(thing_id, "level", 42)
    async for request in client.requests(): ...        # agent: invokeaction / writeproperty
        client.answer(request, output=...)
    response = await client.request("invokeaction", thing_id, "fade", 30)   # consumer
    async for topic, value in client.observe_property(thing_id, "level"): ...   # consumer
    await client.close()

Errors are those of clients/errors.py: a hub that cannot be reached (or sends no
CONNACK in time) raises ``HubUnreachable``; refused credentials ``Unauthorized``; an
error response or a refused subscription ``HubError`` (``Forbidden`` for the latter); no
connection ``Disconnected``; no response in time ``HubTimeout``.

The credentials are the client's ``Session`` (clients/session.py; ``session=`` shares one
with the client's other connections): each reconnect sends its password, else its
current token. When the hub refuses them at a reconnect, the session renews the token
(refresh, else a new login); when it cannot, the session has ended: the client stops
reconnecting, and requests raise its ``Unauthorized``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import orjson
import paho.mqtt.client as mqtt

from vocabulary.channels import MQTT as topics
from vocabulary.envelope import ABSENT

from .backoff import Backoff
from .errors import (
    ClientError,
    Disconnected,
    HubTimeout,
    HubUnreachable,
    Unauthorized,
    hub_error,
    refused,
)
from .results import FinalResponses
from .session import Session

log = logging.getLogger("wothub.mqtt.client")
# The old name of clients/errors.py's base class, kept for one release.
MqttError = ClientError
# CONNACK codes that refuse the credentials: bad user name or password, not authorized
# (MQTT 3.1.1's 4 and 5, which paho 2 reports as MQTT 5's 0x86 and 0x87).
_CREDENTIALS_REFUSED = frozenset({4, 5, 0x86, 0x87})
_SEEN_REQUESTS = 10_000  # correlation ids an agent remembers, to drop a request sent again


class MqttClient:
    def __init__(
        self,
        url: str | Sequence[str],
        client_id: str,
        *,
        password: str | None = None,
        token: str | None = None,
        ca_pem: bytes | None = None,
        certfile: str | None = None,
        keyfile: str | None = None,
        timeout: float = 10.0,
        session_suffix: str | None = None,
        agent: bool = False,
        session: Session | None = None,
    ) -> None:
        urls = [url] if isinstance(url, str) else list(url)
        schemes = {urlsplit(u).scheme for u in urls}
        if not urls or not schemes <= {"mqtts", "mqtt"} or len(schemes) != 1:
            raise ValueError(f"MQTT URLs are mqtts://host:port (all alike), not {url!r}")
        parts = urlsplit(urls[0])
        default_port = 8883 if parts.scheme == "mqtts" else 1883
        # Where it may connect: (host, port) of each URL, the first one first.
        self.brokers = [
            (urlsplit(u).hostname or "127.0.0.1", urlsplit(u).port or default_port) for u in urls
        ]
        self.host, self.port = self.brokers[0]
        self.client_id = client_id
        self.timeout = timeout
        # The hub accepts only the client's own MQTT ids: its id as one topic level,
        # alone or followed by "/..." (docs/mqtt.md).
        mqtt_id = topics.encode(client_id)
        if session_suffix is not None:
            mqtt_id = f"{mqtt_id}/{session_suffix}"
        self._paho = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=mqtt_id,
            protocol=mqtt.MQTTv311,
            clean_session=not agent,
        )
        self.agent = agent
        # Called (a coroutine awaited) after each reconnect, once subscribed again.
        self.on_reconnect: Callable[[], Any] | None = None
        if parts.scheme == "mqtts":
            context = ssl.create_default_context(cadata=ca_pem.decode() if ca_pem else None)
            if certfile:
                context.load_cert_chain(certfile, keyfile)
            self._paho.tls_set_context(context)
        if session is None:
            session = Session(client_id, password=password, token=token)
        self.session = session
        session.when_ended(self._end)
        self._sent: str | None = None  # the credential of the last attempt
        self._renewing: asyncio.Future[None] | None = None
        self._credentials()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected: asyncio.Future[int] | None = None
        self._subacks: dict[int, asyncio.Future[int]] = {}
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._queues: dict[str, list[asyncio.Queue[tuple[str, Any, bool] | None]]] = {}
        self._requests: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._responses: asyncio.Queue[dict[str, Any]] = asyncio.Queue()  # uncorrelated
        self._results = FinalResponses()  # the last response of each action or write
        self._ids = itertools.count(1)
        self._paho.on_connect = self._on_connect
        self._paho.on_subscribe = self._on_subscribe
        self._paho.on_message = self._on_message
        self._paho.on_socket_open = self._on_socket_open
        self._paho.on_socket_close = self._on_socket_close
        self._paho.on_socket_register_write = self._on_register_write
        self._paho.on_socket_unregister_write = self._on_unregister_write
        self._subscriptions: dict[str, int] = {}  # made again after a reconnect
        self._seen_requests: dict[str, None] = {}  # correlation ids, oldest first
        self._keeper: asyncio.Task[None] | None = None
        self._resubscribing: asyncio.Future[None] | None = None
        self._closing = False

    # -- paho on the asyncio loop ---------------------------------------------------------

    def _soon(self, callback: Any, *args: Any) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon(callback, *args)

    # Paho calls these on the loop, or on the worker thread of a connect (then handed
    # to the loop, in order). On close paho tells before it closes the socket, so the
    # loop stops watching it while it is still open.

    def _on_socket_open(self, client, userdata, sock) -> None:
        self._in_loop(self._watch, sock, self._loop_of().add_reader, self._readable)

    def _on_socket_close(self, client, userdata, sock) -> None:
        self._in_loop(self._loop_of().remove_reader, sock)
        self._in_loop(self._loop_of().remove_writer, sock)

    def _on_register_write(self, client, userdata, sock) -> None:
        self._in_loop(self._watch, sock, self._loop_of().add_writer, client.loop_write)

    def _on_unregister_write(self, client, userdata, sock) -> None:
        self._in_loop(self._loop_of().remove_writer, sock)

    def _watch(self, sock: Any, add: Any, callback: Any) -> None:
        if self._paho.socket() is sock:  # not closed since paho asked from its thread
            add(sock, callback)

    def _loop_of(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None
        return self._loop

    def _in_loop(self, call: Any, *args: Any) -> None:
        loop = self._loop_of()
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:  # a worker thread
            on_loop = False
        if on_loop:
            call(*args)
        elif not loop.is_closed():
            loop.call_soon_threadsafe(call, *args)

    def _readable(self) -> None:
        # Read until the TLS layer holds nothing more: epoll only sees the socket, and a
        # record with several MQTT packets would otherwise wait for the next one.
        while self._paho.loop_read() == mqtt.MQTT_ERR_SUCCESS:
            sock = self._paho.socket()
            if not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
                break

    async def _open_socket(self) -> None:
        """TCP and the TLS handshake block in paho's connect: on a worker thread."""
        assert self._loop is not None
        await self._loop.run_in_executor(None, self._paho.reconnect)

    def _credentials(self) -> None:
        """The session's credential for the next CONNECT (``Unauthorized`` once ended)."""
        self._sent = self.session.secret()
        if self._sent is not None:
            self._paho.username_pw_set(self.client_id, self._sent)

    async def _keep(self) -> None:
        """Paho's timers (keep-alive pings, retries), and reconnects: each broker once,
        then again after a growing delay, with the session's credential of the moment."""
        backoff = Backoff(0.5, 30.0)
        while not self._closing:
            await asyncio.sleep(1.0)  # paho's loop_misc wants calling about once a second
            if self._paho.loop_misc() == mqtt.MQTT_ERR_SUCCESS and self._paho.is_connected():
                backoff.reset()
                continue
            if self._paho.is_connected() or self._closing:
                continue
            try:
                if self._renewing is not None:  # the hub refused the last credential
                    await self._renewing
                self._credentials()
            except Unauthorized:
                self._end()
                return
            if await self._reconnect():
                continue
            await self.session.pause(backoff)

    async def _renew(self, stale: str | None) -> None:
        """The hub refused ``stale`` at a reconnect: the session renews it, or ends."""
        try:
            await self.session.renew(stale)
        except Unauthorized:
            self._end()
        except ClientError as exc:  # HTTPS is away too: the next refusal asks again
            log.info("renewing the credentials of %s failed: %s", self.client_id, exc)

    def _end(self) -> None:
        """The session has ended: no more reconnects; waiting requests raise why."""
        self._closing = True
        error = self.session.ended or refused(401, "the hub refused the credentials")
        for future in list(self._waiting.values()) + list(self._subacks.values()):
            if not future.done():
                future.set_exception(error)
        with contextlib.suppress(Exception):
            self._paho.disconnect()

    async def _reconnect(self) -> bool:
        """Open a socket to the current broker, else to each next one in turn; whether
        one opened (its CONNACK follows)."""
        for _ in self.brokers:
            try:
                await self._open_socket()
                return True
            except (OSError, ssl.SSLError):
                if len(self.brokers) == 1 or self._closing:
                    return False
                index = (self.brokers.index((self.host, self.port)) + 1) % len(self.brokers)
                self.host, self.port = self.brokers[index]
                self._paho.connect_async(self.host, self.port, keepalive=30)
        return False

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self._soon(self._connack, reason_code.value)

    def _connack(self, code: int) -> None:
        if self._connected is not None and not self._connected.done():
            self._connected.set_result(code)
        elif code == 0:  # a reconnect: a clean session forgot the subscriptions
            self._resubscribing = asyncio.ensure_future(self._resubscribe())
        elif code in _CREDENTIALS_REFUSED:
            self._renewing = asyncio.ensure_future(self._renew(self._sent))

    async def _resubscribe(self) -> None:
        """The subscriptions again, then (an agent) hello once the broker confirmed them."""
        await asyncio.gather(
            *(self.subscribe(f, qos) for f, qos in list(self._subscriptions.items())),
            return_exceptions=True,  # a refusal or a timeout; the others still count
        )
        if self.agent:
            self.hello()
        if self.on_reconnect is not None:
            result = self.on_reconnect()
            if asyncio.iscoroutine(result):
                await result

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        self._soon(self._suback, mid, reason_codes[0].value)

    def _suback(self, mid: int, code: int) -> None:
        future = self._subacks.pop(mid, None)
        if future is not None and not future.done():
            future.set_result(code)

    def _on_message(self, client, userdata, message) -> None:
        self._soon(self._deliver, message.topic, bytes(message.payload), bool(message.retain))

    def _first_time(self, request: Any) -> bool:
        """Whether this request was not handed over already. QoS 1 is at least once: a
        broker that takes over a session (another node of a cluster, after its node
        died) sends again what the dead one sent, unless it saw the PUBACK."""
        key = request.get("correlationID") if isinstance(request, dict) else None
        if not isinstance(key, str):
            return True
        if key in self._seen_requests:
            return False
        self._seen_requests[key] = None
        if len(self._seen_requests) > _SEEN_REQUESTS:
            del self._seen_requests[next(iter(self._seen_requests))]  # the oldest
        return True

    def _deliver(self, topic: str, payload: bytes, retained: bool = False) -> None:
        try:
            data = orjson.loads(payload) if payload else None
        except orjson.JSONDecodeError:
            return
        if topic == topics.agent_requests(self.client_id):
            if not self._first_time(data):
                return
            self._requests.put_nowait(data)
            return
        if topic == topics.client_responses(self.client_id):
            future = self._waiting.pop(str(data.get("correlationID")), None)
            if future is not None and not future.done():
                future.set_result(data)
            else:
                self._results.record(data)
                self._responses.put_nowait(data)
            return
        for topic_filter, queues in self._queues.items():
            if topics.matches(topic, topic_filter):
                for queue in queues:
                    queue.put_nowait((topic, data, retained))

    # -- connecting --------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._paho.is_connected()

    async def connect(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._connected = self._loop.create_future()
        self._credentials()
        self._paho.connect_async(self.host, self.port, keepalive=30)
        url = f"{self.host}:{self.port}"
        try:
            async with asyncio.timeout(self.timeout):
                await self._open_socket()
                code = await self._connected
        except TimeoutError:
            await self.close()
            raise HubUnreachable(url, "no CONNACK in time") from None
        except ssl.SSLCertVerificationError as exc:
            await self.close()
            raise HubUnreachable(url, str(exc), tls=True) from None
        except (OSError, ssl.SSLError) as exc:
            await self.close()
            raise HubUnreachable(url, str(exc)) from None
        if code in _CREDENTIALS_REFUSED:
            await self.close()
            raise refused(401, f"{url} refused the credentials (CONNACK {code})")
        if code != 0:
            await self.close()
            raise HubUnreachable(url, f"connection refused (CONNACK {code})")
        self._keeper = asyncio.create_task(self._keep())
        await self.subscribe(topics.client_responses(self.client_id), 1)
        if self.agent:
            await self.subscribe(topics.agent_requests(self.client_id), 1)
            self.hello()

    async def close(self) -> None:
        self._closing = True
        if self._resubscribing is not None:
            self._resubscribing.cancel()
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
        with contextlib.suppress(Exception):
            self._paho.disconnect()  # sends DISCONNECT when it can, then closes
            self._paho.loop_write()
        with contextlib.suppress(Exception):
            self._paho._reset_sockets()  # the socket is closed even if DISCONNECT was not sent

    async def subscribe(self, topic_filter: str, qos: int = 0) -> int:
        """Subscribe; returns the granted QoS (``Forbidden`` when refused)."""
        assert self._loop is not None, "connect first"
        result, mid = self._paho.subscribe(topic_filter, qos)
        self._subscriptions[topic_filter] = qos
        if result != mqtt.MQTT_ERR_SUCCESS:
            raise Disconnected(f"subscribe failed: {mqtt.error_string(result)}")
        future = self._loop.create_future()
        self._subacks[mid] = future
        code = await self._answer(future, f"no SUBACK for {topic_filter}")
        if code >= 0x80:
            raise refused(403, f"subscription to {topic_filter} refused")
        return code

    def _publish(self, topic: str, message: dict[str, Any], qos: int = 1) -> None:
        self._paho.publish(topic, orjson.dumps(message), qos)

    # -- agent --------------------------------------------------------------------------

    def hello(self) -> None:
        """Tell the hub this agent is subscribed to its requests: those queued for it
        follow (``connect`` and every reconnect do this for an agent)."""
        self._paho.publish(topics.agent(self.client_id, topics.HELLO), b"", 1)

    async def update_thing(self, td: dict[str, Any]) -> dict[str, Any]:
        """Register or replace a TD; returns {"id", "created"}."""
        response = await self._ask(
            topics.agent_topic(self.client_id, topics.TD, td.get("id")),
            {"messageType": "request", "operation": "updatething", "input": td},
        )
        if response.get("error"):
            raise hub_error(response["error"], response=response)
        return response["output"]

    register = update_thing  # the old name, kept for one release

    def report_property(self, thing_id: str, name: str, value: Any) -> None:
        topic = topics.agent_topic(self.client_id, topics.PROP, thing_id, name)
        self._publish(topic, {"value": value}, 0)

    def report_event(self, thing_id: str, name: str, value: Any = None) -> None:
        topic = topics.agent_topic(self.client_id, topics.EVENT, thing_id, name)
        self._publish(topic, {"value": value}, 0)

    async def requests(self) -> AsyncIterator[dict[str, Any]]:
        """Requests for this agent's Things (those queued while it was away first)."""
        if topics.agent_requests(self.client_id) not in self._subscriptions:
            await self.subscribe(topics.agent_requests(self.client_id), 1)
            self.hello()
        while True:
            yield await self._requests.get()

    def answer(
        self,
        request: dict[str, Any],
        *,
        output: Any = None,
        status: str = "completed",
        error: dict[str, Any] | None = None,
    ) -> None:
        message = {
            "messageType": "response",
            "operation": request["operation"],
            "thingID": request["thingID"],
            "correlationID": request["correlationID"],
            "status": status,
        }
        if request.get("name"):
            message["name"] = request["name"]
        if error is not None:
            message["error"] = error
        elif output is not None:
            message["output"] = output
        self._publish(topics.agent_topic(self.client_id, topics.RESP), message)

    # -- consumer -------------------------------------------------------------------------

    async def request(
        self, operation: str, thing_id: str | None = None, name: str | None = None,
        input: Any = ABSENT, **fields: Any,
    ) -> dict[str, Any]:  # fmt: skip
        """Send a request; returns the first response (an error response raises)."""
        message: dict[str, Any] = {"messageType": "request", "operation": operation, **fields}
        if thing_id is not None:
            message["thingID"] = thing_id
        if name is not None:
            message["name"] = name
        if input is not ABSENT:
            message["input"] = input
        response = await self._ask(topics.client_requests(self.client_id), message)
        if response.get("error"):
            raise hub_error(response["error"], response=response)
        return response

    def observe_property(
        self, thing_id: str, name: str | None = None, *, retained: bool = True
    ) -> TwinStream:
        """(topic, value) each time the property changes, the latest (retained) value
        first unless ``retained`` is False; every property of the Thing when ``name``
        is None."""
        return TwinStream(self, _twin_filter(thing_id, topics.PROP, name), retained)

    def subscribe_event(self, thing_id: str, name: str | None = None) -> TwinStream:
        """(topic, data) each time the device reports the event; every event of the
        Thing when ``name`` is None."""
        return TwinStream(self, _twin_filter(thing_id, topics.EVENT, name), retained=False)

    async def action_result(
        self, action_id: str, *, timeout: float | None = None
    ) -> dict[str, Any]:
        """The last response (completed, failed, expired or cancelled) of an action or
        write this client asked for, within ``timeout`` (the client's by default)."""
        timeout = self.timeout if timeout is None else timeout
        try:
            return await self._results.wait(action_id, timeout)
        except TimeoutError:
            raise HubTimeout(f"action {action_id} did not end in {timeout} s") from None

    async def _ask(self, topic: str, message: dict[str, Any]) -> dict[str, Any]:
        assert self._loop is not None, "connect first"
        self.session.check()
        correlation = message.setdefault("correlationID", f"{self.client_id}-{next(self._ids)}")
        future = self._loop.create_future()
        self._waiting[correlation] = future
        self._publish(topic, message)
        try:
            operation = message.get("operation")
            return await self._answer(future, f"no response to {operation} in {self.timeout} s")
        finally:
            self._waiting.pop(correlation, None)

    async def _answer(self, future: asyncio.Future[Any], late: str) -> Any:
        """``future``'s result within the client's timeout, else ``HubTimeout(late)``."""
        try:
            async with asyncio.timeout(self.timeout):
                return await future
        except TimeoutError:
            raise HubTimeout(late) from None


class TwinStream:
    """(topic, value) of the twin topics one filter matches, as an async iterator.
    ``open`` subscribes (the first iteration does otherwise) and returns once the
    broker confirmed it; ``retained=False`` leaves out the retained value the broker
    sends on subscribing (MQTT sets the retain flag on that one only)."""

    def __init__(self, client: MqttClient, topic_filter: str, retained: bool = True) -> None:
        self._client = client
        self.topic_filter = topic_filter
        self._retained = retained
        self._queue: asyncio.Queue[tuple[str, Any, bool] | None] | None = None
        self._closed = False

    def __aiter__(self) -> TwinStream:
        return self

    async def open(self) -> None:
        if self._queue is not None or self._closed:
            return
        self._queue = asyncio.Queue()
        self._client._queues.setdefault(self.topic_filter, []).append(self._queue)
        try:
            await self._client.subscribe(self.topic_filter, 0)
        except BaseException:
            await self.aclose()
            raise

    async def __anext__(self) -> tuple[str, Any]:
        await self.open()
        if self._closed or self._queue is None:
            raise StopAsyncIteration
        queue = self._queue
        while True:
            item = await queue.get()
            if item is None:  # closed meanwhile
                raise StopAsyncIteration
            topic, value, retained = item
            if self._retained or not retained:
                return topic, value

    async def aclose(self) -> None:
        self._closed = True
        queue, self._queue = self._queue, None
        if queue is not None:
            queue.put_nowait(None)  # wakes a reader waiting for the next one
        client, topic_filter = self._client, self.topic_filter
        queues = client._queues.get(topic_filter)
        if queue is None or queues is None or queue not in queues:
            return
        queues.remove(queue)
        if not queues:  # the last one: the broker need not send them any more
            del client._queues[topic_filter]
            client._subscriptions.pop(topic_filter, None)
            with contextlib.suppress(Exception):
                client._paho.unsubscribe(topic_filter)


def _twin_filter(thing_id: str, family: str, name: str | None) -> str:
    level = "+" if name is None else topics.encode(name)
    return f"wot/twin/{topics.encode(thing_id)}/{family}/{level}"
