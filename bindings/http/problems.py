"""RFC 9457 problem details: every HTTP error the hub sends is one of these."""

from __future__ import annotations

import logging
import math
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match

from bucketstore import StoreUnavailableError
from core.store_unavailable import store_unavailable
from vocabulary.problems import Problem, problem_title

log = logging.getLogger("wothub.http")

PROBLEM_JSON = "application/problem+json"
# The scheme a 401 names, so clients know what to send.
WWW_AUTHENTICATE = 'Bearer realm="wothub", Basic realm="wothub", charset="UTF-8"'


class PayloadTooLarge(Problem):
    status, title = 413, "Content Too Large"


class UnsupportedMediaType(Problem):
    status, title = 415, "Unsupported Media Type"


def problem_response(problem: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    status = problem.get("status")
    if not isinstance(status, int):
        status = 500
    if status == 401:
        headers = {"WWW-Authenticate": WWW_AUTHENTICATE, **(headers or {})}
    return Response(orjson.dumps(problem), status, headers, media_type=PROBLEM_JSON)


async def on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_answer(exc)


def problem_answer(exc: Problem) -> Response:
    """The response to a refusal raised while handling a request."""
    problem = exc.to_dict()
    retry = problem.get("retryAfter")
    headers = {}
    if isinstance(retry, int | float):
        # At least 1: a client still blocked must not be told to retry at once.
        headers["Retry-After"] = str(max(1, math.ceil(retry)))
    if problem.get("status") == 405 and isinstance(problem.get("allow"), list):
        # The core names the operations the affordance allows; HTTP names methods.
        methods = {_OPERATION_METHODS[op] for op in problem["allow"] if op in _OPERATION_METHODS}
        headers["Allow"] = ", ".join(sorted(methods))
    return problem_response(problem, headers or None)


_OPERATION_METHODS = {"readproperty": "GET", "writeproperty": "PUT", "invokeaction": "POST"}


async def on_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such route, method not allowed) as problems."""
    assert isinstance(exc, HTTPException)
    problem = {
        "type": "about:blank",
        "title": problem_title(exc.status_code),
        "status": exc.status_code,
    }
    headers = dict(exc.headers or {})
    if exc.status_code == 405:  # Starlette names the first route's methods only
        headers["Allow"] = ", ".join(sorted(_methods_of_path(request)))
    if exc.detail and exc.detail != problem["title"]:
        problem["detail"] = exc.detail
    return problem_response(problem, headers)


def _methods_of_path(request: Request) -> set[str]:
    methods: set[str] = set()
    for route in request.app.routes:
        match, _ = route.matches({**request.scope, "method": "\x00"})
        if match == Match.PARTIAL:  # the path matched, the (impossible) method did not
            methods |= getattr(route, "methods", None) or set()
    return methods


async def on_store_unavailable(request: Request, exc: Exception) -> Response:
    """The store did not answer, outside the router (a login, a page, a join token): a
    503 with Retry-After. A handler of its own, not ``on_error``'s: Starlette logs what
    reaches that one as an application error and raises it again."""
    assert isinstance(exc, StoreUnavailableError)
    return problem_answer(store_unavailable(exc))


async def on_error(request: Request, exc: Exception) -> Response:
    """Anything else: a 500, logged (and the store not answering: ``on_store_unavailable``,
    for the paths that call this one directly, as PropertyReads does)."""
    if isinstance(exc, StoreUnavailableError):
        return await on_store_unavailable(request, exc)
    log.exception("%s %s failed", request.method, request.url.path)
    return problem_response(
        {
            "type": "about:blank",
            "title": "Internal Server Error",
            "status": 500,
            "detail": "the hub failed to handle this request; the hub's log says why",
        }
    )


class ProblemResponse(Problem):
    """An error response from the router (a problem as a dict), raised to be sent."""

    def __init__(self, problem: dict[str, Any]) -> None:
        super().__init__(str(problem.get("detail", "")))
        self.problem = problem
        self.status = problem.get("status", 500)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.problem)
