"""Property reads, answered before Starlette: the request clients repeat most.

``GET /things/{id}/properties/{name}`` with no query, no body and no ``Accept:
text/event-stream`` reads the twin's current value. ``PropertyReads`` answers it straight
from the ASGI scope with the same steps as ``ThingsApi.property`` (the client's
credentials, the router's read with its rate limit and authorization for the Thing,
problem details on errors) and skips what costs more than the read itself: Starlette's
middleware stack, its route table (some twenty patterns tried in order), the raw-path
scope copy and its Request and Response objects. Every other request, and any read
with a query, a body or a stream wanted, goes to the application as it came.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from vocabulary.problems import Problem

from .paths import segment
from .problems import on_error, problem_answer
from .things_api import ThingsApi

_JSON = b"application/json"
# Headers that send the request on to the application: a body (the size limit is
# RawPathRouting's) or a stream.
_BODY = (b"content-length", b"transfer-encoding")


class PropertyReads:
    def __init__(self, app: ASGIApp, things: ThingsApi) -> None:
        self.app = app
        self.things = things

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        parts = _read_path(scope)
        if parts is None or not _plain(scope["headers"]):
            await self.app(scope, receive, send)
            return
        try:
            client = await self.things.context.client(HTTPConnection(scope))
            thing, name = segment(parts[0]), segment(parts[1])
            body, timestamp = self.things.read_value(client, thing, name)
        except Problem as problem:
            await problem_answer(problem)(scope, receive, send)
            return
        except Exception as exc:
            await (await on_error(Request(scope), exc))(scope, receive, send)
            return
        headers = [(b"content-length", b"%d" % len(body)), (b"content-type", _JSON)]
        if timestamp:
            headers.append((b"last-modified-time", timestamp.encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _read_path(scope: Scope) -> tuple[str, str] | None:
    """The still-encoded Thing id and property name of a plain GET of a property, as
    the route ``/things/{thing}/properties/{name}`` matches them; else None."""
    if scope["type"] != "http" or scope["method"] != "GET" or scope.get("query_string"):
        return None
    raw = scope.get("raw_path")
    if not raw or b"?" in raw:
        return None
    parts = raw.split(b"/")
    if len(parts) != 5 or parts[1] != b"things" or parts[3] != b"properties":
        return None
    if not parts[2] or not parts[4] or parts[0]:
        return None
    return parts[2].decode("latin-1"), parts[4].decode("latin-1")


def _plain(headers: list[tuple[bytes, bytes]]) -> bool:
    """No body and no stream asked for."""
    for name, value in headers:
        if name in _BODY or (name == b"accept" and b"text/event-stream" in value):
            return False
    return True
