"""The WoT Discovery directory over HTTPS (SPEC-NOTES section 2): the directory's own TD,
registering, retrieving, patching and deleting TDs, listing with paging, JSONPath search,
SSE notifications and who may do what. Real hub, real aiohttp clients, and curl."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
from urllib.parse import quote

import pytest

from digitwin.twintd import DISCOVERY_CONTEXT
from digitwin.validation import validate_td
from tests.support import tds
from tests.support.examples import MY_LAMP, load_example
from tests.support.problems import PROBLEM, problem_of
from tests.support.sse import SseReader
from tests.support.tds import LAMP

pytestmark = pytest.mark.timeout(60)

TD_JSON = "application/td+json"
LD_JSON = "application/ld+json"
MERGE_PATCH = "application/merge-patch+json"
CANONICAL = '</things>; rel="canonical"; etag="v1"'
# The hub's own Things (authn, certs, clients) are in its directory from the start.
HUB_THING = "urn:wothub:"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def lamp_td(thing_id: str | None = LAMP, title: str = "Lamp") -> dict:
    """The shared lamp with one affordance of each kind: enough for a directory."""
    return tds.lamp_td(thing_id, title, only=("on", "toggle", "overheated"))


def path_of(thing_id: str) -> str:
    """The TD's path, the id percent-encoded into one segment (':' kept, '/' encoded)."""
    return "/things/" + quote(thing_id, safe=":@!$&'()*+,;=")


async def put_td(session, td: dict, expect: int = 201):
    async with session.put(
        path_of(td["id"]), data=json.dumps(td), headers={"Content-Type": TD_JSON}
    ) as resp:
        body = await resp.read()
        assert resp.status == expect, body
        return resp


async def get_json(session, path: str, status: int = 200, **kwargs):
    async with session.get(path, **kwargs) as resp:
        body = await resp.read()
        assert resp.status == status, body
        return resp, json.loads(body) if body else None


def ids_of(tds: list[dict]) -> list[str]:
    """The ids of the TDs, less the hub's own Things."""
    return [td["id"] for td in tds if not td["id"].startswith(HUB_THING)]


async def hub_things(session) -> list[str]:
    _, listed = await get_json(session, "/things")
    hub = [td["id"] for td in listed]
    assert hub and all(i.startswith(HUB_THING) for i in hub), hub
    return hub


def write_ca(running, tmp_path) -> str:
    path = tmp_path / "hub-ca.pem"
    path.write_bytes(running.hub.ca.ca_cert_pem)
    return str(path)


def curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["curl", "--silent", "--show-error", "--max-time", "20", *args],
        capture_output=True,
        timeout=30,
        check=False,
    )


# -- the directory's own TD --------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/.well-known/wot"])
async def test_directory_td_is_a_valid_thing_directory_without_auth(running, path):
    async with running.session() as anonymous, anonymous.get(path) as resp:
        assert resp.status == 200
        assert resp.content_type == TD_JSON
        td = json.loads(await resp.read())
    assert "ThingDirectory" in (td["@type"] if isinstance(td["@type"], list) else [td["@type"]])
    assert DISCOVERY_CONTEXT in json.dumps(td["@context"])
    assert td["base"].rstrip("/") == running.url.rstrip("/")
    assert "things" in td["properties"]
    # What the hub does not offer is not advertised.
    assert "searchXPath" not in td.get("actions", {})
    assert "searchSPARQL" not in td.get("actions", {})
    assert "searchJSONPath" in td["actions"]
    for name in ("thingCreated", "thingUpdated", "thingDeleted"):
        assert td["events"][name]["forms"][0]["subprotocol"] == "sse"


async def test_directory_td_passes_td_11_validation(running):
    async with running.session() as anonymous, anonymous.get("/.well-known/wot") as resp:
        td = json.loads(await resp.read())
    validate_td(td)  # the TD 1.1 schema and the spot checks: raises when invalid


@pytest.mark.parametrize("path", ["/", "/.well-known/wot"])
async def test_head_of_the_directory_td_has_the_same_headers(running, path):
    async with running.session() as anonymous:
        async with anonymous.get(path) as got:
            body = await got.read()
            get_headers = got.headers
        async with anonymous.head(path) as head:
            assert head.status == 200
            assert await head.read() == b""
            head_headers = head.headers
    assert head_headers["Content-Type"] == get_headers["Content-Type"]
    assert int(head_headers["Content-Length"]) == len(body)


