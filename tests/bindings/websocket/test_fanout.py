"""Fan-out over many WebSocket connections, consumers that fall behind, and the hub
stopping. A real hub; consumers on the ``websockets`` library and aiohttp, and, for the
consumer that never reads, a minimal hand-written WebSocket client: the libraries keep
reading into their own buffers, while this one leaves the bytes in the socket, so TCP
flow control pushes back on the hub as a stalled device would."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
import time

import aiohttp
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from clients.websocket import WsClient
from tests.support.tds import thing_td
from tests.support.ws import ws_url
from tests.waiting import until

pytestmark = pytest.mark.timeout(120)

THING = "urn:dev:ops:sensor-1"
TD = thing_td(
    THING,
    "Sensor",
    properties={"blob": {"type": "string", "forms": [{"href": "https://s.local/blob"}]}},
    events={"tick": {"data": {"type": "integer"}, "forms": [{"href": "https://s.local/t"}]}},
)


def request(operation: str, name: str, correlation_id: str = "s") -> str:
    return json.dumps(
        {"messageType": "request", "operation": operation, "thingID": THING, "name": name,
         "correlationID": correlation_id}
    )  # fmt: skip


@pytest.fixture
def hub_options() -> dict:
    # 200 connections of one client: above the default max_connections_per_client.
    return {"max_connections_per_client": 250}


@pytest.fixture
async def sensor(running):
    token = running.add_client("sensor-agent", "agent", "agent")
    async with WsClient(ws_url(running), ca=running.ssl, token=token) as agent:
        await agent.register(TD)
        yield agent


async def test_200_consumers_get_every_event_in_order(running, sensor):
    token = running.add_client("vera")
    url, count, events = ws_url(running), 200, 20
    gate = asyncio.Semaphore(40)  # bounded handshakes at a time
    headers = {"Authorization": f"Bearer {token}"}

    async def open_one(index: int):
        async with gate:
            if index % 2:  # half on each library
                ws = await connect(
                    url, ssl=running.ssl, additional_headers=headers, open_timeout=30
                )
                await ws.send(request("subscribeevent", "tick"))
                reply = json.loads(await asyncio.wait_for(ws.recv(), 30))
            else:
                ws = await session.ws_connect(url, ssl=running.ssl, headers=headers)
                await ws.send_str(request("subscribeevent", "tick"))
                reply = json.loads((await ws.receive(timeout=30)).data)
            assert reply["status"] == "completed", reply
            return ws

    async def collect(ws) -> list[int]:
        values = []
        while len(values) < events:
            if isinstance(ws, aiohttp.ClientWebSocketResponse):
                message = json.loads((await ws.receive(timeout=30)).data)
            else:
                message = json.loads(await asyncio.wait_for(ws.recv(), 30))
            assert message["operation"] == "subscribeevent", message
            values.append(message["value"])
        return values

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        sockets = await asyncio.gather(*(open_one(i) for i in range(count)))
        try:
            readers = [asyncio.create_task(collect(ws)) for ws in sockets]
            for value in range(events):
                await sensor.report_event(THING, "tick", value)
            async with asyncio.timeout(60):
                received = await asyncio.gather(*readers)
        finally:
            await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    assert len(received) == count
    assert all(values == list(range(events)) for values in received)


async def test_a_burst_reaches_each_consumer_in_order_per_thing(running, sensor):
    """What is ready at once goes out in one write, and a batch over the write size in
    several (every 25th value is 40 kB): each consumer still gets every value of each
    Thing it observes, in the order the agent reported them."""
    other = "urn:dev:ops:sensor-2"
    await sensor.register(thing_td(other, "Sensor 2", properties=TD["properties"]))
    url = ws_url(running)
    one_token, both_token = running.add_client("olga"), running.add_client("bert")
    async with (
        WsClient(url, ca=running.ssl, token=one_token) as one,
        WsClient(url, ca=running.ssl, token=both_token) as both,
    ):
        await one.observe_property(THING, "blob")
        await both.observe_property(THING, "blob")
        await both.observe_property(other, "blob")
        reported = []
        for n in range(600):  # sent without waiting: the hub reads them in bursts
            thing = (THING, other)[n % 2]
            padding = "x" * (40_000 if n % 25 == 0 else 10)
            await sensor.report_property(thing, "blob", f"{n:06d}{padding}")
            reported.append((thing, n))

        async def received(client: WsClient, count: int) -> list[tuple[str, int]]:
            messages = [await client.next_message(30) for _ in range(count)]
            return [(m["thingID"], int(m["value"][:6])) for m in messages]

        got_one, got_both = await asyncio.gather(received(one, 300), received(both, 600))
    assert got_both == reported
    assert got_one == [(thing, n) for thing, n in reported if thing == THING]


# -- a consumer that never reads ------------------------------------------------------------


class StalledClient:
    """The handshake and one subscription, then nothing is read until ``read_all``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, running, token: str, first: str) -> StalledClient:
        host, port = "127.0.0.1", running.hub.http_server.port
        # A small stream buffer: asyncio stops reading the socket beyond twice this.
        reader, writer = await asyncio.open_connection(
            host, port, ssl=running.ssl, server_hostname=host, limit=1024
        )
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: webthingprotocol\r\n"
                f"Authorization: Bearer {token}\r\n\r\n"
            ).encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 101"), head
        client = cls(reader, writer)
        client.send(first)
        await writer.drain()
        return client

    def send(self, text: str) -> None:
        data, mask = text.encode(), os.urandom(4)
        size = len(data)
        length = (
            bytes([0x80 | size]) if size < 126 else bytes([0x80 | 126]) + struct.pack("!H", size)
        )
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.writer.write(bytes([0x81]) + length + mask + masked)

    async def frame(self) -> tuple[int, bytes]:
        """(opcode, payload) of the next frame from the server (never masked)."""
        first, second = await self.reader.readexactly(2)
        size = second & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return first & 0x0F, await self.reader.readexactly(size)

    async def read_all(self, timeout: float) -> tuple[list[dict], int | None, str]:
        """Every message until the close frame: (messages, close code, reason)."""
        messages = []
        async with asyncio.timeout(timeout):
            while True:
                opcode, payload = await self.frame()
                if opcode == 0x1:
                    messages.append(json.loads(payload))
                elif opcode == 0x8:
                    code = struct.unpack("!H", payload[:2])[0] if payload else None
                    return messages, code, payload[2:].decode()

    def close(self) -> None:
        self.writer.transport.abort()


