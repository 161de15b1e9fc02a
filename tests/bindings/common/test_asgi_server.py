"""HttpServer and the ASGI TLS extension, with real certificates from the hub CA and a
real aiohttp client over https on 127.0.0.1."""

import asyncio
import contextlib
import importlib.util
import signal
import ssl
import time

import aiohttp
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

from bindings.common.asgi_server import HttpServer, tls_extension, tls_websocket_protocol
from bucketstore import open_store
from certs import CertificateAuthority
from tests.requirements import require_module
from tests.waiting import until

pytestmark = pytest.mark.timeout(30)

NO_TLS = "no tls extension"


def tls_of(scope):
    return scope.get("extensions", {}).get("tls", NO_TLS)


async def echo(request):
    """The TLS extension and the client address (to tell connections apart)."""
    return JSONResponse({"tls": tls_of(request.scope), "client": list(request.client)})


HANGING: list = []  # requests /hang has taken, so a test knows one arrived


async def hang(request):
    HANGING.append(request)
    await asyncio.Event().wait()


async def ws_echo(websocket):
    await websocket.accept()
    await websocket.send_json({"tls": tls_of(websocket.scope), "scheme": websocket.url.scheme})
    await websocket.close()


APP = Starlette(routes=[Route("/tls", echo), Route("/hang", hang), WebSocketRoute("/ws", ws_echo)])


# -- certificates ------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path):
    with open_store(tmp_path / "store", "memory") as store:
        yield store


@pytest.fixture
def ca(tmp_path, store):
    ca = CertificateAuthority.load_or_create(tmp_path / "home", store.bucket("certs"))
    ca.ensure_server_certificate([])
    return ca


def write_identity(directory, issued, key_pem):
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "client.pem", directory / "client.key"
    cert_path.write_bytes(issued.cert_pem)
    key_path.write_bytes(key_pem)
    return cert_path, key_path


@pytest.fixture
def client_identity(ca, tmp_path):
    """A hub-issued client certificate: (IssuedCertificate, cert path, key path)."""
    issued, key_pem = ca.generate_for("sensor-1")
    return (issued, *write_identity(tmp_path / "client", issued, key_pem))


def client_context(ca, identity=None):
    """Verifies the server against the hub CA; presents ``identity`` if given."""
    context = ssl.create_default_context(cafile=ca.ca_cert_path)
    if identity is not None:
        context.load_cert_chain(*identity)
    return context


@pytest.fixture
async def server(ca):
    async with HttpServer(
        APP,
        ssl_context=ca.ssl_context_for_server(),
        server_cert=ca.server_cert_path,
        shutdown_timeout=1,
        limit_concurrency=50,  # uvicorn.Config keywords pass through
    ) as server:
        yield server


async def get_tls(url, context):
    async with aiohttp.ClientSession() as session, session.get(url, ssl=context) as response:
        assert response.status == 200
        return (await response.json())["tls"]


# -- the server --------------------------------------------------------------------------


async def test_port_zero_reports_the_real_port(server):
    assert server.port not in (None, 0)
    assert server.addresses == [("127.0.0.1", server.port)]
    assert server.url == f"https://127.0.0.1:{server.port}"
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.close()


async def test_without_client_certificate_the_request_is_served(server, ca):
    tls = await get_tls(f"{server.url}/tls", client_context(ca))
    assert tls["client_cert_chain"] == []
    assert tls["client_cert_name"] is None
    assert tls["client_cert_error"] is None
    assert tls["server_cert"] == ca.server_cert_path.read_text()
    assert tls["tls_version"] == 0x0304  # both ends allow TLS 1.3
    assert tls["cipher_suite"] in (0x1301, 0x1302, 0x1303)  # the TLS 1.3 suites


async def test_tls12_version_and_cipher_suite_numbers(server, ca):
    context = client_context(ca)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")  # the server key is P-256
    tls = await get_tls(f"{server.url}/tls", context)
    assert tls["tls_version"] == 0x0303
    assert tls["cipher_suite"] == 0xC02B  # TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256