async def test_directory_td_with_curl(running, tmp_path):
    ca = write_ca(running, tmp_path)
    done = await asyncio.to_thread(
        curl, "--cacert", ca, "--include", running.url + "/.well-known/wot"
    )
    assert done.returncode == 0, done.stderr
    head, _, body = done.stdout.decode().partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200")
    assert "content-type: application/td+json" in head.lower()
    td = json.loads(body)
    assert "ThingDirectory" in td["@type"]
    assert td["base"].rstrip("/") == running.url


async def test_curl_refuses_the_hub_without_its_ca(running):
    """The hub's certificate is signed by its own CA only: curl must be told to trust it."""
    done = await asyncio.to_thread(curl, running.url + "/.well-known/wot")
    assert done.returncode == 60, done.stderr  # curl: peer certificate cannot be verified


async def test_curl_registers_and_lists_a_td(running, tmp_path):
    ca = write_ca(running, tmp_path)
    running.add_client("curly", "consumer", "admin")
    td = lamp_td("urn:dev:ops:curl/1", "Curl lamp")
    td_file = tmp_path / "td.json"
    td_file.write_text(json.dumps(td))
    auth = ["--cacert", ca, "--user", "curly:correct horse battery"]
    put = await asyncio.to_thread(
        curl,
        *auth,
        "--write-out",
        "%{http_code}",
        "--output",
        "/dev/null",
        "-X",
        "PUT",
        "-H",
        f"Content-Type: {TD_JSON}",
        "--data-binary",
        f"@{td_file}",
        running.url + path_of(td["id"]),
    )
    assert put.returncode == 0, put.stderr
    assert put.stdout == b"201"
    listed = await asyncio.to_thread(curl, *auth, running.url + "/things")
    assert listed.returncode == 0, listed.stderr
    assert ids_of(json.loads(listed.stdout)) == [td["id"]]


# -- registering and retrieving ---------------------------------------------------------


async def test_put_creates_then_replaces(admin, running):
    td = lamp_td()
    await put_td(admin, td, 201)
    _, first = await get_json(admin, path_of(td["id"]))
    td["title"] = "Lamp, renamed"
    await put_td(admin, td, 204)
    resp, second = await get_json(admin, path_of(td["id"]))
    assert resp.content_type == TD_JSON
    assert second["title"] == "Lamp, renamed"
    assert second["registration"]["created"] == first["registration"]["created"]
    assert second["registration"]["modified"] >= first["registration"]["modified"]


async def test_get_returns_the_enriched_twin_td(admin, running):
    td = lamp_td()
    await put_td(admin, td)
    resp, got = await get_json(admin, path_of(td["id"]))
    assert resp.content_type == TD_JSON
    assert got["id"] == td["id"]
    assert got["title"] == "Lamp"
    context = got["@context"] if isinstance(got["@context"], list) else [got["@context"]]
    assert DISCOVERY_CONTEXT in context
    assert "https://www.w3.org/2022/wot/td/v1.1" in context
    registration = got["registration"]
    assert RFC3339.match(registration["created"]), registration
    assert RFC3339.match(registration["modified"]), registration
    validate_td(got)  # an enriched TD is still a valid TD (and valid registration)
    # The twin's forms point at the hub, not at the device.
    base = f"{running.url}/things/{td['id']}"

    def https_hrefs(forms):
        return [f["href"] for f in forms if f["href"].startswith("https:")]

    on, overheated = f"{base}/properties/on", f"{base}/events/overheated"
    polled = "?longpoll=true"  # the long-poll forms (observe, subscribe) beside the SSE ones
    assert set(https_hrefs(got["properties"]["on"]["forms"])) == {on, on + polled}
    assert https_hrefs(got["actions"]["toggle"]["forms"]) == [f"{base}/actions/toggle"]
    subscribe = set(https_hrefs(got["events"]["overheated"]["forms"]))
    assert subscribe == {overheated, overheated + polled}
    assert all(h.startswith(base + "/") for h in https_hrefs(got["forms"]))
    # Every form (whatever binding added it) points at the hub, none at the device.
    host = running.url.removeprefix("https://")
    hrefs = [f["href"] for f in got["forms"]] + [
        f["href"]
        for member in ("properties", "actions", "events")
        for affordance in got[member].values()
        for f in affordance["forms"]
    ]
    assert all(h.split("://", 1)[1].startswith(host + "/") for h in hrefs), hrefs
    assert "lamp.local" not in json.dumps(got)