async def stall_one_consumer(running, sensor, size: int = 16384, least: int = 1500):
    """A fast consumer and a stalled one observe the same property; the agent reports
    values of ``size`` characters, paced by the fast consumer (50 at a time), at least
    ``least`` and until the hub has given up on the stalled one (TCP buffers on loopback
    absorb tens of megabytes first), at most 8,000. Returns the stalled client, its
    router connection, what the fast one got and how long that took."""
    fast_token = running.add_client("speedy")
    slow_token = running.add_client("slowpoke")
    stalled = await StalledClient.open(running, slow_token, request("observeproperty", "blob"))
    router = running.hub.router
    await until(
        lambda: (
            router.connections_of("slowpoke")
            and router.subscriptions.matching("property", THING, "blob")
        )
    )
    (connection,) = router.connections_of("slowpoke")
    async with WsClient(ws_url(running), ca=running.ssl, token=fast_token) as fast:
        await fast.observe_property(THING, "blob")
        got: list[int] = []
        started = time.perf_counter()
        async with asyncio.timeout(90):
            value = 0
            while value < least or (connection.closed_reason is None and value < 8000):
                for _ in range(50):
                    await sensor.report_property(THING, "blob", f"{value:06d}" + "x" * size)
                    value += 1
                while len(got) < value:
                    got.append(int((await fast.next_message(10))["value"][:6]))
        elapsed = time.perf_counter() - started
    return stalled, connection, got, elapsed


async def test_a_consumer_that_never_reads_is_cut_off_1013_without_slowing_others(running, sensor):
    stalled, connection, got, elapsed = await stall_one_consumer(running, sensor)
    values = len(got)
    try:
        # The others got every value, in order, while the stalled one fell behind.
        assert got == list(range(values)) and values >= 1500
        assert elapsed < 60
        assert connection.closed_reason == "overflow"
        assert connection.pending() == 0  # its backlog was dropped, not kept
        assert all(c is not connection for c, _ in running.hub.router.subscriptions.matching(
            "property", THING, "blob"
        ))  # fmt: skip
        # When it reads again: what the socket held, then the close frame 1013.
        messages, code, reason = await stalled.read_all(timeout=20)
        assert code == 1013
        assert reason.startswith("too slow")
        assert 0 < len(messages) < values
        numbers = [int(m["value"][:6]) for m in messages if m["messageType"] == "notification"]
        assert numbers == list(range(len(numbers)))  # a prefix, in order
    finally:
        stalled.close()


async def test_a_stalled_consumer_is_disconnected_even_if_it_never_reads(running, sensor):
    stalled, connection, _, _ = await stall_one_consumer(running, sensor)
    try:
        assert connection.closed_reason == "overflow"
        # The hub lets go of it without its help: the blocked send times out (10 s) and
        # the connection is aborted.
        await until(lambda: not running.hub.router.connections_of("slowpoke"), 20)
    finally:
        stalled.close()


async def test_hub_stop_closes_connections_with_1001(running, sensor):
    token = running.add_client("vera")
    headers = {"Authorization": f"Bearer {token}"}
    url = ws_url(running)
    async with aiohttp.ClientSession() as session:
        first = await connect(url, ssl=running.ssl, additional_headers=headers, open_timeout=10)
        second = await session.ws_connect(url, ssl=running.ssl, headers=headers)
        await first.send(request("subscribeevent", "tick"))
        assert json.loads(await asyncio.wait_for(first.recv(), 5))["status"] == "completed"
        await second.send_str(request("observeproperty", "blob"))
        assert json.loads((await second.receive(timeout=5)).data)["status"] == "completed"

        async with asyncio.timeout(30):
            await running.hub.stop()

        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(first.recv(), 5)
        assert (first.close_code, first.close_reason) == (1001, "the hub is stopping")
        frame = await second.receive(timeout=5)
        assert frame.type == aiohttp.WSMsgType.CLOSE
        assert (frame.data, frame.extra) == (1001, "the hub is stopping")
        await second.close()
    # The Python client sees 1001 too (and, being told to, keeps trying to reconnect).
    await until(lambda: not sensor.connected)
    assert sensor.close_code == 1001
