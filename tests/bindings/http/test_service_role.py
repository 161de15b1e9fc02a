"""docs/auth.md, Authorization, over HTTP: the ``service`` role may do what an agent may
for its own Things (register them) plus what a manager may as a consumer (write
properties, invoke actions on others' Things); nothing of an admin's."""

from __future__ import annotations

import pytest

from tests.support.http import ASYNC
from tests.support.tds import SIGN, sign_td

pytestmark = pytest.mark.timeout(60)

OWN = "urn:dev:ops:svc-own-1"


async def test_a_service_registers_its_own_things_and_manages_others(running):
    running.add_thing("sign-agent", sign_td())  # another agent's Thing
    token = running.add_client("svc", "service", "service")
    async with running.session(token) as service:
        async with service.put(f"/things/{OWN}", json=sign_td(OWN)) as registered:
            assert registered.status == 201, await registered.text()
        assert running.hub.twin.things_of("svc") == [OWN]
        # As a manager: write a property and invoke an action of the other agent's Thing.
        prop = f"/things/{SIGN}/properties/text"
        async with service.put(prop, json="hello", headers=ASYNC) as written:
            assert written.status in (202, 204), await written.text()
        say = f"/things/{SIGN}/actions/say"
        async with service.post(say, json="hi", headers=ASYNC) as invoked:
            assert invoked.status == 201, await invoked.text()
        # Not as an agent of someone else's Thing, and not as an admin.
        async with service.delete(f"/things/{SIGN}") as deleted:
            assert deleted.status == 403, await deleted.text()
        clients = "/things/urn:wothub:clients/actions/listClients"
        async with service.post(clients, json={}) as listed:
            assert listed.status == 403, await listed.text()
