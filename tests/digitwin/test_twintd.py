"""The twin TD: the agent's TD with the hub's forms and security, valid for any consumer."""

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from digitwin.twintd import TD10_CONTEXT, TD11_CONTEXT, build_twin_td, operations
from digitwin.validation import validate_td
from tests.support.examples import EXAMPLE_TDS

DISCOVERY = "https://www.w3.org/2022/wot/discovery"


class FakeBinding:
    """A binding's form provider: one form per affordance, with the operations it is given."""

    def __init__(self, name: str, base: str, scheme: str, thing_forms: bool = True) -> None:
        self.name = name
        self.base = base
        self.scheme = scheme
        self.thing_forms = thing_forms

    def security_definitions(self) -> dict[str, dict[str, Any]]:
        return {self.scheme: {"scheme": "bearer", "in": "header"}}

    def forms(
        self, thing_id: str, kind: str, name: str | None, operations: tuple[str, ...]
    ) -> list[dict[str, Any]]:
        thing = f"{self.base}/things/{quote(thing_id, safe='')}"
        if kind == "thing":
            if not self.thing_forms:
                return []
            return [{"href": f"{thing}/properties", "op": ["readallproperties"]}]
        return [{"href": f"{thing}/{kind}/{name}", "op": list(operations)}] if operations else []


HTTP = FakeBinding("http", "https://hub.example:8444", "http_bearer_sc")
WS = FakeBinding("websocket", "wss://hub.example:8444/ws", "ws_bearer_sc")


def hrefs(td: dict[str, Any]) -> Iterator[str]:
    """Every form href in a TD, affordance-level and Thing-level."""
    for member in ("properties", "actions", "events"):
        for affordance in (td.get(member) or {}).values():
            for form in affordance["forms"]:
                yield form["href"]
    for form in td.get("forms", []):
        yield form["href"]


@pytest.fixture
def lamp_with_thing_forms(lamp: dict[str, Any]) -> dict[str, Any]:
    lamp["base"] = "https://mylamp.example.com/"
    lamp["forms"] = [{"href": "all", "op": "readallproperties"}]
    return lamp


# --- forms --------------------------------------------------------------------------------------


def test_every_affordance_form_is_the_providers(lamp: dict[str, Any]) -> None:
    twin = build_twin_td(lamp, [HTTP])
    thing = "https://hub.example:8444/things/urn%3Auuid%3A0804d572-cce8-422a-bb7c-4412fcd56f06"
    assert twin["properties"]["status"]["forms"] == [
        {
            "href": f"{thing}/property/status",
            "op": ["readproperty", "writeproperty", "observeproperty", "unobserveproperty"],
        }
    ]
    assert twin["actions"]["toggle"]["forms"] == [
        {"href": f"{thing}/action/toggle", "op": ["invokeaction", "queryaction", "cancelaction"]}
    ]
    assert twin["events"]["overheating"]["forms"] == [
        {"href": f"{thing}/event/overheating", "op": ["subscribeevent", "unsubscribeevent"]}
    ]


def test_no_agent_href_is_left(lamp_with_thing_forms: dict[str, Any]) -> None:
    twin = build_twin_td(lamp_with_thing_forms, [HTTP])
    assert all(href.startswith("https://hub.example:8444/") for href in hrefs(twin))


def test_thing_level_forms_are_the_providers(lamp_with_thing_forms: dict[str, Any]) -> None:
    twin = build_twin_td(lamp_with_thing_forms, [HTTP])
    thing = "https://hub.example:8444/things/urn%3Auuid%3A0804d572-cce8-422a-bb7c-4412fcd56f06"
    assert twin["forms"] == [{"href": f"{thing}/properties", "op": ["readallproperties"]}]


def test_agent_thing_level_forms_go_when_no_provider_has_any(
    lamp_with_thing_forms: dict[str, Any],
) -> None:
    provider = FakeBinding("http", "https://hub.example:8444", "http_bearer_sc", thing_forms=False)
    assert "forms" not in build_twin_td(lamp_with_thing_forms, [provider])