async def test_head_of_a_td(admin):
    td = lamp_td()
    await put_td(admin, td)
    async with admin.get(path_of(td["id"])) as got:
        body = await got.read()
    async with admin.head(path_of(td["id"])) as head:
        assert head.status == 200
        assert head.content_type == TD_JSON
        assert int(head.headers["Content-Length"]) == len(body)
        assert await head.read() == b""


async def test_post_registers_an_anonymous_td(admin, running):
    async with admin.post(
        "/things", data=json.dumps(lamp_td(None, "Anonymous")), headers={"Content-Type": TD_JSON}
    ) as resp:
        assert resp.status == 201, await resp.text()
        thing_id = resp.headers["Location"]  # the id the directory gave, as WoT Discovery says
    assert re.fullmatch(
        r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", thing_id
    )
    _, got = await get_json(admin, path_of(thing_id))
    assert got["id"] == thing_id  # the local id is injected wherever the TD is exposed
    assert got["title"] == "Anonymous"
    _, listed = await get_json(admin, "/things")
    assert ids_of(listed) == [thing_id]


async def test_post_with_an_id_is_refused(admin):
    async with admin.post(
        "/things", data=json.dumps(lamp_td()), headers={"Content-Type": TD_JSON}
    ) as resp:
        problem = await problem_of(resp, 400)
    assert {"field": "id", "description": "not allowed in POST"} in problem["validationErrors"]
    _, listed = await get_json(admin, "/things")
    assert ids_of(listed) == []


async def test_put_with_a_missing_or_different_id_is_refused(admin):
    td = lamp_td("urn:dev:ops:a")
    async with admin.put(
        path_of("urn:dev:ops:b"), data=json.dumps(td), headers={"Content-Type": TD_JSON}
    ) as resp:
        problem = await problem_of(resp, 400)
    assert problem["validationErrors"][0]["field"] == "id"
    del td["id"]
    async with admin.put(
        path_of("urn:dev:ops:a"), data=json.dumps(td), headers={"Content-Type": TD_JSON}
    ) as resp:
        problem = await problem_of(resp, 400)
    assert problem["validationErrors"] == [{"field": "id", "description": "is required"}]
    await get_json(admin, path_of("urn:dev:ops:a"), 404)
    await get_json(admin, path_of("urn:dev:ops:b"), 404)


async def test_a_valid_example_td_registers(admin):
    td = load_example(MY_LAMP)  # the TD 1.1 spec's Example 1
    await put_td(admin, td, 201)
    _, got = await get_json(admin, path_of(td["id"]))
    assert got["title"] == td["title"]


@pytest.mark.parametrize(
    "thing_id",
    [
        "urn:dev:ops:lamp/1",
        "urn:dev:ops:a/b/c",
        "urn:dev:ops:lampe-é-ü-日本",
        "urn:dev:ops:query?x=1&y=2#fragment",
        "urn:dev:ops:100%25",
        "https://example.com/things/1?x=y",
    ],
)
async def test_ids_with_reserved_and_non_ascii_characters(admin, running, thing_id):
    td = lamp_td(thing_id, "Special")
    await put_td(admin, td, 201)
    _, got = await get_json(admin, path_of(thing_id))
    assert got["id"] == thing_id
    # The twin's forms carry the id encoded the same way.
    href = got["properties"]["on"]["forms"][0]["href"]
    assert href == f"{running.url}{path_of(thing_id)}/properties/on"
    async with admin.patch(
        path_of(thing_id),
        data=json.dumps({"title": "Patched"}),
        headers={"Content-Type": MERGE_PATCH},
    ) as resp:
        assert resp.status == 204, await resp.text()
    _, got = await get_json(admin, path_of(thing_id))
    assert got["title"] == "Patched"
    async with admin.delete(path_of(thing_id)) as resp:
        assert resp.status == 204
    await get_json(admin, path_of(thing_id), 404)


async def test_encoded_slash_is_not_a_path_separator(admin):
    """`urn:dev:ops:lamp%2F1` is one Thing; `urn:dev:ops:lamp/1` unencoded is no route."""
    await put_td(admin, lamp_td("urn:dev:ops:lamp/1"), 201)
    async with admin.get("/things/urn:dev:ops:lamp%2F1") as resp:
        assert resp.status == 200
        assert (await resp.json(content_type=None))["id"] == "urn:dev:ops:lamp/1"
    async with admin.get("/things/urn:dev:ops:lamp/1") as resp:
        assert resp.status == 404
        assert resp.content_type == PROBLEM


