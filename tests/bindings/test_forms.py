"""The four bindings' forms in twin TDs offer the operations the twin TD builder decides
(``digitwin.twintd.operations``); a binding leaves out only what its protocol has no
form for, and never decides on its own."""

from itertools import combinations
from typing import Any

import pytest

from bindings.http.forms import HttpForms
from bindings.mqtt.forms import MqttForms
from bindings.nats.forms import NatsForms
from bindings.websocket.forms import WebSocketForms
from digitwin.twintd import AFFORDANCE_KINDS, build_twin_td, operations
from digitwin.validation import validate_td

HTTP = HttpForms("https://hub.example:8444")
PROVIDERS = {
    "http": HTTP,
    "websocket": WebSocketForms(HTTP.security_definitions, "https://hub.example:8444"),
    "mqtt": MqttForms("mqtts://hub.example:8883", security=HTTP.security_definitions),
    "nats": NatsForms("nats://hub.example:4222"),
}
SCHEMES = {"https": "http", "wss": "websocket", "mqtts": "mqtt", "nats": "nats"}

READ, WRITE = "readproperty", "writeproperty"
OBSERVE = ["observeproperty", "unobserveproperty"]
ACTION = ["invokeaction", "queryaction", "cancelaction"]
EVENT = ["subscribeevent", "unsubscribeevent"]


def thing() -> dict[str, Any]:
    form = [{"href": "https://device.local/x"}]
    return {
        "@context": "https://www.w3.org/2022/wot/td/v1.1",
        "id": "urn:dev:ops:forms-1",
        "title": "Forms",
        "securityDefinitions": {"nosec_sc": {"scheme": "nosec"}},
        "security": "nosec_sc",
        "properties": {
            "level": {"type": "integer", "forms": form},
            "model": {"type": "string", "readOnly": True, "forms": form},
            "pin": {"type": "string", "writeOnly": True, "forms": form},
            "mode": {"type": "string", "observable": False, "forms": form},
        },
        "actions": {"fade": {"input": {"type": "integer"}, "forms": form}},
        "events": {"overheated": {"data": {"type": "number"}, "forms": form}},
    }


def offered(forms: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The operations each binding's forms offer, in order, each once."""
    out: dict[str, list[str]] = {}
    for form in forms:
        ops = out.setdefault(SCHEMES[form["href"].split("://")[0]], [])
        for op in [form["op"]] if isinstance(form["op"], str) else form["op"]:
            if op not in ops:
                ops.append(op)
    return out


# What each binding can carry of what the hub serves: HTTP has no static form for an
# action's status (its URL is per request), MQTT none for requests (they go to the
# client's own topic). Everything else follows the affordance.
EXPECTED = {
    ("properties", "level"): {
        "http": [READ, WRITE, *OBSERVE],
        "websocket": [READ, WRITE, *OBSERVE],
        "mqtt": [READ, *OBSERVE],
        "nats": [READ, WRITE, *OBSERVE],
    },
    ("properties", "model"): {
        "http": [READ, *OBSERVE],
        "websocket": [READ, *OBSERVE],
        "mqtt": [READ, *OBSERVE],
        "nats": [READ, *OBSERVE],
    },
    ("properties", "pin"): {"http": [WRITE], "websocket": [WRITE], "nats": [WRITE]},
    ("properties", "mode"): {
        "http": [READ, WRITE],
        "websocket": [READ, WRITE],
        "mqtt": [READ],
        "nats": [READ, WRITE],
    },
    ("actions", "fade"): {"http": ["invokeaction"], "websocket": ACTION, "nats": ACTION},
    ("events", "overheated"): {"http": EVENT, "websocket": EVENT, "mqtt": EVENT, "nats": EVENT},
}


def test_twin_td_operations_per_binding() -> None:
    twin = build_twin_td(thing(), list(PROVIDERS.values()))
    assert validate_td(twin) is None
    for (member, name), expected in EXPECTED.items():
        assert offered(twin[member][name]["forms"]) == expected, (member, name)


def test_no_binding_offers_an_operation_the_hub_does_not_serve() -> None:
    td = thing()
    twin = build_twin_td(td, list(PROVIDERS.values()))
    for member, kind in AFFORDANCE_KINDS.items():
        for name, affordance in td[member].items():
            served = operations(kind, affordance)
            for binding, ops in offered(twin[member][name]["forms"]).items():
                assert set(ops) <= set(served), (binding, member, name)
    for binding, ops in offered(twin["forms"]).items():
        assert set(ops) <= set(operations("thing")), binding


@pytest.mark.parametrize("binding", PROVIDERS)
@pytest.mark.parametrize("kind", ["property", "action", "event", "thing"])
def test_a_binding_maps_whatever_it_is_given(binding: str, kind: str) -> None:
    """For every subset of the operations of a kind, the binding offers exactly those of
    the subset it can carry (in its own order of forms): it decides nothing itself."""
    provider = PROVIDERS[binding]
    name = None if kind == "thing" else "x"
    every = operations(kind)
    carried = offered(provider.forms("urn:dev:ops:forms-1", kind, name, every)).get(binding, [])
    for size in range(len(every) + 1):
        for subset in combinations(every, size):
            forms = provider.forms("urn:dev:ops:forms-1", kind, name, subset)
            expected = [op for op in carried if op in subset]
            assert offered(forms).get(binding, []) == expected, subset


def test_thing_level_operations_per_binding() -> None:
    twin = build_twin_td(thing(), list(PROVIDERS.values()))
    every = list(operations("thing"))
    assert offered(twin["forms"]) == {
        "http": [op for op in every if op != "readmultipleproperties"],
        "websocket": [op for op in every if op != "writemultipleproperties"],
        "mqtt": [
            "observeallproperties",
            "unobserveallproperties",
            "subscribeallevents",
            "unsubscribeallevents",
        ],
        "nats": [
            "readallproperties",
            "readmultipleproperties",
            "queryallactions",
            "observeallproperties",
            "unobserveallproperties",
            "subscribeallevents",
            "unsubscribeallevents",
        ],
    }


def test_each_binding_links_the_state_document_or_its_changes() -> None:
    """``rel`` state: HTTP the document (and its SSE stream), the buses the subject or
    topic filter of its changes, one property each (docs/digitwin.md)."""
    twin = build_twin_td(thing(), list(PROVIDERS.values()))
    assert validate_td(twin) is None
    links = {
        SCHEMES[link["href"].split("://")[0]]: link
        for link in twin["links"]
        if link["rel"] == "state"
    }
    assert links["http"]["href"] == "https://hub.example:8444/things/urn:dev:ops:forms-1/state"
    assert links["mqtt"]["mqv:filter"] == "wot/twin/urn:dev:ops:forms-1/state/+"
    assert links["mqtt"]["href"] == "mqtts://hub.example:8883/wot/twin/urn:dev:ops:forms-1/state/+"
    assert links["nats"]["nats:subject"] == "wot.twin.urn:dev:ops:forms-1.state.*"
    assert set(links) == {"http", "mqtt", "nats"}  # WebSocket: the observestate request
