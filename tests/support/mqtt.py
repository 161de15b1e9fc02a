"""paho-mqtt, the third-party MQTT client the tests use against the hub's broker."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import ssl
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt

from tests.waiting import until


class Paho:
    """A paho-mqtt 2.x client on its own network thread; messages land in a queue."""

    def __init__(
        self,
        port: int,
        ca_pem: bytes,
        client_id: str,
        *,
        username=None,
        password=None,
        certfile=None,
        keyfile=None,
        tls=True,
        clean_session=True,
    ):
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            clean_session=clean_session,
        )
        if tls:
            context = ssl.create_default_context(cadata=ca_pem.decode())
            if certfile:
                context.load_cert_chain(certfile, keyfile)
            self.client.tls_set_context(context)
        if username is not None or password is not None:
            self.client.username_pw_set(username, password)
        self.port = port
        self.messages: queue.Queue = queue.Queue()
        self.connack: int | None = None
        self.session_present: bool | None = None
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.subacks: dict[int, list[int]] = {}
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, m.payload, m.retain))
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = lambda *a: self.disconnected.set()

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self.connack = reason_code.value
        self.session_present = flags.session_present
        self.connected.set()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        self.subacks[mid] = [code.value for code in reason_codes]

    async def connect(self, timeout: float = 10.0) -> int:
        self.client.connect_async("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        await until(self.connected.is_set, timeout)
        return self.connack

    async def subscribe(self, topic_filter: str, qos: int = 1) -> int:
        _, mid = self.client.subscribe(topic_filter, qos)
        await until(lambda: mid in self.subacks)
        return self.subacks[mid][0]

    def publish(self, topic: str, payload, qos: int = 1, retain: bool = False):
        if not isinstance(payload, bytes | str):
            import orjson

            payload = orjson.dumps(payload)
        return self.client.publish(topic, payload, qos, retain)

    async def next(self, topic: str | None = None, timeout: float = 10.0):
        """The next message (on ``topic`` if given; others before it are skipped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                item = self.messages.get_nowait()
            except queue.Empty:
                await asyncio.sleep(0.01)
                continue
            if topic is None or item[0] == topic:
                return item
        raise TimeoutError(f"no message on {topic or 'any topic'} within {timeout} s")

    async def before(self, topic: str, marker: Callable[[bytes], bool], timeout: float = 10.0):
        """Every message that came before the marker (the first message on ``topic`` whose
        payload ``marker`` accepts), in order: a barrier to prove what did not arrive."""
        seen = []
        async with asyncio.timeout(timeout):
            while True:
                try:
                    item = self.messages.get_nowait()
                except queue.Empty:
                    await asyncio.sleep(0.01)
                    continue
                if item[0] == topic and marker(item[1]):
                    return seen
                seen.append(item)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()
        self.client.loop_stop()
