"""Interacting with twins over HTTP: the WoT HTTP Basic and SSE profiles.

Reads are answered from the twin. Writes and actions are queued for the device; the
answer waits a little (``sync_wait``, or ``Prefer: wait=N``) for the device, and
otherwise says where the request's status lives (201 for actions, 202 for writes, with
``Location``). Statuses keep the hub's detailed state in ``state`` while ``status``
uses the profile's four values.

Only a client that asks for it (``Prefer: respond-async`` or ``wait=N``, RFC 7240), or
an action its TD declares ``synchronous: false``, gets an ActionStatus for an action
that has not finished: a client that knows nothing of the async profile (node-wot)
would take it for the output. Without Prefer, the hub waits up to ``action_timeout``
for the output, also while the device is offline, and then answers 504.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vocabulary import operations as ops
from vocabulary.envelope import (
    ABSENT,
    COMPLETED,
    DELIVERED,
    PENDING,
    REQUEST,
    TERMINAL,
    Message,
    new_id,
)
from vocabulary.identity import Client
from vocabulary.problems import BadRequest, NotFound, ServiceUnavailable, problem_title

from . import longpoll, sse
from .context import HttpContext, json_body
from .paths import segment
from .problems import ProblemResponse, problem_response

JSON = "application/json"
MAX_WAIT = 60.0  # the longest Prefer: wait= the hub honours
# The profile's ActionStatus values, from the hub's request states.
PROFILE_STATUS = {
    PENDING: "pending",
    DELIVERED: "pending",
    "running": "running",
    COMPLETED: "completed",
    "failed": "failed",
    "expired": "failed",
    "cancelled": "failed",
}
_WAIT = re.compile(r"\bwait\s*=\s*(\d+)")
# The kind of request whose status lives under each member of a Thing's URL.
_MEMBER_OPERATION = {"actions": ops.INVOKE_ACTION, "properties": ops.WRITE_PROPERTY}
# The notifications a stream of each subscribing operation carries (else: events).
_NOTIFICATION_OF = {
    ops.OBSERVE_PROPERTY: ops.OBSERVE_PROPERTY,
    ops.OBSERVE_ALL_PROPERTIES: ops.OBSERVE_PROPERTY,
    ops.OBSERVE_STATE: ops.OBSERVE_STATE,
}


class ThingsApi:
    def __init__(self, context: HttpContext) -> None:
        self.context = context
        self.router = context.router
        self.forms = context.forms

    def routes(self) -> list[Route]:
        base = "/things/{thing}"
        return [
            Route(f"{base}/properties", self.all_properties, methods=["GET"]),
            Route(f"{base}/properties", self.write_properties, methods=["PUT"]),
            Route(f"{base}/properties/{{name}}", self.property, methods=["GET"]),
            Route(f"{base}/properties/{{name}}", self.write_property, methods=["PUT"]),
            Route(f"{base}/actions", self.query_all_actions, methods=["GET"]),
            Route(f"{base}/writes", self.query_all_writes, methods=["GET"]),
            Route(f"{base}/actions/{{name}}", self.invoke, methods=["POST"]),
            Route(f"{base}/state", self.state, methods=["GET"]),
            Route(f"{base}/properties/{{name}}/history", self.history, methods=["GET"]),
            Route(f"{base}/events/{{name}}/history", self.history, methods=["GET"]),
            Route(f"{base}/{{member}}/{{name}}/{{request}}", self.query, methods=["GET"]),
            Route(f"{base}/{{member}}/{{name}}/{{request}}", self.cancel, methods=["DELETE"]),
            Route(f"{base}/events", self.events, methods=["GET"]),
            Route(f"{base}/events/{{name}}", self.events, methods=["GET"]),
        ]

    # -- the state document -------------------------------------------------------------

    async def state(self, request: Request) -> Response:
        """The Thing's state document (docs/digitwin.md); as an SSE stream, the changes
        of each property's desired and declined writes (event name: the property)."""
        client = await self.context.client(request)
        thing = _thing(request)
        if _wants_stream(request):
            return await self._stream(request, client, ops.OBSERVE_STATE, thing, None)
        message = Message(REQUEST, ops.READ_STATE, thing)
        return _json(self.context.call(client, message).output)

    # -- history ------------------------------------------------------------------------

    async def history(self, request: Request) -> Response:
        """A page of a property's or event's history (docs/history.md): the query
        string is the query; ``Link: <...>; rel="next"`` when there may be more."""
        client = await self.context.client(request)
        thing, name = _thing(request), _name(request)
        member = request.url.path.split("/")[3]  # properties or events
        params = dict(request.query_params)
        if "kind" in params:  # the path says which
            raise BadRequest("kind is not a history parameter here", parameter="kind")
        params["kind"] = "property" if member == "properties" else "event"
        message = Message(REQUEST, ops.QUERY_HISTORY, thing, name, input=params)
        output = self.context.call(client, message).output
        headers = None
        if "cursor" in output:
            del params["kind"]
            params["cursor"] = output["cursor"]
            url = f"{self.forms.history_url(thing, member, name)}?{urlencode(params)}"
            headers = {"Link": f'<{url}>; rel="next"'}
        return _json(output, headers=headers)

    # -- properties ---------------------------------------------------------------------

    async def property(self, request: Request) -> Response:
        client = await self.context.client(request)
        thing, name = _thing(request), _name(request)
        if _wants_stream(request):
            return await self._stream(request, client, ops.OBSERVE_PROPERTY, thing, name)
        if request.query_params.get("detail") == "true":
            state = self.router.property_state(client, thing, name)
            return _json(state)
        body, timestamp = self.read_value(client, thing, name)
        headers = {"Last-Modified-Time": timestamp} if timestamp else None
        return Response(body, 200, headers, media_type=JSON)

    def read_value(self, client: Client, thing: str, name: str) -> tuple[bytes, str]:
        """A property's current value as JSON, and when it was reported (also for
        ``PropertyReads``, which answers plain reads before Starlette). No correlation
        id: the HTTP exchange pairs the answer with the request."""
        message = Message(REQUEST, ops.READ_PROPERTY, thing, name)
        response = self.context.call(client, message)
        if response.output is ABSENT:
            raise ServiceUnavailable(
                f"the device has not reported {name!r} of {thing} yet", thingID=thing
            )
        return orjson.dumps(response.output), response.timestamp

    async def all_properties(self, request: Request) -> Response:
        client = await self.context.client(request)
        thing = _thing(request)
        if _wants_stream(request):
            return await self._stream(request, client, ops.OBSERVE_ALL_PROPERTIES, thing, None)
        response = self.context.call(client, _request(ops.READ_ALL_PROPERTIES, thing))
        return _json(response.output)

    async def write_property(self, request: Request) -> Response:
        client = await self.context.client(request)
        thing, name = _thing(request), _name(request)
        value = await json_body(request)
        wait = self._write_wait(request)
        status = await self._queue(client, ops.WRITE_PROPERTY, thing, name, value, wait)
        if status["state"] == COMPLETED:
            return Response(status_code=204)
        return self._accepted(202, status)

    async def write_properties(self, request: Request) -> Response:
        client = await self.context.client(request)
        thing = _thing(request)
        values = await json_body(request)
        if not isinstance(values, dict) or not values:
            raise BadRequest("writemultipleproperties takes an object of property values")
        self.router.check_writes(client, thing, values)  # all or nothing is queued
        wait = self._write_wait(request)
        statuses = await asyncio.gather(
            *(
                self._queue(client, ops.WRITE_PROPERTY, thing, name, value, wait)
                for name, value in values.items()
            )
        )
        if all(status["state"] == COMPLETED for status in statuses):
            return Response(status_code=204)
        return _json([self._profile_status(s) for s in statuses], status_code=202)

    # -- actions -------------------------------------------------------------------------

    async def invoke(self, request: Request) -> Response:
        client = await self.context.client(request)
        thing, name = _thing(request), _name(request)
        data = await json_body(request, required=False)
        wait, takes_status = self._action_wait(request, thing, name)
        status = await self._queue(
            client, ops.INVOKE_ACTION, thing, name, data, wait, while_offline=not takes_status
        )
        if status["state"] == COMPLETED:
            output = status.get("output", ABSENT)
            return Response(status_code=204) if output is ABSENT else _json(output)
        if takes_status:
            return self._accepted(201, status)
        return self._unfinished(status, wait)

    async def query(self, request: Request) -> Response:
        client = await self.context.client(request)
        return _json(self._profile_status(self._status(request, client)))

    async def cancel(self, request: Request) -> Response:
        client = await self.context.client(request)
        self._status(request, client)  # it must be the request this URL names
        self.context.call(client, self._status_request(request, ops.CANCEL_ACTION))
        return Response(status_code=204)

    def _status(self, request: Request, client: Client) -> dict[str, Any]:
        """The status of the request at this URL: an action under /actions, a write
        under /properties, of the affordance the URL names."""
        status = self.context.call(client, self._status_request(request, ops.QUERY_ACTION)).output
        member = request.path_params["member"]
        if status["operation"] != _MEMBER_OPERATION[member]:
            raise NotFound(
                f"no {member[:-1]} request {status['id']} here", thingID=status["thingID"]
            )
        return status

    async def query_all_actions(self, request: Request) -> Response:
        client = await self.context.client(request)
        response = self.context.call(client, _request(ops.QUERY_ALL_ACTIONS, _thing(request)))
        return self._statuses_by_name(response.output)

    async def query_all_writes(self, request: Request) -> Response:
        """The Thing's property writes, as queryallactions lists its actions."""
        client = await self.context.client(request)
        self.router.admit(client)
        writes = self.router.requests_by_name(client, _thing(request), ops.WRITE_PROPERTY)
        return self._statuses_by_name(writes)

    def _statuses_by_name(self, grouped: dict[str, list[dict[str, Any]]]) -> Response:
        """{name: [ActionStatus in the profile's terms, newest first, as stored]}."""
        profile = self._profile_status
        return _json({name: [profile(s) for s in statuses] for name, statuses in grouped.items()})

    # -- events --------------------------------------------------------------------------

    async def events(self, request: Request) -> Response:
        client = await self.context.client(request)
        name = request.path_params.get("name")
        operation = ops.SUBSCRIBE_EVENT if name else ops.SUBSCRIBE_ALL_EVENTS
        return await self._stream(
            request, client, operation, _thing(request), segment(name) if name else None
        )

    # -- internals -----------------------------------------------------------------------

    async def _stream(
        self, request: Request, client: Client, operation: str, thing: str, name: str | None
    ) -> Response:
        """Observe or subscribe, as an SSE stream or one long poll: the router refuses
        what the client may not see."""
        connection = self.context.connection(client, "sse")
        response = self.router.handle(connection, _request(operation, thing, name))
        if response is not None and response.error is not None:
            self.router.disconnect(connection)
            raise ProblemResponse(response.error)
        poll = longpoll.wanted(request)
        if request.method == "HEAD":
            self.router.disconnect(connection)
            return Response(media_type=JSON if poll else "text/event-stream")
        notification = _NOTIFICATION_OF.get(operation, ops.SUBSCRIBE_EVENT)

        def render(message: Message) -> tuple[str, Any] | None:
            if message.operation != notification or message.thing_id != thing:
                return None
            return message.name or "", None if message.value is ABSENT else message.value

        if poll:

            def render_named(message: Message) -> tuple[str, Any] | None:
                # A Thing-wide poll answers {name: value}: no event name says which it is.
                rendered = render(message)
                return None if rendered is None else (rendered[0], {rendered[0]: rendered[1]})

            return await longpoll.next_value(
                request,
                self.router,
                connection,
                render if name else render_named,
                self.context.streams,
            )
        await self.router.notifications_ready()  # a cluster node: the others' too
        return sse.stream(
            self.router,
            connection,
            render,
            request.headers.get("last-event-id"),
            self.context.streams,
        )

    async def _queue(
        self,
        client: Client,
        operation: str,
        thing: str,
        name: str,
        data: Any,
        wait: float,
        *,
        while_offline: bool = False,
    ) -> dict[str, Any]:
        """Queue a write or an action; wait up to ``wait`` for the device (while it is
        offline too, if ``while_offline``); the status now."""
        message = Message(REQUEST, operation, thing, name, input=data, correlation_id=new_id())
        response = self.context.call(client, message)
        if response.action_id is None:  # one of the hub's own Things answered at once
            return {"state": COMPLETED, "output": response.output}
        if response.status == PENDING and not while_offline:
            wait = 0.0  # the device is offline: nothing will answer soon
        status: dict[str, Any] | None = None
        if wait > 0:
            future = self.router.wait_for(response.action_id)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await asyncio.shield(future)
            if future.done():
                # The ended status itself: ended on another node (cluster mode), it may
                # reach this node's copy of the store a little later than the news.
                status = future.result()
            else:
                self.router.stop_waiting(response.action_id, future)
        if status is None:
            status = self.router.request_status(response.action_id)
        if status["status"] in TERMINAL:
            if status["status"] != COMPLETED:
                raise ProblemResponse(_failure(status))
            return {**status, "state": COMPLETED}
        return {**status, "state": status["status"]}

    def _write_wait(self, request: Request) -> float:
        wait = _preferred_wait(request)
        return self.context.sync_wait if wait is None else wait

    def _action_wait(self, request: Request, thing: str, name: str) -> tuple[float, bool]:
        """How long to wait for the device, and whether the client takes an ActionStatus
        (201) when the action has not finished by then, rather than an error (504)."""
        wait = _preferred_wait(request)
        if wait is not None:
            return wait, True
        td = self.router.twin_td(thing) or {}
        if (td.get("actions") or {}).get(name, {}).get("synchronous") is False:
            return 0.0, True  # the TD tells every client to expect the status
        return self.context.action_timeout, False

    def _unfinished(self, status: dict[str, Any], wait: float) -> Response:
        """504 for a client that expected the output: the action goes on regardless."""
        body = self._profile_status(status)
        if body["state"] == PENDING:
            what = "is offline: the action waits in the hub's queue until it connects"
        else:
            what = f"has not finished the action within {wait:g} s: it goes on"
        problem = {
            "type": "about:blank",
            "title": problem_title(504),
            "status": 504,
            "detail": f"the device {what}; its status is at Location (send Prefer: "
            "respond-async to be answered 201 with the status instead)",
            "actionStatus": body,
        }
        return problem_response(problem, {"Location": body["href"]})

    def _accepted(self, status_code: int, status: dict[str, Any]) -> Response:
        body = self._profile_status(status)
        return _json(body, status_code=status_code, headers={"Location": body["href"]})

    def _profile_status(self, status: dict[str, Any]) -> dict[str, Any]:
        state = status.get("state", status["status"])
        member = "actions" if status["operation"] == ops.INVOKE_ACTION else "properties"
        out = {**status, "state": state, "status": PROFILE_STATUS.get(state, state)}
        out["href"] = self.forms.request_url(
            status["thingID"], member, status["name"], status["id"]
        )
        return out

    def _status_request(self, request: Request, operation: str) -> Message:
        member = request.path_params["member"]
        if member not in _MEMBER_OPERATION:
            raise NotFound(f"no such resource: {request.url.path}")
        thing, name = _thing(request), _name(request)
        message = _request(operation, thing, name)
        message.action_id = segment(request.path_params["request"])
        return message


