"""Structured logs: JSON lines with the message's context; secrets never logged."""

from __future__ import annotations

import json
import logging

import pytest

from hub.logs import JsonFormatter, current, redact
from tests.bindings.conftest import PASSWORD, hub_options, running  # noqa: F401

pytestmark = pytest.mark.timeout(60)


async def test_no_password_or_token_in_the_logs_at_debug(running, caplog):  # noqa: F811
    caplog.set_level(logging.DEBUG)
    running.add_client("ada", "consumer", "admin")
    running.add_client("bob", "consumer", "viewer")
    async with running.session() as anyone:
        login = {"clientID": "ada", "password": PASSWORD}
        async with anyone.post("/authn/login", json=login) as response:
            token = (await response.json())["token"]
    async with running.session(token) as admin:
        url = "/things/urn:wothub:clients/actions/newToken"
        async with admin.post(url, json={"clientID": "bob"}) as response:
            assert response.status == 200
            issued = (await response.json())["token"]
    text = caplog.text + "".join(JsonFormatter().format(r) for r in caplog.records)
    assert caplog.records  # something was logged
    for secret in (PASSWORD, token, issued):
        assert secret not in text


def test_json_lines_carry_the_message_context():
    class Connection:
        client = type("C", (), {"id": "lamp-agent"})()
        binding = "websocket"

    class Message:
        operation, thing_id, correlation_id = "invokeaction", "urn:lamp", "c-1"

    record = logging.LogRecord("wothub.router", logging.INFO, "", 0, "hello %s", ("x",), None)
    handled = current.set((Connection(), Message()))
    try:
        line = json.loads(JsonFormatter().format(record))
    finally:
        current.reset(handled)
    assert line["message"] == "hello x" and line["level"] == "INFO"
    assert line["logger"] == "wothub.router" and line["time"].endswith(
        "Z"
    )  # RFC 3339 UTC, like every hub timestamp
    assert line["clientID"] == "lamp-agent" and line["binding"] == "websocket"
    assert line["operation"] == "invokeaction" and line["thingID"] == "urn:lamp"
    assert line["correlationID"] == "c-1"
    assert redact("Authorization: Bearer abcdefghijkl") == "Authorization: Bearer ***"
