"""Groups of Things over HTTPS (docs/groups.md): define, list, show and remove groups
(managers and administrators change them), the group's own TD, the group table (every
member's properties, paged), a write or an action on every member, the status of such
a group request, and one SSE stream with the members' notifications."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.subscriptions import DIRECTORY, EVENT, PROPERTY
from vocabulary import operations as ops
from vocabulary.envelope import ABSENT, Message
from vocabulary.problems import NotFound

from . import sse
from .context import HttpContext, json_body
from .group_td import group_td_of, group_url
from .paths import encode, query_int, segment

TD_JSON = "application/td+json"


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status, headers, media_type="application/json")


class GroupsApi:
    def __init__(self, context: HttpContext) -> None:
        self.context = context
        self.groups = context.router.groups

    def routes(self) -> list[Route]:
        return [
            Route("/groups", self.list, methods=["GET"]),
            Route("/groups/{group}", self.show, methods=["GET"]),
            Route("/groups/{group}", self.define, methods=["PUT"]),
            Route("/groups/{group}", self.remove, methods=["DELETE"]),
            Route("/groups/{group}/td", self.td, methods=["GET"]),
            Route("/groups/{group}/properties", self.table, methods=["GET"]),
            Route("/groups/{group}/properties/{name}", self.read_property, methods=["GET"]),
            Route("/groups/{group}/properties/{name}", self.write_property, methods=["PUT"]),
            Route("/groups/{group}/actions/{name}", self.invoke, methods=["POST"]),
            Route("/groups/{group}/requests/{id}", self.status, methods=["GET"]),
            Route("/groups/{group}/events", self.events, methods=["GET"]),
            Route("/groups/{group}/events/{name}", self.events, methods=["GET"]),
        ]

    async def list(self, request: Request) -> Response:
        client = await self.context.client(request)
        return _json(self.groups.all(client))

    async def show(self, request: Request) -> Response:
        client = await self.context.client(request)
        return _json(self.groups.show(client, _group(request)))

    async def define(self, request: Request) -> Response:
        client = await self.context.client(request)
        definition = await json_body(request)
        group, created = self.groups.define(client, _group(request), definition)
        return _json(group, 201 if created else 200)

    async def remove(self, request: Request) -> Response:
        client = await self.context.client(request)
        self.groups.remove(client, _group(request))
        return Response(status_code=204)

    async def td(self, request: Request) -> Response:
        client = await self.context.client(request)
        td = group_td_of(self.groups, client, _group(request), self.context.forms)
        return Response(orjson.dumps(td), media_type=TD_JSON)

    async def table(self, request: Request) -> Response:
        client = await self.context.client(request)
        offset, limit = _page(request)
        return _json(self.groups.read(client, _group(request), offset, limit))

    async def read_property(self, request: Request) -> Response:
        """{thing id: value} of one property, for the members of the page that have one."""
        client = await self.context.client(request)
        name = segment(request.path_params["name"])
        offset, limit = _page(request)
        table = self.groups.read(client, _group(request), offset, limit)
        values = {
            row["thingID"]: row["values"][name]
            for row in table["rows"]
            if name in row.get("values", {})
        }
        return _json(values)

    async def write_property(self, request: Request) -> Response:
        return await self._request(request, ops.WRITE_PROPERTY, await json_body(request))

    async def invoke(self, request: Request) -> Response:
        return await self._request(
            request, ops.INVOKE_ACTION, await json_body(request, required=False)
        )

    async def _request(self, request: Request, operation: str, data: Any) -> Response:
        client = await self.context.client(request)
        name, affordance = _group(request), segment(request.path_params["name"])
        ttl = query_int(request.query_params, "ttl", minimum=1)
        status = self.groups.request(client, name, operation, affordance, data, ttl)
        location = f"{group_url('', name)}/requests/{encode(status['id'])}"
        return _json(status, 201, {"Location": location})

    async def status(self, request: Request) -> Response:
        client = await self.context.client(request)
        status = self.groups.status(client, segment(request.path_params["id"]))
        if status["group"] != _group(request):
            raise NotFound(f"the group {_group(request)!r} has no such request")
        return _json(status)

    async def events(self, request: Request) -> Response:
        """The members' property changes (event ``property``) and events (``event``), each
        {"thingID", "name", "value", "timestamp"}; ``/events/{name}`` only that event.
        Membership follows the directory: a Thing that registers and matches the group
        is in the stream from then on."""
        client = await self.context.client(request)
        name = _group(request)
        wanted = request.path_params.get("name")
        wanted = None if wanted is None else segment(wanted)
        members = set(self.groups.members(client, name))
        router = self.context.router
        connection = self.context.connection(client, "sse")
        try:
            if wanted is None:
                router.subscribe(connection, PROPERTY)
            router.subscribe(connection, EVENT, None, wanted)
            router.subscribe(connection, DIRECTORY)
        except Exception:
            router.disconnect(connection)
            raise

        def render(message: Message) -> tuple[str, Any] | None:
            if message.operation in (ops.UPDATE_THING, ops.DELETE_THING):
                members.clear()  # a Thing came or went: who is a member now
                try:
                    members.update(self.groups.members(client, name))
                except NotFound:
                    connection.close("the group was removed")
                return None
            if message.thing_id not in members:
                return None
            kind = "property" if message.operation == ops.OBSERVE_PROPERTY else "event"
            data = {
                "thingID": message.thing_id,
                "name": message.name,
                "timestamp": message.timestamp,
            }
            if message.value is not ABSENT:
                data["value"] = message.value
            return kind, data

        await router.notifications_ready()
        return sse.stream(
            router, connection, render, request.headers.get("last-event-id"), self.context.streams
        )


def _group(request: Request) -> str:
    return segment(request.path_params["group"])


def _page(request: Request) -> tuple[int, int | None]:
    params = request.query_params
    offset = query_int(params, "offset", minimum=0) or 0
    return offset, query_int(params, "limit", minimum=1)
