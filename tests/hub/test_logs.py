"""Structured logs: JSON lines with the message's context; secrets never logged; at
INFO only the hub's own lines."""

from __future__ import annotations

import json
import logging
import signal
import ssl
import subprocess
import sys
import time
import urllib.request

import pytest

from hub.logs import JsonFormatter, TextFormatter, current, redact
from tests.support.running import PASSWORD
from tests.support.served import serve_env

pytestmark = pytest.mark.timeout(60)


async def test_no_password_or_token_in_the_logs_at_debug(running, caplog):
    caplog.set_level(logging.DEBUG)
    # The hub at DEBUG logs every request; another test's setup_logging at INFO may have
    # left uvicorn's access logger at WARNING in this process.
    caplog.set_level(logging.DEBUG, logger="uvicorn.access")
    running.add_client("ada", "consumer", "admin")
    running.add_client("bob", "consumer", "viewer")
    wrong = "a wrong password that is a secret too"
    async with running.session() as anyone:
        for password, status in ((wrong, 401), (PASSWORD, 200)):
            login = {"clientID": "ada", "password": password}
            async with anyone.post("/authn/login", json=login) as response:
                assert response.status == status
                answer = await response.json(content_type=None)
        token = answer["token"]
    async with running.session(token) as admin:
        url = "/things/urn:wothub:clients/actions/newToken"
        async with admin.post(url, json={"clientID": "bob"}) as response:
            assert response.status == 200
            issued = (await response.json())["token"]

    # The exchanges that carried the secrets were logged: the logins (one refused) and
    # the request that issued a token, each with the client it was about.
    lines = [record.getMessage() for record in caplog.records]
    assert sum('"POST /authn/login HTTP/1.1"' in line for line in lines) == 2, lines
    assert any("refused" in line and "'ada'" in line for line in lines), lines
    assert "ada used urn:wothub:clients newToken" in lines, lines
    assert any('"POST /things/urn:wothub:clients/actions/newToken' in line for line in lines)
    # None carries a secret: not the records as made (before any formatter's masking),
    # nor as either of the hub's formatters writes them.
    for record in caplog.records:
        written = (
            record.getMessage(),
            repr(record.args),
            repr(record.__dict__),
            TextFormatter().format(record),
            JsonFormatter().format(record),
        )
        for secret in (PASSWORD, wrong, token, issued):
            assert not any(secret in text for text in written), record.__dict__


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


def test_info_logs_are_the_hubs_own_lines(tmp_path):
    # A hub serving requests (the dashboard's, the demo's over TLS) and stopping: at INFO
    # no access line per request, no state-machine chatter, no asyncio TLS noise.
    home = tmp_path / "home"
    env = serve_env(WOTHUB_HOME=str(home))
    hub = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "serve", "--log-level", "INFO"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 60
        while "wothub started" not in "".join(lines[-1:]):
            assert time.monotonic() < deadline, "".join(lines)
            lines.append(hub.stderr.readline())
        url = json.loads((home / "listeners.json").read_text())["listeners"]["https"]["local_url"]
        context = ssl.create_default_context(cafile=str(home / "certs" / "ca.pem"))
        for _ in range(3):
            with urllib.request.urlopen(url + "/.well-known/wot", context=context) as response:
                assert response.status == 200
        demo = subprocess.run(
            [sys.executable, "-m", "hub.cli", "demo", "--duration", "3"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert demo.returncode == 0, demo.stderr
    finally:
        hub.send_signal(signal.SIGTERM)
        _, rest = hub.communicate(timeout=30)
    log = "".join(lines) + rest
    assert "wothub stopped" in log
    for noise in ("uvicorn.access", "eof_received()"):
        assert noise not in log, noise
    assert "nats-server exited" not in log  # not while the hub itself stops
