"""Value history over HTTP: ``GET /things/{id}/properties/{name}/history`` (and events),
paged with ``Link: next``, downsampled with ``step``, authorized as reading the Thing,
discovered from the twin TD's links. Real aiohttp clients over HTTPS; the device is a
WebSocket agent (``running.device``)."""

import re

import pytest

from digitwin.validation import validate_td
from tests.support.devices import AGENT, emit, register, report
from tests.support.http import norm, url
from tests.support.problems import problem_of
from tests.support.tds import SLASHED_LAMP as LAMP
from tests.support.tds import http_lamp_td, lamp_td

pytestmark = pytest.mark.timeout(60)

_NEXT = re.compile(r'<([^>]+)>; rel="next"')


async def pages(session, first: str) -> tuple[list, int]:
    """Every item from ``first`` on, following ``Link: next``; and how many pages."""
    items, count, address = [], 0, first
    while address is not None:
        async with session.get(address) as response:
            assert response.status == 200, await response.text()
            assert response.content_type == "application/json"
            body = await response.json()
            items += body["items"]
            count += 1
            link = _NEXT.fullmatch(response.headers.get("Link", ""))
            assert (link is None) == ("cursor" not in body)
            address = link and link.group(1)
    return items, count


async def test_values_paged_newest_first_with_link_next(running, viewer):
    device = await register(running, td=http_lamp_td())
    for level in range(250):
        await report(device, "brightness", level % 101)
    items, count = await pages(
        viewer, url(LAMP, "properties", "brightness", "history") + "?limit=100"
    )
    assert count == 3
    assert [item["value"] for item in items] == [level % 101 for level in range(249, -1, -1)]
    assert items[0]["time"] >= items[-1]["time"]
    oldest, _ = await pages(
        viewer, url(LAMP, "properties", "brightness", "history") + "?order=oldest&limit=1000"
    )
    assert oldest == items[::-1]


async def test_downsampled_and_event_history(running, viewer):
    device = await register(running, td=http_lamp_td())
    for level in (10, 20, 60):
        await report(device, "brightness", level)
    await emit(device, "overheated", 81.5)
    await emit(device, "clicked")
    address = url(LAMP, "properties", "brightness", "history") + "?step=1d"
    async with viewer.get(address) as response:
        (bucket,) = (await response.json())["items"]
    assert (bucket["count"], bucket["min"], bucket["max"], bucket["mean"], bucket["last"]) == (
        3,
        10,
        60,
        30,
        60,
    )
    async with viewer.get(url(LAMP, "events", "overheated", "history")) as response:
        assert [item["value"] for item in (await response.json())["items"]] == [81.5]
    async with viewer.get(url(LAMP, "events", "clicked", "history")) as response:
        assert [item["value"] for item in (await response.json())["items"]] == [None]


async def test_an_agent_reads_only_its_own_things_history(running):
    device = await register(running, td=http_lamp_td())
    await report(device, "brightness", 5)
    other = await register(running, "other-agent", lamp_td("urn:dev:ops:other-lamp"))
    await report(other, "brightness", 7, "urn:dev:ops:other-lamp")
    own = url(LAMP, "properties", "brightness", "history")
    async with running.session(running.hub.auth.new_token(AGENT)["token"]) as session:
        async with session.get(own) as response:
            assert response.status == 200
            assert [item["value"] for item in (await response.json())["items"]] == [5]
        theirs = url("urn:dev:ops:other-lamp", "properties", "brightness", "history")
        async with session.get(theirs) as response:
            await problem_of(response, 403)
    async with running.session() as anonymous, anonymous.get(own) as response:
        assert response.status == 401


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("from=last-week", "from"),
        ("to=2026-13-01T00:00:00Z", "to"),
        ("from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "from"),
        ("limit=5000", "limit"),
        ("limit=-1", "limit"),
        ("order=sideways", "order"),
        ("step=fortnightly", "step"),
        ("cursor=abc", "cursor"),
        ("colour=blue", "colour"),
        ("kind=event", "kind"),
    ],
)
async def test_bad_parameters_are_clear_400s(running, viewer, query, parameter):
    await register(running, td=http_lamp_td())
    address = url(LAMP, "properties", "brightness", "history") + "?" + query
    async with viewer.get(address) as response:
        problem = await problem_of(response, 400)
    assert problem["parameter"] == parameter
    assert parameter in problem["detail"]


async def test_unknown_affordances_are_404(running, viewer):
    await register(running, td=http_lamp_td())
    for address in (
        url(LAMP, "properties", "nothing", "history"),
        url(LAMP, "events", "brightness", "history"),  # a property, not an event
        url("urn:dev:ops:nothing", "properties", "brightness", "history"),
    ):
        async with viewer.get(address) as response:
            await problem_of(response, 404)


async def test_the_twin_td_links_each_history(running, viewer):
    device = await register(running, td=http_lamp_td())
    await report(device, "on", True)
    async with viewer.get(url(LAMP)) as response:
        td = await response.json()
    validate_td(td)  # the TD 1.1 schema: the links are valid links
    history = {norm(link["anchor"]): link for link in td["links"] if link["rel"] == "history"}
    affordances = [("properties", name) for name in td["properties"]]
    affordances += [("events", name) for name in td["events"]]
    assert len(history) == len(affordances)
    for member, name in affordances:
        form = norm(td[member][name]["forms"][0]["href"].split("?")[0])
        assert norm(history[form]["href"]) == form + "/history"
    link = history[norm(td["properties"]["on"]["forms"][0]["href"])]
    async with viewer.get(link["href"]) as response:
        assert [item["value"] for item in (await response.json())["items"]] == [True]


async def test_administrators_turn_history_off_per_affordance(running, admin, viewer):
    device = await register(running, td=http_lamp_td())
    setting = {"thingID": LAMP, "setting": {"offProperties": ["brightness"], "maxCount": 10}}
    action = url("urn:wothub:history", "actions", "setSetting")
    async with viewer.post(action, json=setting) as response:
        await problem_of(response, 403)
    async with admin.post(action, json=setting) as response:
        assert response.status == 200, await response.text()
        described = await response.json()
    assert described["setting"] == {"offProperties": ["brightness"], "maxCount": 10}
    assert described["effective"]["enabled"] is True
    assert described["effective"]["maxCount"] == 10
    await report(device, "brightness", 40)
    await report(device, "on", True)
    for name, kept in (("brightness", []), ("on", [True])):
        async with viewer.get(url(LAMP, "properties", name, "history")) as response:
            assert [item["value"] for item in (await response.json())["items"]] == kept
    bad = {"thingID": LAMP, "setting": {"maxCount": -1}}
    async with admin.post(action, json=bad) as response:
        await problem_of(response, 400)
