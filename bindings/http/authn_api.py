"""Logging in over HTTP: a password for a token, refresh, logout (beside the
``urn:wothub:authn`` Thing, which offers refresh and logout on every binding)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from auth.service import AuthService
from bindings.common.web_credentials import source_address
from vocabulary.problems import BadRequest

from .context import json_body


class AuthnApi:
    def __init__(self, auth: AuthService) -> None:
        self.auth = auth

    def routes(self) -> list[Route]:
        return [
            Route("/authn/login", self.login, methods=["POST"]),
            Route("/authn/refresh", self.refresh, methods=["POST"]),
            Route("/authn/logout", self.logout, methods=["POST"]),
        ]

    async def login(self, request: Request) -> Response:
        body = _object(await json_body(request), "clientID", "password")
        return _json(
            await self.auth.login(body["clientID"], body["password"], source_address(request))
        )

    async def refresh(self, request: Request) -> Response:
        return _json(self.auth.refresh(await _token(request)))

    async def logout(self, request: Request) -> Response:
        self.auth.logout(await _token(request))
        return Response(status_code=204)


async def _token(request: Request) -> str:
    """The token from the body ({"token": ...}) or the Authorization header."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return _object(await json_body(request), "token")["token"]


def _object(body: Any, *fields: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest(f"send a JSON object with {', '.join(fields)}")
    missing = [f for f in fields if not isinstance(body.get(f), str) or not body[f]]
    if missing:
        raise BadRequest(
            f"missing or not a string: {', '.join(missing)}",
            validationErrors=[{"field": f, "description": "a non-empty string"} for f in missing],
        )
    return body


def _json(data: Any) -> Response:
    return Response(orjson.dumps(data), media_type="application/json")
