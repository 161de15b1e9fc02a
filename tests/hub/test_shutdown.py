"""SIGTERM while actions pour in over HTTP for an offline agent: after a restart, every
action the hub answered 201 (or 200) is still queued, or done; none is lost."""

from __future__ import annotations

import asyncio
import signal
import ssl

import aiohttp
import pytest

from tests.support.served import Served
from tests.support.tds import sign_td
from tests.waiting import until

pytestmark = pytest.mark.timeout(120)

THING = "urn:dev:ops:shutdown-sign"
TD = sign_td(THING)
ACTIONS = 300  # bounded load


async def session(served: Served, url: str) -> aiohttp.ClientSession:
    """Logged in as admin (one login: a password check per request would be slow)."""
    context = ssl.create_default_context(cafile=str(served.home / "certs" / "ca.pem"))
    password = (served.home / "admin.password").read_text().strip()
    timeout = aiohttp.ClientTimeout(total=20)
    connector = aiohttp.TCPConnector(ssl=context, limit=20)
    client = aiohttp.ClientSession(url, connector=connector, timeout=timeout)
    login = {"clientID": "admin", "password": password}
    async with client.post("/authn/login", json=login) as response:
        token = (await response.json())["token"]
    client.headers.update({"Authorization": f"Bearer {token}", "Prefer": "respond-async"})
    return client


async def invoke(client: aiohttp.ClientSession, n: int) -> str | None:
    """The action's id when the hub accepted it; None when it did not (or went away)."""
    try:
        async with client.post(f"/things/{THING}/actions/say", json=f"m{n}") as response:
            if response.status in (200, 201):
                return (await response.json())["id"]
    except (TimeoutError, aiohttp.ClientError):
        pass
    return None


async def test_sigterm_under_load_loses_no_accepted_action(tmp_path):
    home = tmp_path / "home"
    served = Served(home, tmp_path / "first.log")
    try:
        url = served.wait_for_listeners()["local_url"]
        async with await session(served, url) as client:
            async with client.put(f"/things/{THING}", json=TD) as response:
                assert response.status == 201, await response.text()
            tasks = [asyncio.create_task(invoke(client, n)) for n in range(ACTIONS)]
            # SIGTERM arrives while most are still in flight
            await until(lambda: sum(task.done() for task in tasks) >= ACTIONS // 4, 30)
            served.process.send_signal(signal.SIGTERM)
            results = await asyncio.gather(*tasks)
        assert await asyncio.to_thread(served.process.wait, 30) == 0, served.log
    finally:
        if served.process.poll() is None:
            served.process.kill()
        served.log_file.close()
    accepted = [action_id for action_id in results if action_id]
    assert len(accepted) >= ACTIONS // 4

    again = Served(home, tmp_path / "second.log")
    try:
        url = again.wait_for_listeners()["local_url"]
        async with await session(again, url) as client:
            for action_id in accepted:
                async with client.get(f"/things/{THING}/actions/say/{action_id}") as response:
                    assert response.status == 200, (action_id, await response.text())
                    status = await response.json()
                    assert status["state"] in ("pending", "delivered", "completed"), status
    finally:
        again.stop()
