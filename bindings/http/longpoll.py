"""Observing and subscribing by long polling: the ``longpoll`` subprotocol forms.

Some WoT clients cannot read the hub's SSE streams: node-wot's SSE client sends no
credentials and reads unnamed events only, while its long-poll client goes through the
same HTTP client (security, TLS) as its reads. A long poll is a GET that the hub holds
until the next notification of the affordance and answers with its data, as JSON; the
client then polls again. A value that changes between two polls is not sent, so long
polling suits "tell me when it changes"; SSE (resumable with ``Last-Event-ID``) is the
lossless way. The hold has no time limit of its own: it ends with the notification,
the client going away or the hub stopping (503). A held poll counts as one of the
client's connections, like a stream.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from core.connection import Connection, ConnectionClosed
from core.contract import Core
from vocabulary.problems import ServiceUnavailable

from .problems import problem_response
from .sse import Render

# The query parameter of a long-poll form's href.
PARAMETER = "longpoll"


def wanted(request: Request) -> bool:
    return request.query_params.get(PARAMETER, "").lower() == "true"


async def next_value(
    request: Request,
    router: Core,
    connection: Connection,
    render: Render,
    polls: set[Connection],
) -> Response:
    """The data of the next notification ``render`` keeps; ``polls`` holds the open
    ones, so the hub can end them when it stops."""

    async def first() -> Any:
        while True:
            _, message = await connection.next()
            rendered = render(message)
            if rendered is not None:
                return rendered[1]

    polls.add(connection)
    value = asyncio.ensure_future(first())
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({value, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not value.done():
            value.cancel()
        polls.discard(connection)
        router.disconnect(connection)
    if not value.done() or value.cancelled():
        return Response(status_code=204)  # the client left; nobody reads this
    closed = value.exception()
    if isinstance(closed, ConnectionClosed):
        problem = ServiceUnavailable(f"the long poll ended ({closed.reason}); poll again")
        return problem_response(problem.to_dict())
    return Response(orjson.dumps(value.result()), media_type="application/json")


async def _disconnected(request: Request) -> None:
    """Returns when the client closes the connection (a GET has no body to wait for)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