# -- PATCH --------------------------------------------------------------------------------


async def test_patch_merges_and_revalidates(admin):
    td = lamp_td()
    await put_td(admin, td)
    _, before = await get_json(admin, path_of(td["id"]))
    patch = {"title": "Lamp, patched", "description": "added", "events": None}
    async with admin.patch(
        path_of(td["id"]), data=json.dumps(patch), headers={"Content-Type": MERGE_PATCH}
    ) as resp:
        assert resp.status == 204, await resp.text()
    _, after = await get_json(admin, path_of(td["id"]))
    assert after["title"] == "Lamp, patched"
    assert after["description"] == "added"
    assert "events" not in after
    assert "on" in after["properties"]
    assert after["registration"]["created"] == before["registration"]["created"]

    # A patch that makes the TD invalid is refused, naming the fields, and changes nothing.
    async with admin.patch(
        path_of(td["id"]),
        data=json.dumps({"security": None, "title": 42}),
        headers={"Content-Type": MERGE_PATCH},
    ) as resp:
        problem = await problem_of(resp, 400)
    errors = problem["validationErrors"]
    assert errors and all(set(e) == {"field", "description"} for e in errors)
    fields = {e["field"] for e in errors}
    assert "title" in fields, errors
    assert any("security" in e["field"] or "security" in e["description"] for e in errors)
    _, unchanged = await get_json(admin, path_of(td["id"]))
    assert unchanged["title"] == "Lamp, patched"
    assert unchanged["security"] == after["security"]


async def test_patch_of_an_unknown_thing_is_404(admin):
    async with admin.patch(
        path_of("urn:dev:ops:nothing"),
        data=json.dumps({"title": "x"}),
        headers={"Content-Type": MERGE_PATCH},
    ) as resp:
        await problem_of(resp, 404)


async def test_patch_may_not_change_the_id(admin):
    td = lamp_td()
    await put_td(admin, td)
    async with admin.patch(
        path_of(td["id"]),
        data=json.dumps({"id": "urn:dev:ops:other"}),
        headers={"Content-Type": MERGE_PATCH},
    ) as resp:
        problem = await problem_of(resp, 400)
    assert problem["validationErrors"][0]["field"] == "id"


# -- DELETE --------------------------------------------------------------------------------


async def test_delete_then_get_is_a_404_problem(admin):
    td = lamp_td()
    await put_td(admin, td)
    async with admin.delete(path_of(td["id"])) as resp:
        assert resp.status == 204
        assert await resp.read() == b""
    async with admin.get(path_of(td["id"])) as resp:
        problem = await problem_of(resp, 404)
    assert td["id"] in problem["detail"]
    async with admin.delete(path_of(td["id"])) as resp:
        await problem_of(resp, 404)
    _, listed = await get_json(admin, "/things")
    assert ids_of(listed) == []


# -- listing and paging ---------------------------------------------------------------------


def link_header(resp) -> dict[str, str]:
    """rel -> URL of each Link (and the canonical link's full text under 'canonical-raw')."""
    links = {}
    for part in resp.headers.getall("Link", []):
        for link in re.split(r",\s*(?=<)", part):
            url = link[link.index("<") + 1 : link.index(">")]
            rel = re.search(r'rel="([^"]+)"', link).group(1)
            links[rel] = url
            if rel == "canonical":
                links["canonical-raw"] = link.strip()
    return links


async def register_many(session, count: int) -> list[str]:
    ids = [f"urn:dev:ops:item-{n:03d}" for n in range(count)]
    # Registered out of order: the listing must sort them.
    for thing_id in sorted(ids, key=lambda i: (int(i[-3:]) * 7) % count):
        await put_td(session, lamp_td(thing_id, f"Lamp {int(thing_id[-3:])}"))
    return ids


