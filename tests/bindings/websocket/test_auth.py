"""Authenticating on the WebSocket endpoint: a bearer token or HTTP Basic in the
``Authorization`` header, a client certificate, or the first frame
``{"authorization": "Bearer <token>"}``; anything else is closed with 4401 and a reason.
Both client libraries (``websockets`` and aiohttp), a real hub."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl

import aiohttp
import pytest
from websockets.exceptions import ConnectionClosed

from clients.errors import Unauthorized
from clients.websocket import WsClient
from tests.support.running import PASSWORD
from tests.support.tds import thing_td
from tests.support.ws import receive, send, socket, ws_url

pytestmark = pytest.mark.timeout(60)

AUTHN = "urn:wothub:authn"  # the login Thing: every client may read its TD


async def served(ws) -> None:
    """The connection is authenticated: a request gets its answer."""
    await ws.send(
        json.dumps(
            {"messageType": "request", "operation": "readthing", "thingID": AUTHN,
             "correlationID": "hello"}
        )
    )  # fmt: skip
    response = await receive(ws)
    assert response["correlationID"] == "hello"
    assert response["output"]["id"] == AUTHN


async def closed_with(ws, timeout: float = 5.0) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    return ws.close_code, ws.close_reason


async def register(ws, thing_id: str) -> dict:
    """Register a lamp under ``thing_id``; the response."""
    lamp = thing_td(thing_id, "Lamp")
    await send(ws, messageType="request", operation="updatething", correlationID="r", input=lamp)
    return await receive(ws)


def basic(client_id: str, password: str) -> dict:
    encoded = base64.b64encode(f"{client_id}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


async def test_bearer_header(running):
    token = running.add_client("vera")
    async with socket(running, token) as ws:
        assert ws.subprotocol == "webthingprotocol"
        await served(ws)


async def test_basic_header(running):
    running.add_client("vera")
    async with socket(running, headers=basic("vera", PASSWORD)) as ws:
        await served(ws)
    async with WsClient(ws_url(running), ca=running.ssl, basic=("vera", PASSWORD)) as client:
        assert (await client.read_thing(AUTHN))["id"] == AUTHN


async def test_first_frame_token(running):
    token = running.add_client("vera")
    async with socket(running) as ws:
        await ws.send(json.dumps({"authorization": f"Bearer {token}"}))
        await served(ws)
    # Basic works there too, and so does the Python client's first-frame mode.
    async with socket(running) as ws:
        value = basic("vera", PASSWORD)["Authorization"]
        await ws.send(json.dumps({"authorization": value}))
        await served(ws)
    async with WsClient(ws_url(running), ca=running.ssl, token=token, first_frame=True) as c:
        assert (await c.read_thing(AUTHN))["id"] == AUTHN


async def test_without_credentials_the_connection_is_closed_4401(running):
    # A first frame that is not a login: closed at once, with the reason.
    async with socket(running) as ws:
        await ws.send(json.dumps({"messageType": "request", "operation": "readthing"}))
        code, reason = await closed_with(ws)
    assert code == 4401
    assert reason.startswith("unauthenticated")
    assert "Authorization" in reason
    # Silence: closed when the login time is up.
    running.hub.websocket.auth_timeout = 0.3
    async with socket(running) as ws:
        code, reason = await closed_with(ws)
    assert (code, reason.split(":")[0]) == (4401, "unauthenticated")
    # With aiohttp.
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(ws_url(running), ssl=running.ssl) as ws,
    ):
        frame = await ws.receive(timeout=5)
        assert frame.type == aiohttp.WSMsgType.CLOSE
        assert frame.data == 4401 and frame.extra.startswith("unauthenticated")


async def test_bad_credentials_are_closed_4401(running):
    token = running.add_client("vera")
    for headers in (
        {"Authorization": f"Bearer {token}x"},
        {"Authorization": "Bearer not-a-token"},
        basic("vera", "wrong password"),
        basic("nobody", PASSWORD),
        {"Authorization": "Digest whatever"},
    ):
        async with socket(running, headers=headers) as ws:
            code, reason = await closed_with(ws)
        assert code == 4401, headers
        assert reason.startswith("unauthenticated"), headers
    async with socket(running) as ws:
        await ws.send(json.dumps({"authorization": "Bearer forged"}))
        code, _ = await closed_with(ws)
    assert code == 4401
    # The Python client says so and does not keep trying.
    client = WsClient(ws_url(running), ca=running.ssl, token="forged")
    with pytest.raises(Unauthorized, match="4401"):
        await client.connect()
    assert client.close_code == 4401


async def test_token_of_a_removed_client_is_closed_4401(running):
    token = running.add_client("vera")
    running.hub.auth.remove_client("vera")
    async with socket(running, token) as ws:
        code, _ = await closed_with(ws)
    assert code == 4401


async def test_client_certificate(running, tmp_path):
    running.hub.auth.add_client("lamp-agent", "agent", "agent", password=PASSWORD)
    issued, key_pem = running.hub.ca.generate_for("lamp-agent")
    (tmp_path / "cert.pem").write_bytes(issued.cert_pem)
    (tmp_path / "key.pem").write_bytes(key_pem)
    context = ssl.create_default_context(cadata=running.hub.ca.ca_cert_pem.decode())
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    async with socket(running, ssl=context) as ws:
        registered = await register(ws, "urn:dev:cert-lamp")
        assert registered["output"] == {"id": "urn:dev:cert-lamp", "created": True}
    assert running.hub.twin.owner_of("urn:dev:cert-lamp") == "lamp-agent"

    # The Python client, given the PEMs themselves.
    async with WsClient(
        ws_url(running),
        ca=running.hub.ca.ca_cert_pem,
        client_cert=(issued.cert_pem, key_pem),
    ) as client:
        assert (await client.read_thing("urn:dev:cert-lamp"))["title"] == "Lamp"

    # A revoked certificate no longer logs in.
    running.hub.ca.revoke(issued.serial)
    async with socket(running, ssl=context) as ws:
        code, _ = await closed_with(ws)
    assert code == 4401


async def test_the_header_takes_precedence_over_the_certificate(running, tmp_path):
    """The Authorization header decides before the client certificate, the one order of
    every binding (docs/auth.md); a bad header is not rescued by a good certificate, and
    a token is good only under its own client's name."""
    running.hub.auth.add_client("lamp-agent", "agent", "agent", password=PASSWORD)
    token = running.add_client("vera")  # a viewer: it may not register Things
    issued, key_pem = running.hub.ca.generate_for("vera")
    (tmp_path / "cert.pem").write_bytes(issued.cert_pem)
    (tmp_path / "key.pem").write_bytes(key_pem)
    context = ssl.create_default_context(cadata=running.hub.ca.ca_cert_pem.decode())
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    async with socket(running, headers=basic("lamp-agent", PASSWORD), ssl=context) as ws:
        registered = await register(ws, "urn:dev:header-lamp")
        assert registered["output"] == {"id": "urn:dev:header-lamp", "created": True}
    assert running.hub.twin.owner_of("urn:dev:header-lamp") == "lamp-agent"
    for headers in (
        {"Authorization": f"Bearer {token}x"},
        basic("lamp-agent", "wrong password"),
        basic("lamp-agent", token),  # vera's token under another name
    ):
        async with socket(running, headers=headers, ssl=context) as ws:
            code, reason = await closed_with(ws)
        assert (code, reason) == (4401, "unauthenticated: invalid credentials"), headers
    async with socket(running, ssl=context) as ws:  # the certificate alone: vera
        refused = await register(ws, "urn:dev:vera-lamp")
        assert refused["error"]["status"] == 403
