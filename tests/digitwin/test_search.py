"""JSONPath (RFC 9535) search over TDs, one TD at a time."""

from collections.abc import Iterator
from typing import Any

import jsonpath_rfc9535 as jsonpath
import pytest

from digitwin.errors import BadRequest
from digitwin.search import compile_query, search

TD11 = "https://www.w3.org/2022/wot/td/v1.1"


def thing(thing_id: str, title: str, **members: Any) -> dict[str, Any]:
    return {
        "@context": TD11,
        "id": thing_id,
        "title": title,
        "securityDefinitions": {"nosec_sc": {"scheme": "nosec"}},
        "security": "nosec_sc",
        **members,
    }


def prop(title: str, type_: str) -> dict[str, Any]:
    return {"title": title, "type": type_, "forms": [{"href": f"https://dev.local/{title}"}]}


TDS = [
    thing("urn:s:1", "Lamp", properties={"on": prop("Power", "boolean")}),
    thing(
        "urn:s:2",
        "Fan",
        properties={"speed": prop("Speed", "integer"), "on": prop("Power", "boolean")},
        actions={"spin": {"title": "Spin", "forms": [{"href": "https://dev.local/spin"}]}},
    ),
    thing("urn:s:3", "Lamp"),
    thing("urn:s:4", "Thermometer", properties={"t": prop("Temperature", "number")}),
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