async def test_listing_is_ordered_by_id(admin):
    ids = ["urn:dev:ops:b", "urn:dev:ops:a", "urn:dev:ops:Z", "urn:dev:ops:é", "urn:dev:ops:a/1"]
    for thing_id in ids:
        await put_td(admin, lamp_td(thing_id))
    resp, listed = await get_json(admin, "/things")
    assert resp.content_type == LD_JSON
    listed_ids = [t["id"] for t in listed]
    assert listed_ids == sorted(listed_ids)  # Unicode code-point order
    assert ids_of(listed) == sorted(ids)
    assert all("registration" in t for t in listed)
    links = link_header(resp)
    assert "next" not in links
    assert links["canonical-raw"] == CANONICAL


async def test_paging_with_next_links_collects_every_td_once(admin):
    hub = await hub_things(admin)
    ids = sorted(await register_many(admin, 25) + hub)
    seen: list[str] = []
    url = "/things?limit=7"
    pages = 0
    while url is not None:
        pages += 1
        assert pages <= 10, "the next links do not end"
        resp, page = await get_json(admin, url)
        assert len(page) <= 7
        seen.extend(t["id"] for t in page)
        links = link_header(resp)
        assert links["canonical-raw"] == CANONICAL
        url = links.get("next")
        if url is not None:
            assert "limit=7" in url
    assert pages == -(-len(ids) // 7)
    assert seen == ids  # every TD, once, in order


async def test_offset_and_limit(admin):
    hub = await hub_things(admin)
    ids = sorted(await register_many(admin, 10) + hub)
    _, page = await get_json(admin, "/things?offset=3&limit=4")
    assert [t["id"] for t in page] == ids[3:7]
    resp, page = await get_json(admin, "/things?offset=8")
    assert [t["id"] for t in page] == ids[8:]
    assert "next" not in link_header(resp)
    resp, page = await get_json(admin, "/things?offset=50")
    assert page == []
    assert link_header(resp)["canonical-raw"] == CANONICAL


async def test_collection_format(admin):
    hub = await hub_things(admin)
    ids = sorted(await register_many(admin, 5) + hub)
    resp, first = await get_json(admin, "/things?limit=2&format=collection")
    assert resp.content_type == LD_JSON
    assert first["@context"] == DISCOVERY_CONTEXT
    assert first["@type"] == "ThingCollection"
    assert first["total"] == len(ids)
    assert [t["id"] for t in first["members"]] == ids[:2]
    assert first["@id"] == "/things?offset=0&limit=2&format=collection"
    assert first["next"] == "/things?offset=2&limit=2&format=collection"
    assert link_header(resp)["next"] == first["next"]
    seen = [t["id"] for t in first["members"]]
    url = first["next"]
    while url:
        _, page = await get_json(admin, url)
        assert page["total"] == len(ids)
        seen += [t["id"] for t in page["members"]]
        url = page.get("next")
    assert seen == ids
    assert "next" not in page


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("offset=-1", "offset"),
        ("offset=x", "offset"),
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("limit=-5", "limit"),
        ("format=xml", "format"),
    ],
)
async def test_bad_paging_parameters(admin, query, parameter):
    async with admin.get(f"/things?{query}") as resp:
        problem = await problem_of(resp, 400)
    assert problem["parameter"] == parameter
    assert parameter in problem["detail"]


# -- JSONPath search ------------------------------------------------------------------------


async def test_jsonpath_search(admin):
    ids = await register_many(admin, 6)
    resp, found = await get_json(
        admin, "/search/jsonpath", params={"query": "$[?@.title=='Lamp 3']"}
    )
    assert resp.content_type == "application/json"
    assert [t["id"] for t in found] == [ids[3]]
    assert found[0]["registration"]  # search sees the enriched TDs
    _, titles = await get_json(
        admin, "/search/jsonpath", params={"query": "$[?search(@.id, '^urn:dev:')].title"}
    )
    assert sorted(titles) == sorted(f"Lamp {n}" for n in range(6))
    _, none = await get_json(admin, "/search/jsonpath", params={"query": "$[?@.title=='x']"})
    assert none == []


@pytest.mark.parametrize("query", ["$[?@.title==", "not jsonpath", "$..[", "$[?(@.a)"])
async def test_bad_jsonpath_is_400(admin, query):
    await put_td(admin, lamp_td())
    async with admin.get("/search/jsonpath", params={"query": query}) as resp:
        await problem_of(resp, 400)


async def test_jsonpath_without_a_query_is_400(admin):
    async with admin.get("/search/jsonpath") as resp:
        await problem_of(resp, 400)


