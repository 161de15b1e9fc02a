"""Listing and searching the directory by agent and @type (``GET /things?agent=&type=``,
``/search/jsonpath?...&agent=&type=``), with paging, over HTTPS on a real hub: what each
role sees, and bad parameters refused with a problem naming them."""

from __future__ import annotations

import pytest

from tests.support import tds
from tests.support.problems import problem_of

pytestmark = pytest.mark.timeout(60)

LAMP_TYPE = "saref:LightSwitch"


def thing(n: int, types) -> dict:
    members = {} if types is None else {"@type": types}
    return tds.thing_td(f"urn:dev:q:{n:02d}", f"Thing {n}", **members)


@pytest.fixture
def registered(running):
    """Agents a (five lamps: @type a string or a list) and b (two lamps, three sensors)."""
    for n in range(5):
        types = LAMP_TYPE if n % 2 else [LAMP_TYPE, "saref:Device"]
        running.add_thing("agent-a", thing(n, types))
    for n in range(5, 10):
        running.add_thing("agent-b", thing(n, LAMP_TYPE if n < 7 else "saref:Sensor"))
    running.add_thing("agent-b", thing(10, None))


async def listed(session, status=200, **params):
    async with session.get("/things", params=params) as response:
        if status != 200:
            return await problem_of(response, status)
        assert response.status == 200, await response.text()
        return [td["id"] for td in await response.json()], response.headers["Link"]


def ids(*numbers: int) -> list[str]:
    return [f"urn:dev:q:{n:02d}" for n in numbers]


async def test_by_agent_by_type_and_both(registered, admin):
    assert (await listed(admin, agent="agent-a"))[0] == ids(0, 1, 2, 3, 4)
    assert (await listed(admin, type="saref:Sensor"))[0] == ids(7, 8, 9)
    assert (await listed(admin, type=LAMP_TYPE))[0] == ids(0, 1, 2, 3, 4, 5, 6)
    assert (await listed(admin, type="saref:Device"))[0] == ids(0, 2, 4)
    assert (await listed(admin, agent="agent-b", type=LAMP_TYPE))[0] == ids(5, 6)
    assert (await listed(admin, agent="nobody"))[0] == []
    assert (await listed(admin, type="saref:Nothing"))[0] == []


async def test_paging_keeps_the_selection(registered, admin):
    first, link = await listed(admin, type=LAMP_TYPE, limit="3")
    assert first == ids(0, 1, 2)
    assert 'rel="next"' in link and "type=saref%3ALightSwitch" in link
    second, _ = await listed(admin, type=LAMP_TYPE, limit="3", offset="3")
    last, link = await listed(admin, type=LAMP_TYPE, limit="3", offset="6")
    assert second + last == ids(3, 4, 5, 6)
    assert 'rel="next"' not in link
    async with admin.get(
        "/things", params={"agent": "agent-a", "format": "collection", "limit": "2"}
    ) as response:
        page = await response.json()
    assert page["total"] == 5 and len(page["members"]) == 2
    assert "agent=agent-a" in page["next"]


async def test_search_within_a_selection(registered, admin):
    query = "$[*].title"
    async with admin.get(
        "/search/jsonpath", params={"query": query, "agent": "agent-b", "type": LAMP_TYPE}
    ) as response:
        assert response.status == 200, await response.text()
        assert await response.json() == ["Thing 5", "Thing 6"]


async def test_an_agent_sees_only_its_own(registered, running):
    token = running.hub.auth.new_token("agent-a")["token"]
    async with running.session(token) as agent:
        assert (await listed(agent, type=LAMP_TYPE))[0] == ids(0, 1, 2, 3, 4)
        assert (await listed(agent, agent="agent-b"))[0] == []


async def test_a_viewer_may_select(registered, viewer):
    assert (await listed(viewer, agent="agent-b", type="saref:Sensor"))[0] == ids(7, 8, 9)


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ([("agent", "")], "agent"),
        ([("type", "")], "type"),
        ([("type", "a"), ("type", "b")], "type"),
        ([("agent", "a"), ("limit", "0")], "limit"),
    ],
)
async def test_bad_parameters_are_refused(registered, admin, query, parameter):
    async with admin.get("/things", params=query) as response:
        problem = await problem_of(response, 400)
    assert problem["parameter"] == parameter


async def test_without_credentials_refused(registered, running):
    async with running.session() as anonymous, anonymous.get("/things?type=x") as response:
        assert response.status == 401