def test_forms_of_two_providers_come_in_provider_order(lamp: dict[str, Any]) -> None:
    twin = build_twin_td(lamp, [HTTP, WS])
    forms = twin["actions"]["toggle"]["forms"]
    assert [form["href"].split("://")[0] for form in forms] == ["https", "wss"]


def test_base_is_dropped(lamp_with_thing_forms: dict[str, Any]) -> None:
    assert "base" not in build_twin_td(lamp_with_thing_forms, [HTTP])


# --- the operations the hub serves ---------------------------------------------------------------

READ, WRITE, OBSERVE, UNOBSERVE = (
    "readproperty",
    "writeproperty",
    "observeproperty",
    "unobserveproperty",
)


@pytest.mark.parametrize(
    ("affordance", "expected"),
    [
        ({}, [READ, WRITE, OBSERVE, UNOBSERVE]),
        ({"readOnly": False, "writeOnly": False}, [READ, WRITE, OBSERVE, UNOBSERVE]),
        ({"observable": True}, [READ, WRITE, OBSERVE, UNOBSERVE]),
        ({"readOnly": True}, [READ, OBSERVE, UNOBSERVE]),
        ({"writeOnly": True}, [WRITE]),
        ({"writeOnly": True, "observable": True}, [WRITE]),
        ({"observable": False}, [READ, WRITE]),
        ({"readOnly": True, "observable": False}, [READ]),
        ({"readOnly": True, "writeOnly": True}, []),
    ],
    ids=[
        "plain",
        "explicit-defaults",
        "observable",
        "read-only",
        "write-only",
        "write-only-observable",
        "not-observable",
        "read-only-not-observable",
        "read-and-write-only",
    ],
)
def test_property_operations_follow_read_only_write_only_and_observable(
    affordance: dict[str, Any], expected: list[str]
) -> None:
    assert list(operations("property", {"type": "number", **affordance})) == expected


def test_action_event_and_thing_operations() -> None:
    assert operations("action") == ("invokeaction", "queryaction", "cancelaction")
    assert operations("event") == ("subscribeevent", "unsubscribeevent")
    assert operations("thing") == (
        "readallproperties",
        "readmultipleproperties",
        "writemultipleproperties",
        "observeallproperties",
        "unobserveallproperties",
        "subscribeallevents",
        "unsubscribeallevents",
        "queryallactions",
    )


def test_each_provider_is_given_the_operations_of_each_affordance(lamp: dict[str, Any]) -> None:
    lamp["properties"]["status"]["readOnly"] = True
    lamp["properties"]["secret"] = {"type": "string", "writeOnly": True, "forms": [{"href": "s"}]}
    twin = build_twin_td(lamp, [HTTP, WS])
    for name, expected in [("status", [READ, OBSERVE, UNOBSERVE]), ("secret", [WRITE])]:
        assert [form["op"] for form in twin["properties"][name]["forms"]] == [expected, expected]


# --- security -----------------------------------------------------------------------------------


def test_one_provider_gives_its_scheme(lamp: dict[str, Any]) -> None:
    twin = build_twin_td(lamp, [HTTP])
    assert twin["securityDefinitions"] == {"http_bearer_sc": {"scheme": "bearer", "in": "header"}}
    assert twin["security"] == ["http_bearer_sc"]


def test_two_providers_give_a_combo_of_their_schemes(lamp: dict[str, Any]) -> None:
    twin = build_twin_td(lamp, [HTTP, WS])
    [combo] = twin["security"]
    definitions = twin["securityDefinitions"]
    assert definitions[combo] == {"scheme": "combo", "oneOf": ["http_bearer_sc", "ws_bearer_sc"]}
    assert set(definitions) == {combo, "http_bearer_sc", "ws_bearer_sc"}


def test_agent_security_definitions_are_not_kept(lamp: dict[str, Any]) -> None:
    assert "basic_sc" not in build_twin_td(lamp, [HTTP, WS])["securityDefinitions"]