# -- SSE notifications ----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def sse(session, path: str, **headers):
    async with session.get(path, headers={"Accept": "text/event-stream", **headers}) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.content_type == "text/event-stream"
        yield SseReader(resp)


async def patch_title(session, thing_id: str, title: str) -> None:
    async with session.patch(
        path_of(thing_id), data=json.dumps({"title": title}), headers={"Content-Type": MERGE_PATCH}
    ) as resp:
        assert resp.status == 204, await resp.text()


async def delete(session, thing_id: str) -> None:
    async with session.delete(path_of(thing_id)) as resp:
        assert resp.status == 204, await resp.text()


EVENT_ID = re.compile(r"^.+-\d+$")


async def test_events_without_diff(admin):
    td = lamp_td("urn:dev:ops:lamp/1")
    async with sse(admin, "/events") as events:
        await put_td(admin, td, 201)
        created = await events.next()
        assert created["event"] == "thing_created"
        assert created["data"] == {"id": td["id"]}
        assert EVENT_ID.match(created["id"])
        await patch_title(admin, td["id"], "Renamed")
        updated = await events.next()
        assert updated["event"] == "thing_updated"
        assert updated["data"] == {"id": td["id"]}
        await delete(admin, td["id"])
        deleted = await events.next()
        assert deleted["event"] == "thing_deleted"
        assert deleted["data"] == {"id": td["id"]}
    numbers = [int(e["id"].rpartition("-")[2]) for e in (created, updated, deleted)]
    assert numbers == sorted(numbers) and len(set(numbers)) == 3
    assert len({e["id"].rpartition("-")[0] for e in (created, updated, deleted)}) == 1


async def test_events_with_diff(admin):
    td = lamp_td()
    async with sse(admin, "/events?diff=true") as events:
        await put_td(admin, td, 201)
        created = await events.next()
        assert created["event"] == "thing_created"
        assert created["data"]["id"] == td["id"]
        assert created["data"]["title"] == "Lamp"  # the full TD
        assert "registration" in created["data"]
        await patch_title(admin, td["id"], "Renamed")
        updated = await events.next()
        assert updated["event"] == "thing_updated"
        assert updated["data"] == {"id": td["id"], "title": "Renamed"}  # the merge patch
        replaced = {**td, "title": "Renamed"}
        del replaced["events"]
        await put_td(admin, replaced, 204)
        updated = await events.next()
        assert updated["data"] == {"id": td["id"], "events": None}
        await delete(admin, td["id"])
        deleted = await events.next()
        assert deleted == {**deleted, "event": "thing_deleted", "data": {"id": td["id"]}}


async def test_events_filtered_by_type(admin):
    td = lamp_td()
    async with sse(admin, "/events/thing_deleted") as deletions:
        async with sse(admin, "/events/thing_updated?diff=true") as updates:
            await put_td(admin, td, 201)
            await patch_title(admin, td["id"], "Renamed")
            await delete(admin, td["id"])
            only = await updates.next()
            assert only["event"] == "thing_updated"
            assert only["data"] == {"id": td["id"], "title": "Renamed"}
            # the marker, a second lamp updated and deleted: the next event on each stream
            marker = lamp_td("urn:dev:ops:marker-1")
            await put_td(admin, marker, 201)
            await patch_title(admin, marker["id"], "Marker")
            await updates.next_is({"id": marker["id"], "title": "Marker"})
            await delete(admin, marker["id"])
        first = await deletions.next()
        assert first["event"] == "thing_deleted"
        assert first["data"] == {"id": td["id"]}
        await deletions.next_is({"id": marker["id"]})


async def test_unknown_event_type_is_404(admin):
    async with admin.get("/events/thing_exploded") as resp:
        problem = await problem_of(resp, 404)
    assert "thing_exploded" in problem["detail"]


async def test_bad_diff_value_is_400(admin):
    async with admin.get("/events?diff=maybe") as resp:
        problem = await problem_of(resp, 400)
    assert problem["parameter"] == "diff"


async def test_events_need_authentication(running):
    async with running.session() as anonymous, anonymous.get("/events") as resp:
        await problem_of(resp, 401)
        assert "Bearer" in resp.headers["WWW-Authenticate"]


