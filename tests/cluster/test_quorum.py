"""Two of three nodes die: the node left alone has no quorum. Its writes are refused
with 503 and a time to retry (HTTP problem details, an error response on NATS), not an
internal error; it stays up and serves what it reads from its replica; once a second
node is back, writes go on."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from clients.errors import HubError
from clients.nats import NatsConsumer
from tests.support.cluster import Cluster
from tests.support.tds import lamp_td
from tests.waiting import until
from vocabulary.things import CLIENTS_THING

pytestmark = pytest.mark.timeout(240)

THING = "urn:dev:ops:quorum-lamp"
MIA_PASSWORD = "mia's own password"
ADD_CLIENT = "/things/" + quote(CLIENTS_THING, safe="") + "/actions/addClient"


async def try_add_client(node, token, client_id):
    """``addClient`` at ``node``: its status, headers and body, whatever they are."""
    body = {"clientID": client_id, "kind": "consumer", "role": "viewer", "password": "p" * 16}
    async with node.session(token) as http, http.post(ADD_CLIENT, json=body) as answer:
        return answer.status, dict(answer.headers), await answer.json()


async def test_a_node_without_quorum_refuses_writes_with_503_and_recovers(tmp_path):
    cluster = Cluster(tmp_path)
    try:
        one, two, three = await cluster.start()
        admin = await one.login("admin", cluster.admin_password())
        await one.add_client(admin, "mia", "consumer", "manager", MIA_PASSWORD)
        ca_pem = (one.home / "certs" / "ca.pem").read_bytes()
        mia = await NatsConsumer.connect(
            one.listeners["nats"]["local_url"], "mia", password=MIA_PASSWORD, ca_pem=ca_pem
        )
        async with one.session(admin) as http:
            put = await http.put("/things/" + quote(THING, safe=""), json=lamp_td(THING))
            assert put.status in (200, 201, 204), await put.text()

        await two.kill_with_server()
        await three.kill_with_server()

        # HTTP: a write is a 503 problem with Retry-After, named as the store's.
        status, headers, problem = await try_add_client(one, admin, "ann")
        assert status == 503, problem
        assert headers["Content-Type"] == "application/problem+json"
        assert int(headers["Retry-After"]) >= 1
        assert "store" in problem["detail"]

        # NATS: a queued action is refused the same way, in an error response.
        with pytest.raises(HubError) as refused:
            await mia.invoke_action(THING, "fade", {"level": 10}, timeout=20)
        assert refused.value.status == 503

        # The node stays up and reads from its replica.
        async with one.session(admin) as http, http.get("/things") as answer:
            assert answer.status == 200
            assert THING in {td["id"] for td in await answer.json()}
        async with one.session() as http, http.get("/health") as answer:
            assert answer.status == 200

        # A second node back: a quorum again, and writes go on.
        await two.start([p for p in cluster.ports if p != two.route_port])
        await two.ready()

        async def written():
            return (await try_add_client(one, admin, "bea"))[0] in (200, 201)

        await until(written, 60)
        # The refused "ann" is there or not, never half: the lone leader may have taken
        # it and committed it once the quorum was back (docs/cluster.md); asked again,
        # it is created, or refused as existing.
        status, _headers, problem = await try_add_client(one, admin, "ann")
        assert status in (200, 201, 409), problem
        await mia.close()
    finally:
        await cluster.stop()
