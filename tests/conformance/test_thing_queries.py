"""The directory's selection by agent and @type on every binding: over HTTP it is
``GET /things?agent=&type=`` (tests/bindings/http/test_directory_queries.py), on every
binding also the actions of ``urn:wothub:queries``, checked as the listing is."""

from __future__ import annotations

import pytest

from tests.support import tds
from vocabulary.things import QUERIES_THING

from .adapters import Refused

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def registered(running):
    for n in range(4):
        td = tds.thing_td(
            f"urn:dev:q:{n}", f"Thing {n}", **{"@type": ["x:Lamp"] if n < 3 else "x:Sensor"}
        )
        running.add_thing("agent-a" if n % 2 else "agent-b", td)


async def test_list_and_search_by_agent_and_type(registered, clients, binding):
    viewer = await clients.consumer(binding, "vic", "viewer")
    page = await viewer.service(QUERIES_THING, "listThings", {"type": "x:Lamp", "limit": 2})
    assert page["total"] == 3
    assert [td["id"] for td in page["items"]] == ["urn:dev:q:0", "urn:dev:q:1"]
    page = await viewer.service(QUERIES_THING, "listThings", {"agent": "agent-a", "offset": 1})
    assert page["total"] == 2 and [td["id"] for td in page["items"]] == ["urn:dev:q:3"]
    found = await viewer.service(
        QUERIES_THING, "searchThings", {"query": "$[*].title", "agent": "agent-b"}
    )
    assert found == ["Thing 0", "Thing 2"]


async def test_bad_input_refused(registered, clients, binding):
    viewer = await clients.consumer(binding, "vic", "viewer")
    for bad in ({"type": ""}, {"limit": 0}, {"colour": "red"}):
        with pytest.raises(Refused) as refused:
            await viewer.service(QUERIES_THING, "listThings", bad)
        assert refused.value.status == 400, bad
    with pytest.raises(Refused) as refused:
        await viewer.service(QUERIES_THING, "searchThings", {"query": "$[?"})
    assert refused.value.status == 400