async def test_a_hub_client_certificate_reaches_the_app(server, ca, client_identity):
    issued, cert_path, key_path = client_identity
    tls = await get_tls(f"{server.url}/tls", client_context(ca, (cert_path, key_path)))
    assert tls["client_cert_chain"] == [issued.cert_pem.decode()]
    assert tls["client_cert_name"] == "CN=sensor-1"
    assert tls["client_cert_error"] is None
    # What the auth layer will do with it:
    assert ca.verify_client_certificate(tls["client_cert_chain"][0].encode()) == "sensor-1"


async def test_a_foreign_ca_certificate_fails_the_handshake(server, ca, tmp_path):
    with open_store(tmp_path / "other-store", "memory") as other_store:
        foreign_ca = CertificateAuthority.load_or_create(
            tmp_path / "other-home", other_store.bucket("certs")
        )
        issued, key_pem = foreign_ca.generate_for("sensor-1")
    identity = write_identity(tmp_path / "foreign", issued, key_pem)
    # TLS 1.3: the client's side of the handshake is done before the server checks the
    # certificate; the server's handshake then fails and asyncio drops the connection, so
    # the client sees it closed, with no response, on its first read.
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await get_tls(f"{server.url}/tls", client_context(ca, identity))
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", server.port, ssl=client_context(ca, identity), server_hostname="localhost"
    )
    assert writer.get_extra_info("ssl_object").version() == "TLSv1.3"
    writer.write(b"GET /tls HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert await reader.read(100) == b""
    writer.close()
    # TLS 1.2: the server's verdict is part of the handshake, so connecting fails.
    context = client_context(ca, identity)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises((ConnectionResetError, ssl.SSLError)):
        await asyncio.open_connection(
            "127.0.0.1", server.port, ssl=context, server_hostname="localhost"
        )
    # The server is still serving.
    tls = await get_tls(f"{server.url}/tls", client_context(ca))
    assert tls["client_cert_chain"] == []


async def test_keep_alive_requests_on_one_connection_both_carry_the_certificate(
    server, ca, client_identity
):
    issued, cert_path, key_path = client_identity
    connector = aiohttp.TCPConnector(limit=1, ssl=client_context(ca, (cert_path, key_path)))
    async with aiohttp.ClientSession(connector=connector) as session:
        answers = []
        for _ in range(2):
            async with session.get(f"{server.url}/tls") as response:
                answers.append(await response.json())
    assert answers[0]["client"] == answers[1]["client"]  # the same TCP connection
    for answer in answers:
        assert answer["tls"]["client_cert_chain"] == [issued.cert_pem.decode()]


WS_IMPLEMENTATIONS = [
    pytest.param("websockets-sansio", "websockets", id="websockets-sansio"),
    pytest.param("wsproto", "wsproto", id="wsproto"),
]


@pytest.mark.parametrize(("ws", "library"), WS_IMPLEMENTATIONS)
async def test_a_websocket_scope_carries_the_client_certificate(ca, client_identity, ws, library):
    require_module(library)  # uvicorn serves WebSockets with it
    issued, cert_path, key_path = client_identity
    context = client_context(ca, (cert_path, key_path))
    async with (
        HttpServer(APP, ssl_context=ca.ssl_context_for_server(), ws=ws) as server,
        aiohttp.ClientSession() as session,
        session.ws_connect(f"wss://127.0.0.1:{server.port}/ws", ssl=context) as websocket,
    ):
        answer = await websocket.receive_json()
    assert answer["scheme"] == "wss"
    assert answer["tls"]["client_cert_chain"] == [issued.cert_pem.decode()]
    assert answer["tls"]["client_cert_name"] == "CN=sensor-1"
    assert answer["tls"]["tls_version"] == 0x0304


def test_auto_websocket_protocol_follows_what_is_installed():
    protocol = tls_websocket_protocol("auto")
    if importlib.util.find_spec("websockets") is not None:
        assert protocol.__name__ == "TlsWebSocketsSansIOProtocol"
    elif importlib.util.find_spec("wsproto") is not None:
        assert protocol.__name__ == "TlsWSProtocol"
    else:
        assert protocol is None
    assert tls_websocket_protocol("none") is None


async def test_stop_is_prompt_with_an_idle_keep_alive_connection(ca, client_identity):
    _, cert_path, key_path = client_identity
    server = HttpServer(APP, ssl_context=ca.ssl_context_for_server(), timeout_keep_alive=60)
    await server.start()
    connector = aiohttp.TCPConnector(ssl=client_context(ca, (cert_path, key_path)))
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(f"{server.url}/tls") as response:
            assert response.status == 200
            await response.read()
        assert connector._conns  # the connection is kept open, idle
        started = time.monotonic()
        await server.stop()
        assert time.monotonic() - started < 1.0
        assert not server.running
        with pytest.raises(aiohttp.ClientError):
            async with session.get(f"{server.url}/tls") as response:
                await response.read()
    await server.stop()  # again: nothing to do


async def test_stop_cancels_a_request_that_outlives_the_shutdown_timeout(ca):
    server = HttpServer(APP, ssl_context=ca.ssl_context_for_server(), shutdown_timeout=0.5)
    await server.start()
    async with aiohttp.ClientSession() as session:
        hanging = len(HANGING)
        request = asyncio.create_task(session.get(f"{server.url}/hang", ssl=client_context(ca)))
        await until(lambda: len(HANGING) > hanging)
        started = time.monotonic()
        await server.stop()
        assert time.monotonic() - started < 2.5
        # uvicorn cancels the request's task and answers 500 on its way out.
        async with await request as response:
            assert response.status == 500


async def test_no_signal_handlers_are_installed(ca):
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    async with HttpServer(APP, ssl_context=ca.ssl_context_for_server()):
        assert {sig: signal.getsignal(sig) for sig in before} == before
    assert {sig: signal.getsignal(sig) for sig in before} == before


async def test_a_failed_startup_raises_instead_of_exiting():
    @contextlib.asynccontextmanager
    async def broken_lifespan(app):
        raise RuntimeError("no database")
        yield  # pragma: no cover

    app = Starlette(lifespan=broken_lifespan)
    server = HttpServer(app, lifespan="on")
    with pytest.raises(RuntimeError, match="failed to start"):
        await server.start()
    await server.stop()


async def test_plain_http_has_no_tls_extension():
    async with (
        HttpServer(APP) as server,
        aiohttp.ClientSession() as session,
        session.get(f"{server.url}/tls") as response,
    ):
        assert server.url.startswith("http://")
        assert (await response.json())["tls"] == NO_TLS


def test_tls_extension_is_none_for_a_plain_transport():
    class Plain(asyncio.Transport):
        def get_extra_info(self, name, default=None):
            return default

    assert tls_extension(Plain()) is None


# -- the server context (the CA's) -------------------------------------------------------


@pytest.mark.parametrize("name", ["localhost", "127.0.0.1"])
async def test_the_server_context_is_trusted_through_the_hub_ca(server, ca, name):
    context = ssl.create_default_context(cafile=ca.ca_cert_path)
    _, writer = await asyncio.open_connection(
        "127.0.0.1", server.port, ssl=context, server_hostname=name
    )
    certificate = writer.get_extra_info("ssl_object").getpeercert()
    assert ("DNS", "localhost") in certificate["subjectAltName"]
    writer.close()


async def test_the_server_is_not_trusted_without_the_hub_ca(server):
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncio.open_connection(
            "127.0.0.1", server.port, ssl=ssl.create_default_context(), server_hostname="localhost"
        )


async def test_a_required_client_certificate(ca, client_identity):
    _, cert_path, key_path = client_identity
    context = ca.ssl_context_for_server()
    context.verify_mode = ssl.CERT_REQUIRED
    async with HttpServer(APP, ssl_context=context) as server:
        with pytest.raises(aiohttp.ClientError):
            await get_tls(f"{server.url}/tls", client_context(ca))
        tls = await get_tls(f"{server.url}/tls", client_context(ca, (cert_path, key_path)))
        assert tls["client_cert_name"] == "CN=sensor-1"
