"""The WoT Discovery Thing Description Directory API (Discovery 7.3.2): the directory's
own TD, listing with paging, create / retrieve / update / patch / delete, JSONPath
search, and TD change notifications over SSE."""

from __future__ import annotations

import contextlib
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.subscriptions import DIRECTORY, PRESENCE
from digitwin.selection import Selection
from digitwin.twintd import DISCOVERY_CONTEXT
from vocabulary import operations as ops
from vocabulary.envelope import ABSENT, REQUEST, Message, new_id
from vocabulary.problems import BadRequest, NotFound, Problem

from . import sse
from .context import HttpContext, json_body
from .directory_td import directory_td
from .paths import query_int, segment

TD_JSON = "application/td+json"
LD_JSON = "application/ld+json"
MERGE_PATCH = "application/merge-patch+json"
MAX_PAGE = 1000  # a page never holds more TDs than this, asked for or not
EVENT_TYPES = {"thing_created", "thing_updated", "thing_deleted"}
# Not WoT Discovery: an agent going on- or offline, for the Things it owns. Sent on
# /events/thing_presence, or on /events with ?presence=true (the dashboard's stream).
PRESENCE_EVENT = "thing_presence"
MAX_PRESENCE_IDS = 1000


class DirectoryApi:
    def __init__(self, context: HttpContext) -> None:
        self.context = context
        self.router = context.router
        self._own_td: tuple[str, bytes] | None = None  # (base URL, TD) made on first use

    def routes(self) -> list[Route]:
        return [
            # "/" is the dashboard's (bindings/http/dashboard): this TD, unless HTML is asked for
            Route("/.well-known/wot", self.own_td, methods=["GET"]),
            Route("/things", self.list, methods=["GET"]),
            Route("/things", self.create_anonymous, methods=["POST"]),
            Route("/things/{thing}", self.retrieve, methods=["GET"]),
            Route("/things/{thing}", self.create_or_update, methods=["PUT"]),
            Route("/things/{thing}", self.patch, methods=["PATCH"]),
            Route("/things/{thing}", self.delete, methods=["DELETE"]),
            Route("/search/jsonpath", self.search, methods=["GET"]),
            Route("/presence", self.presence, methods=["GET"]),
            Route("/events", self.events, methods=["GET"]),
            Route("/events/{type}", self.events, methods=["GET"]),
        ]

    async def own_td(self, request: Request) -> Response:
        forms = self.context.forms
        if self._own_td is None or self._own_td[0] != forms.base_url:
            td = directory_td(forms.base_url, forms.security_definitions())
            self._own_td = (forms.base_url, orjson.dumps(td))
        return Response(self._own_td[1], media_type=TD_JSON)

    async def list(self, request: Request) -> Response:
        client = await self.context.client(request)
        params = request.query_params
        offset = query_int(params, "offset", minimum=0) or 0
        limit = query_int(params, "limit", minimum=1)
        form = params.get("format", "array")
        if form not in ("array", "collection"):
            raise BadRequest(f"format is array or collection, not {form!r}", parameter="format")
        page_size = min(limit or MAX_PAGE, MAX_PAGE)
        selection = _selection(params)
        items, total = self.router.list_things(client, offset, page_size, selection)
        headers = {}
        links = ['</things>; rel="canonical"; etag="v1"']
        next_url = None
        if offset + len(items) < total:
            next_url = _page_url(offset + len(items), page_size, form, selection)
            links.insert(0, f'<{next_url}>; rel="next"')
        headers["Link"] = ", ".join(links)
        if form == "array":
            return Response(orjson.dumps(items), headers=headers, media_type=LD_JSON)
        collection: dict[str, Any] = {
            "@context": DISCOVERY_CONTEXT,
            "@type": "ThingCollection",
            "total": total,
            "members": items,
            "@id": _page_url(offset, page_size, form, selection),
        }
        if next_url:
            collection["next"] = next_url
        return Response(orjson.dumps(collection), headers=headers, media_type=LD_JSON)

    async def retrieve(self, request: Request) -> Response:
        client = await self.context.client(request)
        td = self.router.thing_description(client, _thing(request))
        return Response(orjson.dumps(td), media_type=TD_JSON)

    async def create_anonymous(self, request: Request) -> Response:
        client = await self.context.client(request)
        td = await json_body(request)
        if isinstance(td, dict) and "id" in td:
            raise BadRequest(
                "this TD has an id: register it with PUT /things/{id}; POST /things is for "
                "TDs without one",
                validationErrors=[{"field": "id", "description": "not allowed in POST"}],
            )
        thing_id = self._update(client, td, None)["id"]
        # The id itself (a urn:uuid: URI), as the WoT Discovery test suite reads Location:
        # it retrieves the TD from /things/<Location>.
        return Response(status_code=201, headers={"Location": thing_id})

    async def create_or_update(self, request: Request) -> Response:
        client = await self.context.client(request)
        thing_id = _thing(request)
        td = await json_body(request)
        if isinstance(td, dict):
            if "id" not in td:
                raise BadRequest(
                    "the TD has no id; it must be the id in the path",
                    validationErrors=[{"field": "id", "description": "is required"}],
                )
            if td["id"] != thing_id:
                raise BadRequest(
                    f"the TD's id {td['id']!r} differs from the id in the path {thing_id!r}",
                    validationErrors=[{"field": "id", "description": "differs from the path"}],
                )
        created = self._update(client, td, thing_id)["created"]
        return Response(status_code=201 if created else 204)

    async def patch(self, request: Request) -> Response:
        client = await self.context.client(request)
        patch = await json_body(request, types=(MERGE_PATCH,), strict_type=True)  # a MUST
        if not isinstance(patch, dict):
            raise BadRequest("a merge patch of a TD is a JSON object")
        self.router.patch_thing(client, _thing(request), patch)
        return Response(status_code=204)

    async def delete(self, request: Request) -> Response:
        client = await self.context.client(request)
        message = Message(REQUEST, ops.DELETE_THING, _thing(request), correlation_id=new_id())
        self.context.call(client, message)
        return Response(status_code=204)

    async def search(self, request: Request) -> Response:
        client = await self.context.client(request)
        query = request.query_params.get("query")
        if not query:
            raise BadRequest("search needs a query parameter (RFC 9535 JSONPath)")
        found = self.router.search_things(client, query, _selection(request.query_params))
        return Response(orjson.dumps(found), media_type="application/json")

    async def presence(self, request: Request) -> Response:
        """``?id=..&id=..``: {thing id: {"owner", "online", "lastSeen"}} for the Things
        named that the client may read (the others are left out)."""
        client = await self.context.client(request)
        ids = request.query_params.getlist("id")
        if not ids:
            raise BadRequest("name the Things: ?id=<thing id>&id=...", parameter="id")
        if len(ids) > MAX_PRESENCE_IDS:
            raise BadRequest(f"at most {MAX_PRESENCE_IDS} ids at once", parameter="id")
        self.router.admit(client)  # one request, however many ids
        found: dict[str, Any] = {}
        for thing_id in ids:
            with contextlib.suppress(Problem):  # unknown, or not the client's to see
                found[thing_id] = self.router.thing_presence(client, thing_id)
        return Response(orjson.dumps(found), media_type="application/json")

    async def events(self, request: Request) -> Response:
        client = await self.context.client(request)
        wanted = request.path_params.get("type")
        if wanted is not None and wanted not in EVENT_TYPES | {PRESENCE_EVENT}:
            known = sorted(EVENT_TYPES | {PRESENCE_EVENT})
            raise NotFound(f"no event type {wanted!r}; there are {known}")
        diff = request.query_params.get("diff", "false").lower()
        if diff not in ("true", "false"):
            raise BadRequest("diff is true or false", parameter="diff")
        presence = request.query_params.get("presence", "false").lower()
        if presence not in ("true", "false"):
            raise BadRequest("presence is true or false", parameter="presence")
        if request.method == "HEAD":
            return Response(media_type="text/event-stream")
        connection = self.context.connection(client, "sse")
        try:
            if wanted != PRESENCE_EVENT:
                self.router.subscribe(connection, DIRECTORY)
            if wanted == PRESENCE_EVENT or (wanted is None and presence == "true"):
                self.router.subscribe(connection, PRESENCE)
        except Exception:
            self.router.disconnect(connection)  # releases it (connection limits)
            raise

        def render(message: Message) -> tuple[str, Any] | None:
            return self._directory_event(client, message, wanted, diff == "true")

        await self.router.notifications_ready()  # a cluster node: the others' too
        return sse.stream(
            self.router,
            connection,
            render,
            request.headers.get("last-event-id"),
            self.context.streams,
        )

    def _directory_event(
        self, client: Any, message: Message, wanted: str | None, diff: bool
    ) -> tuple[str, Any] | None:
        change = message.value if isinstance(message.value, dict) else {}
        if message.operation == ops.UPDATE_PRESENCE:
            return PRESENCE_EVENT, {**change, "id": message.thing_id}
        if message.operation == ops.DELETE_THING:
            kind = "thing_deleted"
        else:
            kind = "thing_created" if change.get("created") else "thing_updated"
        if wanted is not None and kind != wanted:
            return None
        data: dict[str, Any] = {"id": message.thing_id}
        if diff and kind == "thing_created":
            with contextlib.suppress(Problem):  # unless deleted since, or unreadable
                thing_id = message.required_thing_id()
                data = self.router.thing_description(client, thing_id, admit=False)
        elif diff and kind == "thing_updated":
            data = {**change.get("diff", {}), "id": message.thing_id}
        return kind, data

    def _update(self, client: Any, td: Any, thing_id: str | None) -> dict[str, Any]:
        message = Message(REQUEST, ops.UPDATE_THING, thing_id, input=td, correlation_id=new_id())
        output = self.context.call(client, message).output
        assert output is not ABSENT
        return output


def _thing(request: Request) -> str:
    return segment(request.path_params["thing"])


def _selection(params: Any) -> Selection:
    """``?agent=ID&type=T`` (each optional, each at most once): the Things to list."""
    for name in ("agent", "type"):
        if len(params.getlist(name)) > 1:
            raise BadRequest(f"{name} may be given once", parameter=name)
    return Selection(params.get("agent"), params.get("type"))


def _page_url(offset: int, limit: int, form: str, selection: Selection) -> str:
    query: dict[str, int | str] = {"offset": offset, "limit": limit}
    if form != "array":
        query["format"] = form
    query |= {"agent": selection.agent} if selection.agent is not None else {}
    query |= {"type": selection.thing_type} if selection.thing_type is not None else {}
    return f"/things?{urlencode(query)}"
