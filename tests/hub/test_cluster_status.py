"""``GET /admin/cluster`` on a single hub: administrators only, and it says there is no
cluster (the cluster's own answer is tested with three nodes in tests/cluster/)."""

from __future__ import annotations

import pytest

from hub.cluster_cli import print_store
from tests.support.problems import problem_of

pytestmark = pytest.mark.timeout(60)


async def test_a_single_hub_says_it_is_no_cluster(admin):
    async with admin.get("/admin/cluster") as response:
        assert response.status == 200
        report = await response.json()
    assert (report["cluster"], report["node"], report["nodes"]) == (None, None, [])
    assert report["store"]["backend"] == "leveldb"
    assert report["agents"] == {}


async def test_only_administrators_see_the_cluster(running, viewer):
    async with viewer.get("/admin/cluster") as response:
        await problem_of(response, 403)
    async with running.session() as anyone, anyone.get("/admin/cluster") as response:
        await problem_of(response, 401)


async def test_health_names_no_node_on_a_single_hub(running):
    async with running.session() as anyone, anyone.get("/health") as response:
        assert await response.json() == {"status": "ok"}


def test_the_status_shows_a_bucket_whose_stream_did_not_answer(capsys):
    """``wothub cluster status`` prints every bucket: one whose stream did not answer
    (electing its leader) with its error, beside the others' replicas."""
    print_store(
        {
            "backend": "jetstream",
            "connected": "nats://127.0.0.1:4222",
            "buckets": [
                {"bucket": "clients", "error": "nats: timeout"},
                {
                    "bucket": "things",
                    "replicas": 3,
                    "leader": "n1",
                    "peers": [
                        {"name": "n2", "current": True, "offline": False},
                        {"name": "n3", "current": False, "offline": True},
                    ],
                    "keys": 7,
                },
            ],
        }
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "store: jetstream, connected to nats://127.0.0.1:4222"
    clients, things = lines[3].split(), lines[4].split()
    assert clients == ["clients", "-", "-", "no", "answer:", "nats:", "timeout", "-"]
    assert things == ["things", "3", "n1", "n2,", "n3", "(offline)", "7"]
