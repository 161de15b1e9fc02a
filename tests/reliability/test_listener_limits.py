"""Every listener bounds the connections that never log in and caps how many are open;
a costly JSONPath search is refused quickly; pooled keep-alive connections keep working
through a stream of bad requests (docs/operations.md, "Connections").

Real hubs (tests/support/running.py) on 127.0.0.1 with short timeouts, raw sockets for
the clients that misbehave, paho-mqtt, aiohttp and websockets for the ones that do not.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time

import aiohttp
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.support.mqtt import Paho
from tests.support.running import PASSWORD
from tests.support.tds import sign_td
from tests.support.ws import ws_url
from tests.waiting import until

pytestmark = pytest.mark.timeout(120)

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def open_tls(hub, port: int) -> Stream:
    """A connection that finishes its TLS handshake and then sends nothing."""
    return await asyncio.open_connection("127.0.0.1", port, ssl=hub.ssl)


async def closed_by_peer(stream: Stream, timeout: float) -> bytes:
    """What the server sent until it closed the connection (TimeoutError if it did not
    within ``timeout`` seconds)."""
    reader, writer = stream
    received = b""
    try:
        async with asyncio.timeout(timeout):
            while chunk := await reader.read(4096):
                received += chunk
    except (ConnectionError, ssl.SSLError):
        pass  # closed hard: also closed
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return received


def close_all(streams: list[Stream]) -> None:
    for _, writer in streams:
        writer.close()


# -- MQTT ---------------------------------------------------------------------------------


# nats-server is the MQTT broker: its authentication timeout and its connection cap
# (nats_auth_timeout, nats_max_connections) hold for MQTT connections too.


# The timeout also bounds the good client's login (an argon2 check in the callout), which
# a loaded machine can slow past half a second: one second leaves room.
@pytest.mark.parametrize("hub_options", [{"mqtt_enabled": True, "nats_auth_timeout": 1.0}])
async def test_mqtt_connections_that_never_send_connect_are_closed(running):
    port = running.hub.mqtt.port
    started = time.monotonic()
    silent = [await open_tls(running, port) for _ in range(5)]
    no_handshake = await asyncio.open_connection("127.0.0.1", port)  # not even TLS
    for stream in [*silent, no_handshake]:
        assert await closed_by_peer(stream, timeout=10) == b""
    assert time.monotonic() - started >= 1.0  # by the timeout, not refused at once
    # A client that does send CONNECT in time is served as ever.
    running.hub.auth.add_client("dev", "agent", "agent", password=PASSWORD)
    client = Paho(port, running.hub.ca.ca_cert_pem, "dev", username="dev", password=PASSWORD)
    try:
        assert await client.connect() == 0
    finally:
        client.close()


@pytest.mark.parametrize(
    "hub_options", [{"mqtt_enabled": True, "nats_auth_timeout": 60, "nats_max_connections": 3}]
)
async def test_mqtt_refuses_a_connection_over_the_cap_not_yet_authenticated_ones_counted(
    running,
):
    port = running.hub.mqtt.port
    held = [await open_tls(running, port) for _ in range(3)]
    started = time.monotonic()
    try:
        over = await closed_by_peer(await open_tls(running, port), timeout=10)
    except (ConnectionError, ssl.SSLError):  # closed during the TLS handshake
        over = b""
    assert over == b""
    assert time.monotonic() - started < 30  # at once, not by the 60 s timeout
    close_all(held)
    running.hub.auth.add_client("dev", "agent", "agent", password=PASSWORD)
    # The server counts the held connections gone once it has read their close: a client
    # may be refused until then, so it tries again, within a deadline.
    deadline = time.monotonic() + 10
    while True:
        client = Paho(port, running.hub.ca.ca_cert_pem, "dev", username="dev", password=PASSWORD)
        try:
            with contextlib.suppress(TimeoutError):
                if await client.connect(timeout=2) == 0:
                    break
        finally:
            client.close()
        assert time.monotonic() < deadline, "no connection once the held ones closed"


# -- NATS ---------------------------------------------------------------------------------

NATS_LIMITS = {"nats_enabled": True, "nats_auth_timeout": 2.5, "nats_max_connections": 2}


async def nats_silent(port: int, ca: ssl.SSLContext, *, tls: bool = True) -> Stream:
    """A NATS connection that reads INFO, upgrades to TLS (or not) and never sends CONNECT."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    info = await reader.readline()
    assert info.startswith(b"INFO ")
    if tls:
        await writer.start_tls(ca, server_hostname="127.0.0.1")
    return reader, writer


