"""docs/http.md, Directory: a listing page never holds more than 1000 TDs, whatever
``limit`` asks for, and ``/presence`` takes at most 1000 ids (400 beyond)."""

from __future__ import annotations

import pytest

from tests.support.tds import sign_td

pytestmark = pytest.mark.timeout(120)

THINGS = 1001  # one more than a page holds


async def test_a_page_holds_at_most_1000_tds_and_links_the_next(running, admin):
    # max_things_per_agent is 1000 too: two agents register them.
    for n in range(THINGS):
        running.add_thing(f"agent-{n % 2}", sign_td(f"urn:dev:ops:cap-{n:04d}"))
    async with admin.get("/things", params={"limit": "5000"}) as response:
        assert response.status == 200
        page = await response.json()
        link = response.headers["Link"]
    assert len(page) == 1000
    assert 'rel="next"' in link and "offset=1000" in link
    async with admin.get("/things", params={"offset": "1000", "limit": "5000"}) as response:
        rest = await response.json()
        assert 'rel="next"' not in response.headers["Link"]
    # The hub's own Things are listed too: the two pages hold every TD once.
    ids = [td["id"] for td in page + rest]
    assert len(ids) == len(set(ids)) >= THINGS
    async with admin.get("/things") as response:  # no limit: one page of 1000 too
        assert len(await response.json()) == 1000


async def test_presence_takes_at_most_1000_ids(running, admin):
    running.add_thing("agent-0", sign_td("urn:dev:ops:cap-0"))
    ids = ["urn:dev:ops:cap-0"] + [f"t{n}" for n in range(999)]  # unknown ids are left out
    async with admin.get("/presence", params=[("id", i) for i in ids]) as response:
        assert response.status == 200
        assert list(await response.json()) == ["urn:dev:ops:cap-0"]
    async with admin.get("/presence", params=[("id", i) for i in [*ids, "one-more"]]) as refused:
        assert refused.status == 400
        assert refused.content_type == "application/problem+json"
        assert "1000" in (await refused.json())["detail"]
