"""/health and /ready on the HTTPS port, without credentials."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(60)


async def test_health_needs_no_credentials(running):
    async with running.session() as anyone, anyone.get("/health") as response:
        assert response.status == 200
        assert (await response.json())["status"] == "ok"


async def test_ready_lists_its_checks_and_is_503_while_stopping(running):
    async with running.session() as anyone:
        async with anyone.get("/ready") as response:
            assert response.status == 200
            body = await response.json()
            assert body["checks"] == {"store": True, "https": True}
        running.hub.started = False  # what Hub.stop sets first
        async with anyone.get("/ready") as response:
            assert response.status == 503
            assert response.headers["Retry-After"] == "5"
            problem = await response.json()
            assert problem["checks"]["https"] is False
            assert "https" in problem["detail"]
        running.hub.started = True


@pytest.mark.parametrize("hub_options", [{"nats_enabled": True}])
async def test_ready_checks_the_managed_nats_server(running):
    async with running.session() as anyone:
        async with anyone.get("/ready") as response:
            assert response.status == 200, await response.text()
            checks = (await response.json())["checks"]
            assert checks["nats-server"] is True and checks["nats"] is True
        running.hub.nats.server.process.kill()
        await running.hub.nats.server.process.wait()
        async with anyone.get("/ready") as response:
            assert response.status == 503
            assert (await response.json())["checks"]["nats-server"] is False
