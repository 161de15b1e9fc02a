"""docs/http.md, Twins: ``Prefer: wait=N`` holds an action's answer up to N seconds, at
most 60. The cap is ``MAX_WAIT`` of bindings/http/things_api.py; rather than wait a
minute, the test lowers it and checks that a far longer wait is cut to it."""

from __future__ import annotations

import time

import pytest

from bindings.http import things_api
from tests.support.tds import SIGN, sign_td
from tests.support.ws import ask, receive, socket

pytestmark = pytest.mark.timeout(60)

CAP = 0.5  # seconds, standing in for the 60 of MAX_WAIT


def test_the_documented_cap_is_60_s():
    assert things_api.MAX_WAIT == 60.0


async def test_a_longer_wait_is_cut_to_the_cap(running, monkeypatch):
    monkeypatch.setattr(things_api, "MAX_WAIT", CAP)
    agent_token = running.add_client("sign-agent", "agent", "agent")
    token = running.add_client("otto", "consumer", "operator")
    # The device is online (an offline one is not waited for) but never answers.
    async with socket(running, agent_token) as device, running.session(token) as consumer:
        registered = await ask(device, operation="updatething", correlationID="r", input=sign_td())
        assert registered.get("error") is None, registered
        started = time.monotonic()
        url = f"/things/{SIGN}/actions/say"
        async with consumer.post(url, json="hi", headers={"Prefer": "wait=3600"}) as response:
            took = time.monotonic() - started
            assert response.status == 201, await response.text()
            status = await response.json()
        delivered = await receive(device)
    assert delivered["operation"] == "invokeaction" and status["status"] == "pending"
    assert CAP <= took < CAP + 5  # waited for the cap, not the hour nor not at all