@pytest.mark.parametrize("hub_options", [NATS_LIMITS])
async def test_nats_server_config_carries_the_limits(running):
    config = running.hub.nats.server.config_path.read_text()
    assert "max_connections: 5\n" in config  # two clients and the hub's own three
    assert "timeout: 2.5\n" in config.split("authorization {", 1)[1]


@pytest.mark.parametrize("hub_options", [NATS_LIMITS])
async def test_nats_connections_that_never_send_connect_are_dropped(running):
    port = running.hub.nats.server.port
    started = time.monotonic()
    silent = await nats_silent(port, running.ssl)
    no_handshake = await nats_silent(port, running.ssl, tls=False)
    assert b"Authentication Timeout" in await closed_by_peer(silent, timeout=15)
    await closed_by_peer(no_handshake, timeout=15)  # nats-server's TLS timeout, 2 s
    assert time.monotonic() - started >= 2.5


@pytest.mark.parametrize("hub_options", [{**NATS_LIMITS, "nats_auth_timeout": 60}])
async def test_nats_refuses_a_connection_over_the_cap(running):
    port = running.hub.nats.server.port
    held = [await nats_silent(port, running.ssl) for _ in range(2)]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert b"maximum connections exceeded" in await closed_by_peer((reader, writer), 15)
    close_all(held)


# -- HTTPS and WebSocket ------------------------------------------------------------------


async def open_sse(hub, token: str, path: str = "/events"):
    """An SSE stream's response, its headers read."""
    session = hub.session(token)
    response = await session.get(path, headers={"Accept": "text/event-stream"})
    assert response.status == 200
    return session, response


@pytest.mark.parametrize("hub_options", [{"http_read_timeout": 0.5}])
async def test_https_closes_a_connection_whose_request_does_not_arrive(running):
    port = running.hub.http_server.port
    token = running.add_client("vic", "consumer", "viewer")
    session, stream = await open_sse(running, token)  # its request is in: never cut
    try:
        started = time.monotonic()
        silent = await open_tls(running, port)
        half = await open_tls(running, port)
        half[1].write(b"GET /health HTTP/1.1\r\nHost: hub\r\n")  # and no end of the head
        body = await open_tls(running, port)  # a body that stops short; the hub reads it
        admin = running.add_client("ada", "consumer", "admin")
        body[1].write(
            b"PUT /things/urn:x:1 HTTP/1.1\r\nHost: hub\r\nContent-Type: application/td+json\r\n"
            + f"Authorization: Bearer {admin}\r\nContent-Length: 100\r\n\r\n{{".encode()
        )
        for stream_ in (silent, half, body):
            assert await closed_by_peer(stream_, timeout=10) == b""
        assert time.monotonic() - started >= 0.5
        # The stream, older than the deadline, still carries what happens.
        running.add_thing("sign-agent", sign_td())
        async with asyncio.timeout(10):
            async for line in stream.content:
                if b"sign" in line:
                    break
    finally:
        stream.close()
        await session.close()


@pytest.mark.parametrize("hub_options", [{"http_max_connections": 2, "http_read_timeout": 60}])
async def test_https_answers_503_over_the_connection_cap(running):
    server = running.hub.http_server
    held = [await open_tls(running, server.port) for _ in range(2)]
    await until(lambda: server.open_connections == 2)
    async with running.session() as anyone, anyone.get("/health") as response:
        assert response.status == 503
        assert response.headers["Connection"] == "close"
    close_all(held)
    await until(lambda: server.open_connections == 0)
    async with running.session() as anyone, anyone.get("/health") as response:
        assert response.status == 200


async def test_websocket_without_credentials_is_closed_after_the_auth_timeout(running):
    running.hub.websocket.auth_timeout = 0.5
    started = time.monotonic()  # before the handshake: the hub's clock starts within it
    async with connect(ws_url(running), ssl=running.ssl, open_timeout=10) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(10):
                await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    assert time.monotonic() - started >= 0.5


# -- a costly search ------------------------------------------------------------------------


