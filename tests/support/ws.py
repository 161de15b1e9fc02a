"""A raw Web Thing Protocol WebSocket on the hub's /ws endpoint (the independent
``websockets`` library, frames as JSON dicts), for tests of the wire itself; the
project's client is ``running.device`` or clients.websocket.WsClient on ``ws_url``."""

from __future__ import annotations

import asyncio
import itertools
import json

from websockets.asyncio.client import connect

from bindings.websocket.forms import PATH


def ws_url(running) -> str:
    return running.url.replace("https://", "wss://", 1) + PATH


def socket(running, token: str | None = None, headers: dict | None = None, **options):
    """A connection trusting the hub CA, with a bearer ``token`` or the given ``headers``;
    ``options`` go to ``websockets`` (``ssl``, ``max_size``, ...)."""
    headers = dict(headers or {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    options.setdefault("ssl", running.ssl)
    return connect(
        ws_url(running),
        additional_headers=headers,
        subprotocols=["webthingprotocol"],
        open_timeout=10,
        **options,
    )


async def receive(ws, timeout: float = 5.0) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def send(ws, **message) -> None:
    await ws.send(json.dumps(message))


_ids = itertools.count(1)


async def ask(ws, **message) -> dict:
    """Send a request (with a correlationID made up if it has none) and return the
    response with its correlationID."""
    message.setdefault("correlationID", f"ask-{next(_ids)}")
    await send(ws, messageType="request", **message)
    while True:
        answer = await receive(ws)
        if answer.get("correlationID") == message["correlationID"]:
            return answer
