"""Every HTTP error is an RFC 9457 problem (application/problem+json with type, title,
status, detail): bad JSON, invalid TDs with validationErrors, unknown ids and routes,
wrong methods and media types, and bodies over the limit, after which the hub keeps
serving. Real hub, real aiohttp clients."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from hub.config import Config
from tests.support import tds
from tests.support.problems import PROBLEM, problem_of

pytestmark = pytest.mark.timeout(60)

TD_JSON = "application/td+json"
MERGE_PATCH = "application/merge-patch+json"
LIMIT = Config(home=None).max_body_bytes  # what the running fixture's hub uses (1 MiB)


def lamp_td(thing_id: str | None = "urn:dev:ops:lamp-1", **changes) -> dict:
    """The shared lamp with one property: what bad requests are tried on."""
    return tds.lamp_td(thing_id, only=("on",), **changes)


async def still_serving(admin) -> None:
    async with admin.get("/things") as resp:
        assert resp.status == 200
        await resp.read()
    async with admin.put(
        "/things/urn:dev:ops:after",
        data=json.dumps(lamp_td("urn:dev:ops:after")),
        headers={"Content-Type": TD_JSON},
    ) as resp:
        assert resp.status in (201, 204), await resp.text()


# -- malformed and invalid bodies ---------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"{", b'{"id": }', b"not json", b"\xff\xfe{}", b'{"a": 1} trailing', b"[" * 5000],
)
async def test_malformed_json_is_a_400_problem(admin, body):
    async with admin.put(
        "/things/urn:dev:ops:lamp-1", data=body, headers={"Content-Type": TD_JSON}
    ) as resp:
        problem = await problem_of(resp, 400)
    assert "JSON" in problem["detail"]
    async with admin.post("/things", data=body, headers={"Content-Type": TD_JSON}) as resp:
        await problem_of(resp, 400)
    async with admin.post(
        "/authn/login", data=body, headers={"Content-Type": "application/json"}
    ) as resp:
        await problem_of(resp, 400)


async def test_an_empty_body_is_a_400_problem(admin):
    async with admin.put("/things/urn:dev:ops:lamp-1", data=b"") as resp:
        problem = await problem_of(resp, 400)
    assert "body" in problem["detail"]
    async with admin.patch(
        "/things/urn:dev:ops:lamp-1", data=b"", headers={"Content-Type": MERGE_PATCH}
    ) as resp:
        await problem_of(resp, 400)


@pytest.mark.parametrize(
    ("td", "fields"),
    [
        (lamp_td(title=None), {"title"}),
        (lamp_td(title=5), {"title"}),
        ({**lamp_td(), "security": "missing_sc"}, {"security"}),
        ({k: v for k, v in lamp_td().items() if k != "securityDefinitions"}, None),
        (
            {**lamp_td(), "properties": {"on": {"type": "boolean", "forms": "nope"}}},
            {"properties.on.forms"},
        ),
        ({**lamp_td(), "@context": "https://example.com/not-a-td"}, {"@context"}),
        (lamp_td(thing_id="not a uri"), {"id"}),
    ],
)
async def test_an_invalid_td_is_a_400_with_validation_errors(admin, td, fields):
    if td.get("title", "") is None:
        del td["title"]
    async with admin.put(
        "/things/" + td["id"].replace(" ", "%20"),
        data=json.dumps(td),
        headers={"Content-Type": TD_JSON},
    ) as resp:
        problem = await problem_of(resp, 400)
    errors = problem["validationErrors"]
    assert isinstance(errors, list) and errors
    for error in errors:
        assert set(error) == {"field", "description"}
        assert isinstance(error["field"], str) and error["field"]
        assert isinstance(error["description"], str) and error["description"]
    for field in fields or ():  # named as the field, or in the description of its parent
        assert any(e["field"].startswith(field) or field in e["description"] for e in errors), (
            errors
        )
    async with admin.get("/things/" + td["id"].replace(" ", "%20")) as resp:
        await problem_of(resp, 404)


async def test_a_td_that_is_not_an_object_is_a_400(admin):
    async with admin.post("/things", data=b"[1, 2]", headers={"Content-Type": TD_JSON}) as resp:
        problem = await problem_of(resp, 400)
    assert problem["validationErrors"][0]["field"] == "(root)"
    async with admin.patch(
        "/things/urn:dev:ops:lamp-1", data=b"[]", headers={"Content-Type": MERGE_PATCH}
    ) as resp:
        await problem_of(resp, 400)


async def test_the_anonymous_td_is_validated_too(admin):
    td = lamp_td(None)
    del td["security"]
    async with admin.post(
        "/things", data=json.dumps(td), headers={"Content-Type": TD_JSON}
    ) as resp:
        problem = await problem_of(resp, 400)
    assert any("security" in (e["field"] + e["description"]) for e in problem["validationErrors"])


# -- unknown things, routes, methods and media types -------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/things/urn:dev:ops:nothing"),
        ("HEAD", "/things/urn:dev:ops:nothing"),
        ("DELETE", "/things/urn:dev:ops:nothing"),
        ("GET", "/things/urn:dev:ops:a%2Fb"),
        ("GET", "/things/urn:dev:ops:nothing/properties"),
        ("GET", "/things/urn:dev:ops:nothing/properties/on"),
        ("GET", "/things/urn:dev:ops:nothing/events"),
    ],
)
async def test_unknown_things_are_404(admin, method, path):
    async with admin.request(method, path) as resp:
        if method == "HEAD":
            assert resp.status == 404
            assert resp.content_type == PROBLEM
        else:
            problem = await problem_of(resp, 404)
            assert "urn:dev:ops:" in problem["detail"]


async def test_an_unknown_thing_is_404_for_patch(admin):
    async with admin.patch(
        "/things/urn:dev:ops:nothing",
        data=json.dumps({"title": "x"}),
        headers={"Content-Type": MERGE_PATCH},
    ) as resp:
        problem = await problem_of(resp, 404)
    assert problem["thingID"] == "urn:dev:ops:nothing"


@pytest.mark.parametrize(
    "path",
    ["/nothing", "/things/a/b/c/d/e", "/search/xpath?query=x", "/search/sparql?query=x", "/authn"],
)
async def test_unknown_routes_are_404_problems(admin, path):
    async with admin.get(path) as resp:
        await problem_of(resp, 404, detail=False)


async def test_unknown_routes_are_404_without_authentication_too(running):
    async with running.session() as anonymous, anonymous.get("/nothing") as resp:
        await problem_of(resp, 404, detail=False)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PATCH", "/things"),
        ("DELETE", "/things"),
        ("PUT", "/things"),
        ("POST", "/things/urn:dev:ops:x"),
        ("POST", "/search/jsonpath"),
        ("DELETE", "/.well-known/wot"),
        ("PUT", "/"),
        ("POST", "/events"),
    ],
)
async def test_wrong_methods_are_405_problems(admin, method, path):
    async with admin.request(method, path, data=b"{}") as resp:
        await problem_of(resp, 405, detail=False)
        assert "GET" in resp.headers["Allow"]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PATCH", "/things", {"GET", "HEAD", "POST"}),
        ("POST", "/things/urn:dev:ops:x", {"GET", "HEAD", "PUT", "PATCH", "DELETE"}),
    ],
)
async def test_405_allow_lists_every_method_of_the_resource(admin, method, path, allowed):
    async with admin.request(method, path, data=b"{}") as resp:
        await problem_of(resp, 405, detail=False)
        assert {m.strip() for m in resp.headers["Allow"].split(",")} == allowed


@pytest.mark.parametrize(
    "content_type",
    [None, "application/json", TD_JSON, "text/plain", "application/x-www-form-urlencoded"],
)
async def test_patch_needs_the_merge_patch_media_type(admin, content_type):
    async with admin.put(
        "/things/urn:dev:ops:lamp-1", data=json.dumps(lamp_td()), headers={"Content-Type": TD_JSON}
    ) as resp:
        assert resp.status == 201
    headers = {"Content-Type": content_type} if content_type else {}
    async with admin.patch(
        "/things/urn:dev:ops:lamp-1",
        data=json.dumps({"title": "x"}).encode(),
        headers=headers,
        skip_auto_headers=["Content-Type"],
    ) as resp:
        # WoT Discovery: a PATCH MUST say application/merge-patch+json; none is refused too.
        problem = await problem_of(resp, 415)
    assert problem["accepted"] == [MERGE_PATCH]
    assert (content_type or "send application/merge-patch+json") in problem["detail"]
    async with admin.get("/things/urn:dev:ops:lamp-1") as resp:
        assert (await resp.json(content_type=None))["title"] == "Lamp"


async def test_merge_patch_with_parameters_is_accepted(admin):
    async with admin.put(
        "/things/urn:dev:ops:lamp-1", data=json.dumps(lamp_td()), headers={"Content-Type": TD_JSON}
    ) as resp:
        assert resp.status == 201
    async with admin.patch(
        "/things/urn:dev:ops:lamp-1",
        data=json.dumps({"title": "x"}),
        headers={"Content-Type": "Application/Merge-Patch+JSON; charset=utf-8"},
    ) as resp:
        assert resp.status == 204, await resp.text()


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", MERGE_PATCH])
async def test_put_and_post_with_a_wrong_media_type_are_415(admin, content_type):
    body = json.dumps(lamp_td())
    async with admin.put(
        "/things/urn:dev:ops:lamp-1", data=body, headers={"Content-Type": content_type}
    ) as resp:
        problem = await problem_of(resp, 415)
    assert TD_JSON in problem["accepted"]
    async with admin.post(
        "/things", data=json.dumps(lamp_td(None)), headers={"Content-Type": content_type}
    ) as resp:
        await problem_of(resp, 415)


@pytest.mark.parametrize("path", ["/things/urn:x%FF", "/things/%C3%28"])
async def test_an_id_that_is_not_utf8_is_a_client_error(admin, path):
    async with admin.get(path) as resp:
        assert resp.status in (400, 404), await resp.text()
        assert resp.content_type == PROBLEM


async def test_errors_need_no_authentication_to_be_problems(running):
    async with running.session() as anonymous, anonymous.get("/things") as resp:
        await problem_of(resp, 401)
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


# -- bodies over the limit ------------------------------------------------------------------


async def send_oversized(admin, method: str, path: str, data, headers=None):
    """The status, or None when the hub closed the connection before the client had
    sent the whole body (also a refusal)."""
    try:
        async with admin.request(method, path, data=data, headers=headers or {}) as resp:
            body = await resp.read()
            return resp.status, resp.content_type, body
    except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError):
        return None


@pytest.mark.parametrize(
    ("method", "path"),
    [("PUT", "/things/urn:dev:ops:big"), ("POST", "/things"), ("POST", "/authn/login")],
)
async def test_a_body_over_the_limit_with_content_length_is_413(admin, method, path):
    td = lamp_td("urn:dev:ops:big", description="x" * (LIMIT + 10))
    if method == "POST" and path == "/things":
        del td["id"]
    data = json.dumps(td).encode()
    assert len(data) > LIMIT
    answer = await send_oversized(admin, method, path, data, {"Content-Type": TD_JSON})
    assert answer is not None, "the hub dropped the connection instead of answering 413"
    status, content_type, body = answer
    assert status == 413, body
    assert content_type == PROBLEM
    problem = json.loads(body)
    assert problem["status"] == 413
    assert str(LIMIT) in problem["detail"]
    await still_serving(admin)
    async with admin.get("/things/urn:dev:ops:big") as resp:
        assert resp.status == 404


async def test_a_chunked_body_over_the_limit_is_413(admin):
    chunk = b" " * 65536
    sent = 0

    async def body():
        nonlocal sent
        yield b'{"description": "'
        while sent <= LIMIT + len(chunk):
            sent += len(chunk)
            yield chunk
            await asyncio.sleep(0)  # a streamed body: let the hub read between chunks
        yield b'"}'

    answer = await send_oversized(
        admin, "PUT", "/things/urn:dev:ops:big", body(), {"Content-Type": TD_JSON}
    )
    assert answer is not None, "the hub dropped the connection instead of answering 413"
    status, content_type, raw = answer
    assert status == 413, raw
    assert content_type == PROBLEM
    assert json.loads(raw)["status"] == 413
    assert sent <= LIMIT + 2 * len(chunk)
    await still_serving(admin)


async def test_a_body_just_under_the_limit_is_read(admin):
    td = lamp_td("urn:dev:ops:big")
    padding = LIMIT - len(json.dumps({**td, "description": ""}).encode()) - 10
    td["description"] = "x" * padding
    data = json.dumps(td).encode()
    assert LIMIT - 20 < len(data) <= LIMIT
    async with admin.put(
        "/things/urn:dev:ops:big", data=data, headers={"Content-Type": TD_JSON}
    ) as resp:
        assert resp.status == 201, (await resp.read())[:300]


async def test_many_oversized_bodies_in_a_row_leave_the_hub_serving(admin):
    data = b"{" + b" " * (LIMIT + 1) + b"}"
    for _ in range(5):
        answer = await send_oversized(
            admin, "PUT", "/things/urn:dev:ops:big", data, {"Content-Type": TD_JSON}
        )
        assert answer is None or answer[0] == 413
    await still_serving(admin)


@pytest.mark.parametrize("path", ["/events", "/things/urn:dev:ops:big/events"])
async def test_a_stream_asked_for_with_a_body_over_the_limit_is_413_not_a_broken_stream(
    admin, path, caplog
):
    data = b"x" * (LIMIT + 10)
    answer = await send_oversized(admin, "GET", path, data, {"Accept": "text/event-stream"})
    assert answer is not None, "the hub dropped the connection instead of answering 413"
    status, content_type, body = answer
    assert (status, content_type) == (413, PROBLEM), body
    assert json.loads(body)["limit"] == "max_body_bytes"
    await still_serving(admin)
    assert not [r for r in caplog.records if r.exc_info], "the hub logged a traceback"