async def test_a_costly_jsonpath_is_refused_quickly_and_health_stays_responsive(running):
    for i in range(100):
        running.add_thing(f"agent-{i // 50}", sign_td(f"urn:dev:ops:sign-{i:03d}"))
    viewer = running.add_client("vic", "consumer", "viewer")
    costly = "$..*..*..*..*..*..*"
    health_latencies: list[float] = []
    done = asyncio.Event()

    async def watch_health(session: aiohttp.ClientSession) -> None:
        for _ in range(500):  # bounded; stops when the searches are done
            if done.is_set():
                return
            started = time.monotonic()
            async with session.get("/health") as response:
                assert response.status == 200
            health_latencies.append(time.monotonic() - started)

    async with running.session(viewer) as searcher, running.session() as prober:
        watcher = asyncio.create_task(watch_health(prober))
        for _ in range(5):
            started = time.monotonic()
            async with searcher.get("/search/jsonpath", params={"query": costly}) as response:
                problem = await response.json(content_type=None)
            assert response.status == 422, problem
            assert response.content_type == "application/problem+json"
            assert problem["limit"] in ("max_search_nodes", "max_search_seconds")
            assert "too costly" in problem["detail"]
            assert time.monotonic() - started < 2.0
        done.set()
        await watcher
        async with searcher.get("/search/jsonpath", params={"query": "$..title"}) as response:
            assert response.status == 200
            assert len(await response.json()) >= 100
    assert health_latencies, "/health was never answered during the searches"
    assert max(health_latencies) < 1.5


# -- pooled keep-alive connections ---------------------------------------------------------

BAD_REQUESTS = [
    ("GET", "/things/%ZZ", None),
    ("GET", "/things/%C3%28", None),
    ("GET", "/nowhere/" + "x" * 2000, None),
    ("GET", "/things?offset=-1", None),
    ("GET", "/search/jsonpath?query=$[", None),
    ("PUT", "/things/urn:x:1", b"{not json"),
    ("POST", "/things", b"[1, 2"),
    ("PATCH", "/things/urn:x:1", b'{"title": 1}'),
    ("DELETE", "/health", None),
    ("POST", "/metrics", b"x" * 70_000),
    ("HEAD", "/things", None),
    ("OPTIONS", "/things", None),
    ("PUT", "/things/urn:x:1/properties/p", b"\xff\xfe"),
    ("POST", "/authn/login", b'{"clientID": 1}'),
]


@pytest.mark.parametrize(
    "hub_options", [{"http_keep_alive_timeout": 0.5, "http_read_timeout": 1.0}]
)
async def test_pooled_keep_alive_connections_survive_bad_requests_and_idling(running):
    server = running.hub.http_server
    token = running.add_client("ada", "consumer", "admin")
    async with pool(running, token, size=4) as pooled:
        for round_ in range(3):  # bounded: 3 rounds of every bad request, 4 at a time
            for start in range(0, len(BAD_REQUESTS), 4):
                batch = BAD_REQUESTS[start : start + 4]
                statuses = await asyncio.gather(*(answer(pooled, *r) for r in batch))
                assert all(200 <= status < 500 for status in statuses), (batch, statuses)
                assert server.open_connections <= 4  # reused, none left behind
            # Idle past the keep-alive timeout: the hub closes the pooled connections;
            # the next request must open a new one, not hang on a closed one.
            await until(lambda: server.open_connections == 0)
            started = time.monotonic()
            assert await answer(pooled, "GET", "/health", None) == 200
            assert time.monotonic() - started < 2.0, f"round {round_}"


def pool(hub, token: str, size: int) -> aiohttp.ClientSession:
    """A session with a pool of ``size`` keep-alive connections and a 5 s timeout per
    request, far below any wait on the hub's side."""
    return aiohttp.ClientSession(
        hub.url,
        connector=aiohttp.TCPConnector(ssl=hub.ssl, limit=size),
        headers={"Authorization": f"Bearer {token}"},
        timeout=aiohttp.ClientTimeout(total=5),
    )


async def answer(session: aiohttp.ClientSession, method: str, path: str, body, **kw) -> int:
    async with session.request(method, path, data=body, **kw) as response:
        await response.read()
        return response.status


async def test_an_open_stream_holds_its_pooled_connection_until_closed(running):
    """What the 15 s timeouts seen under fuzzing were: an SSE stream (or a long poll)
    holds its connection for as long as it runs, so a request queued behind it in a
    pool with no other connection waits for one until its own timeout."""
    token = running.add_client("vic", "consumer", "viewer")
    async with pool(running, token, size=1) as one:
        stream = await one.get("/events", headers={"Accept": "text/event-stream"})
        assert stream.status == 200
        with pytest.raises(aiohttp.ConnectionTimeoutError):  # no free connection in 0.5 s
            await answer(one, "GET", "/health", None, timeout=aiohttp.ClientTimeout(connect=0.5))
        stream.close()
        assert await answer(one, "GET", "/health", None) == 200
