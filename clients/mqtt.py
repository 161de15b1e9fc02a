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
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import ssl
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import orjson
import paho.mqtt.client as mqtt

from vocabulary.channels import MQTT as topics

from .errors import (
    ClientError,
    Disconnected,
    HubTimeout,
    HubUnreachable,
    hub_error,
    refused,
)

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
        if parts.scheme == "mqtts":
            context = ssl.create_default_context(cadata=ca_pem.decode() if ca_pem else None)
            if certfile:
                context.load_cert_chain(certfile, keyfile)
            self._paho.tls_set_context(context)
        secret = token or password
        if secret is not None:
            self._paho.username_pw_set(client_id, secret)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected: asyncio.Future[int] | None = None
        self._subacks: dict[int, asyncio.Future[int]] = {}
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._queues: dict[str, list[asyncio.Queue[tuple[str, Any]]]] = {}
        self._requests: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._responses: asyncio.Queue[dict[str, Any]] = asyncio.Queue()  # uncorrelated
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

    async def _keep(self) -> None:
        """Paho's timers (keep-alive pings, retries), and reconnects: each broker once,
        then again after a growing delay."""
        delay = 0.5
        while not self._closing:
            await asyncio.sleep(1.0)  # paho's loop_misc wants calling about once a second
            if self._paho.loop_misc() == mqtt.MQTT_ERR_SUCCESS and self._paho.is_connected():
                delay = 0.5
                continue
            if self._paho.is_connected() or self._closing:
                continue
            if await self._reconnect():
                continue
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

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

    async def _resubscribe(self) -> None:
        """The subscriptions again, then (an agent) hello once the broker confirmed them."""
        await asyncio.gather(
            *(self.subscribe(f, qos) for f, qos in list(self._subscriptions.items())),
            return_exceptions=True,  # a refusal or a timeout; the others still count
        )
        if self.agent:
            self.hello()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        self._soon(self._suback, mid, reason_codes[0].value)

    def _suback(self, mid: int, code: int) -> None:
        future = self._subacks.pop(mid, None)
        if future is not None and not future.done():
            future.set_result(code)

    def _on_message(self, client, userdata, message) -> None:
        self._soon(self._deliver, message.topic, bytes(message.payload))

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

    def _deliver(self, topic: str, payload: bytes) -> None:
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
                self._responses.put_nowait(data)
            return
        for topic_filter, queues in self._queues.items():
            if topics.matches(topic, topic_filter):
                for queue in queues:
                    queue.put_nowait((topic, data))

    # -- connecting --------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._paho.is_connected()

    async def connect(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._connected = self._loop.create_future()
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
        input: Any = None, **fields: Any,
    ) -> dict[str, Any]:  # fmt: skip
        """Send a request; returns the first response (an error response raises)."""
        message: dict[str, Any] = {"messageType": "request", "operation": operation, **fields}
        if thing_id is not None:
            message["thingID"] = thing_id
        if name is not None:
            message["name"] = name
        if input is not None:
            message["input"] = input
        response = await self._ask(topics.client_requests(self.client_id), message)
        if response.get("error"):
            raise hub_error(response["error"], response=response)
        return response

    def observe_property(
        self, thing_id: str, name: str | None = None
    ) -> AsyncIterator[tuple[str, Any]]:
        """(topic, value) each time the property changes, the latest (retained) value
        first; every property of the Thing when ``name`` is None."""
        return self._notifications(thing_id, topics.PROP, name)

    def subscribe_event(
        self, thing_id: str, name: str | None = None
    ) -> AsyncIterator[tuple[str, Any]]:
        """(topic, data) each time the device reports the event; every event of the
        Thing when ``name`` is None."""
        return self._notifications(thing_id, topics.EVENT, name)

    async def _notifications(
        self, thing_id: str, family: str, name: str | None
    ) -> AsyncIterator[tuple[str, Any]]:
        level = "+" if name is None else topics.encode(name)
        topic_filter = f"wot/twin/{topics.encode(thing_id)}/{family}/{level}"
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._queues.setdefault(topic_filter, []).append(queue)
        try:
            await self.subscribe(topic_filter, 0)
            while True:
                yield await queue.get()
        finally:
            self._queues[topic_filter].remove(queue)
            if not self._queues[topic_filter]:
                del self._queues[topic_filter]
                self._subscriptions.pop(topic_filter, None)
                self._paho.unsubscribe(topic_filter)

    async def _ask(self, topic: str, message: dict[str, Any]) -> dict[str, Any]:
        assert self._loop is not None, "connect first"
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
