"""What the operations tests share: the real hub of tests/support/running.py (its
fixtures, imported by the test modules), a TD with string-valued affordances, and the
WebSocket helpers."""

from __future__ import annotations

import asyncio
import json

from websockets.asyncio.client import connect

THING = "urn:dev:ops:ops-sign-1"
# An action for an offline device: take the queued status at once (201), not wait for
# the output (504 after http.action_timeout).
ASYNC = {"Prefer": "respond-async"}


def sign_td(thing_id: str = THING, padding: int = 0) -> dict:
    """A sign with a writable text, an action taking text and an event carrying text;
    ``padding`` characters of description make the TD as large as a test needs."""
    return {
        "@context": "https://www.w3.org/2022/wot/td/v1.1",
        "id": thing_id,
        "title": "Sign",
        "description": "x" * padding,
        "securityDefinitions": {"nosec_sc": {"scheme": "nosec"}},
        "security": "nosec_sc",
        "properties": {"text": {"type": "string", "forms": [{"href": "https://s.local/t"}]}},
        "actions": {
            "say": {"input": {"type": "string"}, "forms": [{"href": "https://s.local/say"}]}
        },
        "events": {"said": {"data": {"type": "string"}, "forms": [{"href": "https://s.local/e"}]}},
    }


def ws_url(running) -> str:
    return running.url.replace("https://", "wss://") + "/ws"


def socket(running, token: str):
    return connect(
        ws_url(running),
        ssl=running.ssl,
        additional_headers={"Authorization": f"Bearer {token}"},
        subprotocols=["webthingprotocol"],
        open_timeout=10,
    )


async def receive(ws, timeout: float = 5.0) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def send(ws, **message) -> None:
    await ws.send(json.dumps(message))


async def ask(ws, **message) -> dict:
    """Send a request and return the response with its correlationID."""
    await send(ws, messageType="request", **message)
    while True:
        answer = await receive(ws)
        if answer.get("correlationID") == message["correlationID"]:
            return answer


def register(running, agent_id: str, td: dict) -> None:
    """Register a TD for an agent through the router (as a binding would)."""
    agent = running.agent(agent_id)
    response = running.send(
        agent,
        {"messageType": "request", "operation": "updatething", "correlationID": "r", "input": td},
    )
    assert response.error is None, response.error
    running.hub.router.disconnect(agent)
