"""What every HTTP handler shares: the router, who is asking, the URLs, and the way a
request is carried through the router and its answer read."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import HTTPConnection, Request

from bindings.common.web_credentials import WebCredentials
from core.connection import Connection
from core.contract import Core
from vocabulary.envelope import ABSENT, FAILED, Message
from vocabulary.identity import Client
from vocabulary.problems import BadRequest

from .forms import HttpForms
from .problems import ProblemResponse, UnsupportedMediaType

JSON_TYPES = ("application/json", "application/td+json", "application/ld+json")


class HttpContext:
    def __init__(
        self,
        router: Core,
        credentials: WebCredentials,
        forms: HttpForms,
        sync_wait: float,
        action_timeout: float,
    ) -> None:
        self.router = router
        self.credentials = credentials
        self.forms = forms
        self.sync_wait = sync_wait  # writes: then 202
        self.action_timeout = action_timeout  # actions without Prefer: then 504
        self.streams: set[Connection] = set()  # open SSE streams, ended when the hub stops

    async def client(self, request: HTTPConnection) -> Client:
        return await self.credentials.client(request)

    def connection(self, client: Client, binding: str = "http") -> Connection:
        """A router connection for one exchange or one stream (it gets no requests);
        a stream counts against the client's concurrent connections, an exchange not."""
        return self.router.connect(
            client, binding, receives_requests=False, counted=binding != "http"
        )

    def close_streams(self) -> None:
        for connection in list(self.streams):
            connection.close("hub stopping")

    def call(self, client: Client, message: Message) -> Message:
        """Carry one request through the router; an error response is raised."""
        connection = self.connection(client)
        try:
            response = self.router.handle(connection, message)
        finally:
            connection.close()
        assert response is not None
        if response.status == FAILED and response.error is not None:
            raise ProblemResponse(response.error)
        return response


async def json_body(
    request: Request,
    *,
    required: bool = True,
    types: tuple[str, ...] = JSON_TYPES,
    strict_type: bool = False,
) -> Any:
    """The request's JSON body; ABSENT when empty and not required. A missing
    Content-Type is taken for JSON unless ``strict_type``."""
    body = await request.body()
    if not body:
        if required:
            raise BadRequest("the request needs a JSON body")
        return ABSENT
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if (media_type or strict_type) and media_type not in types:
        raise UnsupportedMediaType(
            f"send {' or '.join(types)}, not {media_type or 'no Content-Type'}",
            accepted=list(types),
        )
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