async def test_last_event_id_resumes_without_losses(admin):
    ids = [f"urn:dev:ops:resume-{n}" for n in range(6)]
    async with sse(admin, "/events") as events:
        await put_td(admin, lamp_td(ids[0]))
        await put_td(admin, lamp_td(ids[1]))
        first = await events.next()
        second = await events.next()
        assert [first["data"]["id"], second["data"]["id"]] == ids[:2]
    # Dropped. Meanwhile more happens.
    for thing_id in ids[2:]:
        await put_td(admin, lamp_td(thing_id))
    await patch_title(admin, ids[0], "Changed while away")
    await delete(admin, ids[1])
    async with sse(admin, "/events", **{"Last-Event-ID": second["id"]}) as events:
        missed = [await events.next() for _ in range(len(ids) - 2 + 2)]
        assert [(e["event"], e["data"]["id"]) for e in missed] == [
            *(("thing_created", i) for i in ids[2:]),
            ("thing_updated", ids[0]),
            ("thing_deleted", ids[1]),
        ]
        # Then live events follow on the same stream.
        await put_td(admin, lamp_td("urn:dev:ops:live"))
        live = await events.next()
        assert (live["event"], live["data"]["id"]) == ("thing_created", "urn:dev:ops:live")
    numbers = [int(e["id"].rpartition("-")[2]) for e in (second, *missed, live)]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)


async def test_a_stream_opens_with_a_comment_and_every_event_has_data(admin):
    # SseReader is strict: an id-only block (what WoT Discovery clients choke on) fails.
    async with sse(admin, "/events") as events:
        await put_td(admin, lamp_td("urn:dev:ops:first"))
        first = await events.next()
        assert events.comments[:1] == ["stream open"]
    assert first["data"] == {"id": "urn:dev:ops:first"} and EVENT_ID.match(first["id"])
    await put_td(admin, lamp_td("urn:dev:ops:while-away"))
    async with sse(admin, "/events", **{"Last-Event-ID": first["id"]}) as events:
        missed = await events.next()
        assert (missed["event"], missed["data"]) == (
            "thing_created",
            {"id": "urn:dev:ops:while-away"},
        )
        assert missed["id"] != first["id"]


async def test_an_unknown_last_event_id_asks_for_a_resync(admin):
    async with sse(admin, "/events", **{"Last-Event-ID": "another-run-12"}) as events:
        first = await events.next()
        assert first["event"] == "resync"
        await put_td(admin, lamp_td())
        created = await events.next()
        assert created["event"] == "thing_created"


# -- who may do what ------------------------------------------------------------------------


async def test_agents_own_their_tds(running, admin):
    token_a = running.add_client("agent-a", "agent", "agent")
    token_b = running.add_client("agent-b", "agent", "agent")
    td_a = lamp_td("urn:dev:ops:agent-a/lamp", "A's lamp")
    td_b = lamp_td("urn:dev:ops:agent-b/lamp", "B's lamp")
    async with running.session(token_a) as a, running.session(token_b) as b:
        await put_td(a, td_a, 201)
        await put_td(b, td_b, 201)
        await put_td(admin, lamp_td("urn:dev:ops:admins", "The admin's"), 201)

        # B may not replace, patch or delete A's TD. Agents may register TDs, so
        # replacing or patching one that another client registered is the directory's
        # Conflict (409); deleting is an operation on the owner's Things only (403).
        async with b.put(
            path_of(td_a["id"]),
            data=json.dumps({**td_a, "title": "Stolen"}),
            headers={"Content-Type": TD_JSON},
        ) as resp:
            problem = await problem_of(resp, 409)
        assert "another client" in problem["detail"]
        assert problem["thingID"] == td_a["id"]
        async with b.patch(
            path_of(td_a["id"]),
            data=json.dumps({"title": "Stolen"}),
            headers={"Content-Type": MERGE_PATCH},
        ) as resp:
            await problem_of(resp, 409)
        async with b.delete(path_of(td_a["id"])) as resp:
            await problem_of(resp, 403)
        # B may not read it either.
        async with b.get(path_of(td_a["id"])) as resp:
            await problem_of(resp, 403)

        _, got = await get_json(admin, path_of(td_a["id"]))
        assert got["title"] == "A's lamp"

        # Each agent lists and searches its own TDs only.
        _, listed_a = await get_json(a, "/things")
        assert [t["id"] for t in listed_a] == [td_a["id"]]
        _, listed_b = await get_json(b, "/things?format=collection")
        assert listed_b["total"] == 1
        assert [t["id"] for t in listed_b["members"]] == [td_b["id"]]
        _, found = await get_json(a, "/search/jsonpath", params={"query": "$[*].id"})
        assert found == [td_a["id"]]
        _, everything = await get_json(admin, "/things")
        assert len(ids_of(everything)) == 3

        # A may change and delete its own.
        await patch_title(a, td_a["id"], "A's lamp, renamed")
        await delete(a, td_a["id"])