def test_provider_without_security_gives_nosec(lamp: dict[str, Any]) -> None:
    class OpenBinding(FakeBinding):
        def security_definitions(self) -> dict[str, dict[str, Any]]:
            return {}

    twin = build_twin_td(lamp, [OpenBinding("http", "http://127.0.0.1:8080", "unused")])
    [name] = twin["security"]
    assert twin["securityDefinitions"] == {name: {"scheme": "nosec"}}


# --- @context -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        (TD11_CONTEXT, [TD10_CONTEXT, TD11_CONTEXT]),
        (TD10_CONTEXT, [TD10_CONTEXT, TD11_CONTEXT]),
        ([TD11_CONTEXT, TD10_CONTEXT], [TD10_CONTEXT, TD11_CONTEXT]),
        (
            [TD11_CONTEXT, {"saref": "https://w3id.org/saref#"}, DISCOVERY],
            [TD10_CONTEXT, TD11_CONTEXT, {"saref": "https://w3id.org/saref#"}, DISCOVERY],
        ),
        (
            [DISCOVERY, TD10_CONTEXT, {"@language": "de"}, TD11_CONTEXT],
            [TD10_CONTEXT, TD11_CONTEXT, DISCOVERY, {"@language": "de"}],
        ),
    ],
    ids=["td11-string", "td10-string", "both-reversed", "extras", "extras-interleaved"],
)
def test_context_has_td10_then_td11_then_the_extras_once(
    lamp: dict[str, Any], context: Any, expected: list[Any]
) -> None:
    lamp["@context"] = context
    assert build_twin_td(lamp, [HTTP])["@context"] == expected


# --- the agent's TD -----------------------------------------------------------------------------


def test_input_td_is_not_modified(lamp_with_thing_forms: dict[str, Any]) -> None:
    before = copy.deepcopy(lamp_with_thing_forms)
    build_twin_td(lamp_with_thing_forms, [HTTP, WS])
    assert lamp_with_thing_forms == before


def test_members_other_than_forms_and_security_are_kept(lamp: dict[str, Any]) -> None:
    twin = build_twin_td(lamp, [HTTP])
    assert (twin["id"], twin["title"]) == (lamp["id"], lamp["title"])
    status = {k: v for k, v in twin["properties"]["status"].items() if k != "forms"}
    assert status == {k: v for k, v in lamp["properties"]["status"].items() if k != "forms"}


def test_without_providers_the_agents_forms_stay(
    lamp_with_thing_forms: dict[str, Any],
) -> None:
    twin = build_twin_td(lamp_with_thing_forms, [])
    for member in ("properties", "actions", "events"):
        for name, affordance in lamp_with_thing_forms[member].items():
            assert twin[member][name]["forms"] == affordance["forms"]
    assert twin["forms"] == lamp_with_thing_forms["forms"]
    assert twin["security"] == lamp_with_thing_forms["security"]
    assert twin["securityDefinitions"] == lamp_with_thing_forms["securityDefinitions"]


def test_without_providers_the_result_is_still_a_copy(lamp: dict[str, Any]) -> None:
    twin = build_twin_td(lamp, [])
    twin["properties"]["status"]["forms"].clear()
    assert lamp["properties"]["status"]["forms"]


# --- every official example ---------------------------------------------------------------------


def test_examples_are_found() -> None:
    assert len(EXAMPLE_TDS) >= 12


@pytest.mark.parametrize("path", EXAMPLE_TDS, ids=lambda path: path.name)
@pytest.mark.parametrize("providers", [[HTTP], [HTTP, WS]], ids=["one-binding", "two-bindings"])
def test_twin_td_of_every_example_is_valid(path: Path, providers: list[FakeBinding]) -> None:
    td = json.loads(path.read_text("utf-8"))
    twin = build_twin_td(td, providers)
    assert validate_td(twin) is None
    assert twin["@context"][:2] == [TD10_CONTEXT, TD11_CONTEXT]
