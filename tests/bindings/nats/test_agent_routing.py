"""Which hub handles the agents at each nats-server (bindings/nats/agent_routing.py): the
first by name of the hubs at that server, else the first by name of all hubs alive; an
agent is handled where the handler of its newest connection's server is."""

from __future__ import annotations

from bindings.nats.agent_routing import AgentRouting


def routing(node: str, server: str, hubs: dict[str, str]) -> AgentRouting:
    routed = AgentRouting(node, server)
    routed.set_hubs(hubs)
    return routed


def test_each_server_with_a_hub_is_its_hubs():
    hubs = {"n1": "s1", "n2": "s2", "n3": "s3"}
    for node, server in hubs.items():
        routed = routing(node, server, hubs)
        assert [routed.handler(s) for s in ("s1", "s2", "s3")] == ["n1", "n2", "n3"]


def test_a_server_without_a_hub_is_the_first_hubs_by_name():
    hubs = {"b": "s2", "a": "s1"}
    assert routing("b", "s2", hubs).handler("s9") == "a"
    assert routing("a", "s1", hubs).handler("s9") == "a"


def test_of_several_hubs_at_one_server_the_first_by_name_handles_its_agents():
    hubs = {"n2": "s1", "n1": "s1", "n3": "s3"}
    second = routing("n2", "s1", hubs)
    assert second.handler("s1") == "n1"
    second.connected(("id1", 7), "s1", {"user": "lamp", "start": "1"})
    assert second.here("lamp") is False
    assert routing("n1", "s1", hubs).handler("s1") == "n1"


def test_an_agent_is_handled_by_the_handler_of_its_newest_connections_server():
    hubs = {"n1": "s1", "n2": "s2"}
    one = routing("n1", "s1", hubs)
    assert one.here("lamp") is None  # no connection of it known yet
    one.connected(("id1", 1), "s1", {"user": "lamp", "start": "2026-01-01T00:00:01Z"})
    assert one.here("lamp") is True
    one.connected(("id2", 1), "s2", {"user": "lamp", "start": "2026-01-01T00:00:02Z"})
    assert one.here("lamp") is False
    one.disconnected(("id2", 1))
    assert one.here("lamp") is True


def test_a_hub_that_goes_or_comes_moves_its_servers_agents():
    one = routing("n1", "s1", {"n1": "s1", "n2": "s2", "n3": "s3"})
    one.connected(("id2", 1), "s2", {"client_type": "mqtt", "client_id": "lamp", "start": "1"})
    assert one.here("lamp") is False
    # n2 is gone (its lease ran out): n1, the first by name, takes server s2; its agents
    # stay where they are, and the hub knows each one's connection kind.
    assert one.set_hubs({"n3": "s3"}) == {"s2"}
    assert one.handler("s2") == "n1" and one.here("lamp") is True
    assert one.server_ids("s2") == {"id2"} and one.clients_at("s2") == {"lamp": True}
    # n2 is back: s2 is its again.
    assert one.set_hubs({"n2": "s2", "n3": "s3"}) == {"s2"}
    assert one.here("lamp") is False
    assert one.set_hubs({"n2": "s2", "n3": "s3"}) == set()  # nothing changed