def _request(operation: str, thing: str, name: str | None = None) -> Message:
    return Message(REQUEST, operation, thing, name, correlation_id=new_id())


# Statuses an agent's error may not pass on to the consumer as they are: they speak of the
# consumer's own credentials or request rate, and a client would log in again or back off
# and repeat the action. They become 502 (the device failed), the agent's in agentStatus.
_NOT_FROM_AGENTS = frozenset({401, 403, 407, 429})


def _failure(status: dict[str, Any]) -> dict[str, Any]:
    error = {k: v for k, v in (status.get("error") or {}).items() if k != "retryAfter"}
    problem = {
        "type": "about:blank",
        "title": "Failed",
        "status": 500,
        "detail": f"{status['operation']} {status['name']} {status['status']}",
        **error,
    }
    code = problem["status"]
    if not isinstance(code, int) or not 400 <= code <= 599:
        problem["status"] = 500
    elif code in _NOT_FROM_AGENTS:
        problem["agentStatus"], problem["status"] = code, 502
        problem["title"] = problem_title(502)
    problem["actionStatus"] = {k: v for k, v in status.items() if k != "error"}
    return problem


def _preferred_wait(request: Request) -> float | None:
    """The wait a client that takes an ActionStatus asked for (RFC 7240 ``Prefer:
    wait=N``, or ``respond-async``: 0 unless a wait is given); None without either."""
    prefer = request.headers.get("prefer", "")
    if match := _WAIT.search(prefer):
        return min(float(match.group(1)), MAX_WAIT)
    return 0.0 if "respond-async" in prefer else None


def _wants_stream(request: Request) -> bool:
    """An SSE stream or a long poll rather than the current value."""
    return longpoll.wanted(request) or "text/event-stream" in request.headers.get("accept", "")


def _thing(request: Request) -> str:
    return segment(request.path_params["thing"])


def _name(request: Request) -> str:
    return segment(request.path_params["name"])


def _json(data: Any, *, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code, headers, media_type=JSON)