async def test_a_viewer_may_read_but_not_write(running, admin):
    td = lamp_td()
    await put_td(admin, td)
    token = running.add_client("vera", "consumer", "viewer")
    async with running.session(token) as viewer:
        _, listed = await get_json(viewer, "/things")
        assert ids_of(listed) == [td["id"]]
        await get_json(viewer, path_of(td["id"]))
        async with viewer.put(
            path_of("urn:dev:ops:new"),
            data=json.dumps(lamp_td("urn:dev:ops:new")),
            headers={"Content-Type": TD_JSON},
        ) as resp:
            await problem_of(resp, 403)
        async with viewer.post(
            "/things", data=json.dumps(lamp_td(None)), headers={"Content-Type": TD_JSON}
        ) as resp:
            await problem_of(resp, 403)
        async with viewer.patch(
            path_of(td["id"]),
            data=json.dumps({"title": "x"}),
            headers={"Content-Type": MERGE_PATCH},
        ) as resp:
            await problem_of(resp, 403)
        async with viewer.delete(path_of(td["id"])) as resp:
            await problem_of(resp, 403)
    _, listed = await get_json(admin, "/things")
    assert [(t["id"], t["title"]) for t in listed if t["id"] == td["id"]] == [(td["id"], "Lamp")]
    assert ids_of(listed) == [td["id"]]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/things"),
        ("GET", "/things/urn:dev:ops:x"),
        ("PUT", "/things/urn:dev:ops:x"),
        ("POST", "/things"),
        ("DELETE", "/things/urn:dev:ops:x"),
        ("GET", "/search/jsonpath?query=$"),
    ],
)
async def test_the_directory_api_needs_authentication(running, method, path):
    async with running.session() as anonymous, anonymous.request(method, path) as resp:
        await problem_of(resp, 401)
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_an_agent_hears_about_its_own_things_but_not_others(running, admin):
    """Created and updated events, own Things only (the next test adds deletion)."""
    token_a = running.add_client("agent-a", "agent", "agent")
    token_b = running.add_client("agent-b", "agent", "agent")
    mine, theirs = lamp_td("urn:dev:ops:a/1"), lamp_td("urn:dev:ops:b/1")
    async with (
        running.session(token_a) as a,
        running.session(token_b) as b,
        sse(a, "/events?diff=true") as events,
    ):
        await put_td(b, theirs)
        await put_td(a, mine)
        created = await events.next()
        assert created["event"] == "thing_created"
        assert created["data"]["id"] == mine["id"]
        await patch_title(b, theirs["id"], "B's")
        await delete(b, theirs["id"])
        await patch_title(a, mine["id"], "A's")
        updated = await events.next()
        assert (updated["event"], updated["data"]) == (
            "thing_updated",
            {"id": mine["id"], "title": "A's"},
        )
        await patch_title(a, mine["id"], "A's again")  # the marker: next, nothing before it
        await events.next_is({"id": mine["id"], "title": "A's again"})


async def test_an_agent_hears_about_its_own_things_only(running, admin):
    token_a = running.add_client("agent-a", "agent", "agent")
    token_b = running.add_client("agent-b", "agent", "agent")
    mine, theirs = lamp_td("urn:dev:ops:a/1"), lamp_td("urn:dev:ops:b/1")
    async with (
        running.session(token_a) as a,
        running.session(token_b) as b,
        sse(a, "/events") as events,
    ):
        await put_td(b, theirs)
        await put_td(a, mine)
        created = await events.next()
        assert (created["event"], created["data"]) == ("thing_created", {"id": mine["id"]})
        await patch_title(b, theirs["id"], "B's")
        await delete(b, theirs["id"])
        await patch_title(a, mine["id"], "A's")
        updated = await events.next()
        assert (updated["event"], updated["data"]) == ("thing_updated", {"id": mine["id"]})
        await delete(a, mine["id"])
        deleted = await events.next(timeout=2)
        assert (deleted["event"], deleted["data"]) == ("thing_deleted", {"id": mine["id"]})
