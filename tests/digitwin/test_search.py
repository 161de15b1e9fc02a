"""JSONPath (RFC 9535) search over TDs, one TD at a time."""

import time
from collections.abc import Iterator
from typing import Any

import jsonpath_rfc9535 as jsonpath
import pytest

from digitwin.search import MAX_NODES, QueryTooCostly, compile_query, search
from tests.support.tds import thing_td
from vocabulary.problems import BadRequest


def prop(title: str, type_: str) -> dict[str, Any]:
    return {"title": title, "type": type_, "forms": [{"href": f"https://dev.local/{title}"}]}


TDS = [
    thing_td("urn:s:1", "Lamp", properties={"on": prop("Power", "boolean")}),
    thing_td(
        "urn:s:2",
        "Fan",
        properties={"speed": prop("Speed", "integer"), "on": prop("Power", "boolean")},
        actions={"spin": {"title": "Spin", "forms": [{"href": "https://dev.local/spin"}]}},
    ),
    thing_td("urn:s:3", "Lamp"),
    thing_td("urn:s:4", "Thermometer", properties={"t": prop("Temperature", "number")}),
]


def one_at_a_time(tds: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """A generator, as the directory listing is: it can be walked once only."""
    yield from tds


def on_the_whole_array(query: str) -> list[Any]:
    return [node.value for node in jsonpath.find(query, TDS)]


# --- results ------------------------------------------------------------------------------------


def test_filter_selects_the_matching_tds_in_order() -> None:
    found = search("$[?@.title == 'Lamp']", TDS)
    assert [td["id"] for td in found] == ["urn:s:1", "urn:s:3"]


def test_filter_then_name_selects_a_member_of_each_match() -> None:
    assert search("$[?@.title == 'Lamp'].id", TDS) == ["urn:s:1", "urn:s:3"]


def test_filter_on_a_nested_member() -> None:
    found = search("$[?@.properties.on.type == 'boolean'].id", TDS)
    assert found == ["urn:s:1", "urn:s:2"]


def test_descendant_title_collects_titles_from_every_td() -> None:
    assert search("$..title", TDS) == [
        "Lamp",
        "Power",
        "Fan",
        "Speed",
        "Power",
        "Spin",
        "Lamp",
        "Thermometer",
        "Temperature",
    ]


def test_wildcard_selects_every_td() -> None:
    assert search("$[*].id", TDS) == ["urn:s:1", "urn:s:2", "urn:s:3", "urn:s:4"]


def test_query_that_matches_nothing_is_empty() -> None:
    assert search("$[?@.title == 'Toaster']", TDS) == []


def test_search_over_no_tds_is_empty() -> None:
    assert search("$..title", []) == []


# --- the same as on the whole array -------------------------------------------------------------

QUERIES = [
    "$[?@.title == 'Lamp']",
    "$[?@.title == 'Lamp'].id",
    "$[?search(@.title, 'Lamp|Fan')].properties.*.title",
    "$[?@.properties.on].id",
    "$[*]",
    "$[*]['id', 'title']",
    "$.*.title",
    "$..title",
    "$..properties",
    "$..forms[*].href",
    "$..on.type",
    "$..*",
    "$..[?@.title]",
    "$..[?@.type == 'boolean'].title",
    "$..['title', 'id']",
    "$..[*, 'title']",
    "$[?@.title == 'Fan', ?@.title == 'Lamp'].id",
    "$[*, ?@.title == 'Lamp'].id",
]


def test_the_bare_root_is_refused_as_it_would_hold_every_td() -> None:
    with pytest.raises(BadRequest, match="whole directory"):
        search("$", one_at_a_time(TDS))


@pytest.mark.parametrize("query", QUERIES)
def test_search_over_a_generator_equals_the_query_on_the_whole_array(query: str) -> None:
    assert search(query, one_at_a_time(TDS)) == on_the_whole_array(query)


def test_search_pulls_the_tds_one_at_a_time() -> None:
    pulled = []

    def listing() -> Iterator[dict[str, Any]]:
        for td in TDS:
            pulled.append(td["id"])
            yield td

    assert search("$[*].id", listing()) == pulled == ["urn:s:1", "urn:s:2", "urn:s:3", "urn:s:4"]


# --- refused ------------------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["$[?@.title ==", "$.[", "title", "$[?@.title = 'Lamp']"])
def test_syntax_error_is_a_bad_request_naming_the_query(query: str) -> None:
    with pytest.raises(BadRequest) as info:
        compile_query(query)
    assert "invalid JSONPath query" in info.value.detail
    assert repr(query) in info.value.detail


@pytest.mark.parametrize("query", ["", "   "])
def test_empty_query_is_a_bad_request(query: str) -> None:
    with pytest.raises(BadRequest) as info:
        compile_query(query)
    assert "required" in info.value.detail


@pytest.mark.parametrize("query", ["$[0]", "$[1:3]", "$[-1].title", "$[0, 2]", "$..[0]"])
def test_positional_first_selector_is_a_bad_request(query: str) -> None:
    with pytest.raises(BadRequest) as info:
        compile_query(query)
    assert "by position" in info.value.detail
    assert "offset and limit" in info.value.detail


def test_positional_selector_after_the_first_step_is_accepted() -> None:
    assert search("$[?@.title == 'Fan'].actions.spin.forms[0].href", TDS) == [
        "https://dev.local/spin"
    ]


def test_bad_query_is_refused_before_any_td_is_read() -> None:
    pulled = []

    def listing() -> Iterator[dict[str, Any]]:
        for td in TDS:
            pulled.append(td)
            yield td

    with pytest.raises(BadRequest):
        search("$[0]", listing())
    assert pulled == []


# --- cost limits --------------------------------------------------------------------------------


def many(count: int) -> list[dict[str, Any]]:
    return [
        thing_td(f"urn:s:{i}", f"Fan {i}", properties={"speed": prop("Speed", "integer")})
        for i in range(count)
    ]


def nested(count: int) -> list[dict[str, Any]]:
    """TDs with an object property four levels deep, as real TDs have."""
    schema: dict[str, Any] = {"type": "integer", "minimum": 0}
    for level in range(4):
        schema = {"type": "object", "properties": {f"a{level}": schema, f"b{level}": schema}}
    return [
        thing_td(
            f"urn:s:{i}", f"Box {i}", properties={"state": {**schema, **prop("State", "object")}}
        )
        for i in range(count)
    ]


def test_repeated_descendant_segments_are_refused_naming_the_limit() -> None:
    with pytest.raises(QueryTooCostly) as info:
        search("$..*..*..*..*..*..*", nested(100))
    problem = info.value.to_dict()
    assert problem["status"] == 422
    assert problem["limit"] == "max_search_nodes"
    assert "too costly" in problem["detail"]
    assert "$..*..*..*..*..*..*" in problem["detail"]
    assert str(MAX_NODES) in problem["detail"]


def test_descendants_inside_a_filter_are_counted() -> None:
    query = "$[?count(@..*..*..*) > 0].id"  # the steps themselves pass one node per TD
    assert search(query, TDS, max_nodes=10_000) == [td["id"] for td in TDS]
    with pytest.raises(QueryTooCostly) as info:
        search(query, TDS, max_nodes=100)
    assert info.value.extensions["limit"] == "max_search_nodes"


def test_a_refused_search_stops_reading_the_tds() -> None:
    pulled = []

    def listing() -> Iterator[dict[str, Any]]:
        for td in many(1000):
            pulled.append(td["id"])
            yield td

    with pytest.raises(QueryTooCostly):
        search("$..*..*", listing(), max_nodes=2_000)
    assert 0 < len(pulled) < 1000


def test_a_search_that_runs_too_long_is_refused() -> None:
    def slow_listing() -> Iterator[dict[str, Any]]:
        for td in many(100):
            time.sleep(0.01)  # simulates a slow store: reading costs time, not nodes
            yield td

    with pytest.raises(QueryTooCostly) as info:
        search("$[*].id", slow_listing(), max_seconds=0.05)
    assert info.value.extensions["limit"] == "max_search_seconds"


def test_ordinary_queries_over_a_large_directory_fit_the_node_limit() -> None:
    tds = nested(1000)
    unhurried = 60.0  # the time limit depends on the machine; the node limit does not
    assert len(search("$[?@.title == 'Box 7'].id", tds, max_seconds=unhurried)) == 1
    assert len(search("$[*].properties", tds, max_seconds=unhurried)) == 1000
    assert len(search("$..forms[*].href", tds, max_seconds=unhurried)) == 1000
