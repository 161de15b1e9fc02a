"""docs/nats.md, Auth callout: the subject permissions in the callout's user JWT, per
role, enforced by nats-server itself. nats-py clients with a password on the managed
server; a publish or subscription outside them is refused by the server (``Permissions
Violation`` to ``error_cb``), one within them is not (a refused publish of its own
is the barrier, see ``Watched.refusals``)."""

from __future__ import annotations

import pytest

from bindings.nats.agent_routing import FOLLOW, LOGINS
from bindings.nats.callout import mqtt_id_belongs, permissions
from bindings.nats.other_nodes import ACTIONS

from .conftest import Watched

pytestmark = pytest.mark.timeout(90)

# ACTIONS, LOGINS, FOLLOW: what the nodes of a cluster tell each other (action statuses,
# whose connection is whose, "subscribe to this agent")
NODES = (ACTIONS, LOGINS, f"{FOLLOW}.n1")
NEVER = (
    "$SYS.REQ.SERVER.PING",
    "$SYS.ACCOUNT.APP.CONNECT",
    "_INBOX.other.x",
    "wot.other",
    *NODES,
)
NEVER_SUBSCRIBE = (
    ">",
    "$SYS.>",
    "wot.>",
    "wot.client.otto.resp",
    "wot.agent.lamp-agent.req",
    *NODES,
)

# role -> (publish allowed, publish refused, subscribe allowed, subscribe refused)
CASES = {
    "agent": (
        # wot.client.{id}.req and .resp: MQTT's one request topic and its responses;
        # .req.{op} for the requests of the role (reading its own Things)
        [
            "wot.agent.fan-agent.hello",
            "wot.agent.fan-agent.prop.urn:x.level",
            "wot.client.fan-agent.req",
            "wot.client.fan-agent.req.readthing",
            "wot.client.fan-agent.req.queryhistory",
        ],
        [
            "wot.agent.lamp-agent.hello",
            "wot.client.fan-agent.req.readproperty",
            "wot.client.fan-agent.req.invokeaction",
            "wot.client.otto.req.readthing",
            "wot.client.fan-agent.req.observestate",
            "wot.twin.urn:x.prop.level",
        ],
        ["wot.agent.fan-agent.req", "_INBOX.fan-agent.abc", "wot.client.fan-agent.resp"],
        ["wot.twin", "wot.twin.>", "wot.client.otto.resp", "_INBOX.*.x"],
    ),
    "viewer": (
        [
            "wot.client.fan-agent.req",  # MQTT's one request topic: the hub checks the op
            "wot.client.fan-agent.req.readproperty",
            "wot.client.fan-agent.req.observeproperty",
            "wot.client.fan-agent.req.observestate",
        ],
        [
            "wot.client.fan-agent.req.invokeaction",
            "wot.client.fan-agent.req.writeproperty",
            "wot.client.fan-agent.req.cancelaction",
            "wot.client.otto.req.readproperty",
            "wot.agent.fan-agent.hello",
            "wot.twin.urn:x.prop.level",
        ],
        # wot.twin itself: an MQTT wot/twin/# subscribes the parent level too
        [
            "wot.twin",
            "wot.twin.>",
            "wot.twin.*.prop.*",
            "wot.twin.*.state.*",
            "wot.client.fan-agent.resp",
        ],
        ["wot.agent.fan-agent.req", "_INBOX.otto.>", "wot.twinx"],
    ),
    "operator": (
        ["wot.client.fan-agent.req.invokeaction", "wot.client.fan-agent.req.cancelaction"],
        ["wot.client.fan-agent.req.writeproperty", "wot.agent.fan-agent.hello"],
        ["wot.twin.>", "wot.client.fan-agent.resp"],
        ["wot.agent.fan-agent.req"],
    ),
    "manager": (
        ["wot.client.fan-agent.req.writeproperty"],
        ["wot.agent.fan-agent.hello"],
        ["wot.twin", "wot.twin.>"],
        ["wot.agent.fan-agent.req"],
    ),
    "service": (
        ["wot.agent.fan-agent.hello", "wot.client.fan-agent.req.writeproperty"],
        ["wot.agent.lamp-agent.hello", "wot.client.otto.req.readproperty"],
        ["wot.agent.fan-agent.req", "wot.client.fan-agent.resp", "wot.twin.>"],
        ["wot.client.otto.resp"],
    ),
}
KINDS = {"agent": "agent", "service": "service"}


@pytest.mark.parametrize("role", list(CASES))
async def test_each_role_gets_its_subjects_and_no_others(nats_hub, role):
    nats_hub.add("fan-agent", KINDS.get(role, "consumer"), role)
    client = await Watched.connect(nats_hub, "fan-agent", allow_reconnect=False)
    try:
        pub_ok, pub_no, sub_ok, sub_no = CASES[role]
        ops = [
            *(("publish", subject) for subject in [*pub_ok, *pub_no, *NEVER]),
            *(("subscribe", subject) for subject in [*sub_ok, *sub_no, *NEVER_SUBSCRIBE]),
        ]
        expected = {
            *(("publish", subject) for subject in [*pub_no, *NEVER]),
            *(("subscribe", subject) for subject in [*sub_no, *NEVER_SUBSCRIBE]),
        }
        assert await client.refusals(ops) == expected
        assert client.nc.is_connected  # refusals do not close the connection
    finally:
        await client.close()


def test_the_grants_follow_the_client_id_as_one_token():
    granted = permissions("lamp.1 a", "agent")
    client = "wot.client.lamp%2E1%20a.req"
    assert granted["pub"]["allow"] == [
        "wot.agent.lamp%2E1%20a.>",
        client,
        *(
            f"{client}.{op}"
            for op in ("deletething", "queryhistory", "readstate", "readthing", "updatething")
        ),
    ]
    assert granted["sub"]["allow"] == [
        "_INBOX.lamp%2E1%20a.>",
        "wot.agent.lamp%2E1%20a.req",
        "wot.client.lamp%2E1%20a.resp",
    ]


def test_an_mqtt_client_id_must_be_the_clients_own():
    assert mqtt_id_belongs("lamp-agent", "lamp-agent")
    assert mqtt_id_belongs("lamp-agent", "lamp-agent/kitchen")
    assert mqtt_id_belongs("lamp-agent", "lamp-agent/a/b")
    # the id as a topic level: percent-encoded where it holds what no MQTT id may
    assert mqtt_id_belongs("lamp.1", "lamp%2E1/x")
    assert not mqtt_id_belongs("lamp.1", "lamp.1")
    # another client's id, a longer id, an id made up by a tool or by nats-server
    for other in ("fan-agent", "lamp-agent2", "lamp-agentx/y", "mosq-3f9c", "", "/lamp-agent"):
        assert not mqtt_id_belongs("lamp-agent", other), other
    # a client "a" cannot take the ids of a client "a/b" (its encoded id is "a%2Fb")
    assert not mqtt_id_belongs("a", "a%2Fb")
    assert mqtt_id_belongs("a/b", "a%2Fb") and not mqtt_id_belongs("a/b", "a/b")
