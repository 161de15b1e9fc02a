"""What the dashboard needs from the server, without a browser: ``/`` negotiated between
the dashboard (HTML) and the directory's TD, static files with their content types and
security headers, and presence (``GET /presence``, ``thing_presence`` on /events)."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import quote

import pytest

from tests.support.devices import AGENT, register
from tests.support.tds import thing_td
from tests.waiting import until

from .conftest import LAMP, desk_lamp_td

pytestmark = pytest.mark.timeout(60)

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


async def test_root_is_the_dashboard_for_browsers_and_the_td_for_the_rest(running):
    async with running.session() as http:
        async with http.get("/", headers={"Accept": BROWSER_ACCEPT}) as response:
            assert response.status == 200
            assert response.content_type == "text/html"
            assert response.headers["Vary"] == "Accept"
            assert '<script type="module" src="/dashboard/app.js">' in await response.text()
        for accept in (None, "*/*", "application/td+json", "text/html;q=0"):
            headers = {"Accept": accept} if accept else {}
            async with http.get("/", headers=headers) as response:
                assert response.status == 200
                assert response.content_type == "application/td+json"
                assert response.headers["Vary"] == "Accept"
                assert "Content-Security-Policy" not in response.headers
        async with http.get("/.well-known/wot", headers={"Accept": BROWSER_ACCEPT}) as response:
            assert response.content_type == "application/td+json"
        async with http.head("/", headers={"Accept": BROWSER_ACCEPT}) as response:
            assert response.status == 200


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("app.js", "text/javascript"),
        ("api.js", "text/javascript"),
        ("style.css", "text/css"),
        ("icon.svg", "image/svg+xml"),
        ("vendor/uplot/uPlot.iife.min.js", "text/javascript"),  # vendored, as it ships
        ("vendor/uplot/uPlot.min.css", "text/css"),
        ("", "text/html"),
    ],
)
async def test_static_files_have_types_csp_nosniff_and_cache_headers(running, name, content_type):
    async with running.session() as http:
        async with http.get(f"/dashboard/{name}") as response:
            assert response.status == 200
            assert response.content_type == content_type
            csp = response.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "default-src 'none'" in csp
            assert "unsafe-inline" not in csp
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["Cache-Control"] == "no-cache"
            etag = response.headers["ETag"]
        async with http.get(f"/dashboard/{name}", headers={"If-None-Match": etag}) as response:
            assert response.status == 304
            assert response.headers["ETag"] == etag


@pytest.mark.parametrize(
    "name",
    [
        "nope.js",
        "..%2Fapp.py",
        "__init__.py",
        "app.js.map",
        "x.html",
        "vendor/uplot/LICENSE",
        "vendor/uplot/README.md",
        "vendor/uplot/..%2F..%2Fapp.js",
        "vendor/uplot/.hidden.js",
        "static/app.js",
    ],
)
async def test_only_dashboard_files_are_served(running, name):
    async with running.session() as http, http.get(f"/dashboard/{name}") as response:
        assert response.status == 404
        assert response.content_type == "application/problem+json"


def test_the_dashboard_has_no_inline_script_or_style():
    from bindings.http.dashboard import STATIC

    html = (STATIC / "index.html").read_text()
    assert "<script>" not in html and "<style" not in html and " style=" not in html
    assert " on" not in html.replace("noscript", "")  # no onclick= handlers
    for path in STATIC.glob("*.js"):
        text = path.read_text()
        for forbidden in ("innerHTML", "eval(", "localStorage", "sessionStorage", "document.write"):
            assert forbidden not in text, f"{forbidden} in {path.name}"


async def test_presence_of_things_and_their_owners(running):
    token = running.add_client("vera", "consumer", "viewer")
    conn = await register(running, td=desk_lamp_td())
    other = await register(running, "other-agent", thing_td("urn:dev:other", "Other"))
    await other.close()
    query = "&".join(f"id={quote(i, safe='')}" for i in (LAMP, "urn:dev:other", "urn:nope"))
    async with running.session(token) as http:
        async with http.get(f"/presence?{query}") as response:
            assert response.status == 200
            found = await response.json()
        assert found[LAMP] == {"owner": AGENT, "online": True, "lastSeen": found[LAMP]["lastSeen"]}
        assert found["urn:dev:other"]["online"] is False
        assert found["urn:dev:other"]["owner"] == "other-agent"
        assert "urn:nope" not in found
        async with http.get("/presence?id=urn:wothub:clients") as response:
            assert (await response.json())["urn:wothub:clients"]["online"] is True
        async with http.get("/presence") as response:
            assert response.status == 400
    async with running.session() as http, http.get(f"/presence?{query}") as response:
        assert response.status == 401
    # an agent sees its own Things only
    agent_token = running.hub.auth.new_token(AGENT)["token"]
    async with running.session(agent_token) as http, http.get(f"/presence?{query}") as response:
        assert set(await response.json()) == {LAMP}
    await conn.close()


async def _events(response, count):
    """The first ``count`` named events of an SSE response: [(event, data)]."""
    found, event = [], None
    async with asyncio.timeout(10):
        async for raw in response.content:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event:
                found.append((event, json.loads(line[5:].strip())))
                event = None
                if len(found) == count:
                    return found
    return found


async def test_presence_changes_on_the_directory_stream(running):
    token = running.add_client("vera", "consumer", "viewer")
    stream = {"Accept": "text/event-stream"}
    async with running.session(token) as http:
        async with (
            http.get("/events?presence=true", headers=stream) as both,
            http.get("/events/thing_presence", headers=stream) as only,
            http.get("/events", headers=stream) as plain,
        ):
            await until(lambda: len(running.hub.http.context.streams) == 3)  # all listening
            # created, and (already connected) then offline:
            conn = await register(running, td=desk_lamp_td())
            await conn.close()
            conn = await running.device(AGENT)
            events = await _events(both, 3)
            assert [e for e, _ in events] == ["thing_created", "thing_presence", "thing_presence"]
            assert events[1][1]["id"] == LAMP and events[1][1]["online"] is False
            assert events[2][1]["online"] is True and "lastSeen" in events[2][1]
            assert [e for e, _ in await _events(only, 2)] == ["thing_presence"] * 2
            assert [e for e, _ in await _events(plain, 1)] == ["thing_created"]
        async with http.get("/events?presence=maybe", headers=stream) as response:
            assert response.status == 400
