"""The join over HTTPS: how a new node gets the cluster's secrets (docs/cluster.md,
"Joining a node"). Served on the hub's HTTPS port:

- ``POST /admin/join-token`` (administrators only), body ``{"ttl": seconds}`` or none:
  a one-time join token (auth/join_tokens.py), the CA fingerprint a joining node
  checks, and this node's URL.
- ``GET /cluster/ca``: the CA certificate (PEM), without authentication. It is public;
  a joining node compares its fingerprint with the one it was given before it sends
  the token, then verifies this server against it.
- ``POST /cluster/join`` with ``Authorization: Bearer <join token>``: the secrets
  bundle (hub/cluster_secrets.py) as ``{"secrets": {...}}``. An unknown token is 401,
  a used or expired one 403. Each refused token counts as a failed login of the
  address in auth's login throttle, so an address that guesses waits (429) as a
  password guesser does.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from auth.join_tokens import (
    DEFAULT_TTL,
    MAX_TTL,
    MIN_TTL,
    JoinTokens,
    SpentJoinToken,
    UnknownJoinToken,
)
from auth.throttle import LoginThrottle
from bindings.common.web_credentials import source_address
from bindings.http.context import json_body
from certs import CertificateAuthority
from vocabulary import clock
from vocabulary.envelope import ABSENT
from vocabulary.identity import Client
from vocabulary.problems import BadRequest, ServiceUnavailable

from .cluster_secrets import ClusterSecretsError, ca_fingerprint, export_secrets

log = logging.getLogger("wothub.cluster")

JOIN_TOKEN_PATH = "/admin/join-token"
CA_PATH = "/cluster/ca"
JOIN_PATH = "/cluster/join"
PEM_TYPE = "application/x-pem-file"
# The throttle counts failures per address and per client id; a join token has no
# client id, so its failures go under a name no client id can have (no spaces).
_THROTTLE_NAME = "(join token)"


class ClusterJoin:
    def __init__(
        self,
        tokens: JoinTokens,
        home: Path,
        ca: CertificateAuthority,
        throttle: LoginThrottle,
        require_admin: Callable[[Request], Awaitable[Client]],
        base_url: Callable[[], str],
    ) -> None:
        self.tokens = tokens
        self.home = home
        self.ca = ca
        self.throttle = throttle
        self.require_admin = require_admin
        self.base_url = base_url

    def routes(self) -> list[Route]:
        return [
            Route(JOIN_TOKEN_PATH, self.create_token, methods=["POST"]),
            Route(CA_PATH, self.ca_certificate, methods=["GET"]),
            Route(JOIN_PATH, self.join, methods=["POST"]),
        ]

    async def create_token(self, request: Request) -> Response:
        admin = await self.require_admin(request)
        body = await json_body(request, required=False)
        ttl = DEFAULT_TTL if body is ABSENT else _ttl(body)
        token, record = self.tokens.create(admin.id, ttl)
        log.info("%s created a join token, valid until %s", admin.id, clock.rfc3339(record.expires))
        return _json(
            {
                "token": token,
                "expires": clock.rfc3339(record.expires),
                "caFingerprint": ca_fingerprint(self.ca.ca_cert_pem),
                "url": self.base_url(),
            },
            201,
        )

    async def ca_certificate(self, request: Request) -> Response:
        return Response(self.ca.ca_cert_pem, media_type=PEM_TYPE)

    async def join(self, request: Request) -> Response:
        source = source_address(request)
        self.throttle.check_source(source)  # 429 while this address must wait
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise UnknownJoinToken("send the join token as Authorization: Bearer <token>")
        try:  # read before the token is spent: a failure here keeps it usable
            bundle = export_secrets(self.home)
        except ClusterSecretsError as exc:  # the reason names files: for the log only
            log.error("cannot answer a join: %s", exc)
            raise ServiceUnavailable(
                "this node cannot give the cluster's secrets (its log says why); join "
                "through another node"
            ) from None
        try:
            record = self.tokens.redeem(token.strip(), used_by=source or "")
        except (UnknownJoinToken, SpentJoinToken) as exc:
            self.throttle.failed(source, _THROTTLE_NAME)
            log.warning("refused a join from %s: %s", source, exc.detail)
            raise
        log.info(
            "gave the cluster's secrets to a joining node at %s (join token of %s)",
            source,
            record.created_by,
        )
        return _json({"secrets": bundle}, headers={"Cache-Control": "no-store"})


def _ttl(body: Any) -> float:
    ttl = body.get("ttl", DEFAULT_TTL) if isinstance(body, dict) else None
    if (
        isinstance(ttl, int | float)
        and not isinstance(ttl, bool)
        and math.isfinite(ttl)
        and MIN_TTL <= ttl <= MAX_TTL
    ):
        return float(ttl)
    raise BadRequest(
        f'send {{"ttl": seconds}} with {MIN_TTL:.0f} to {MAX_TTL:.0f} seconds '
        f"(default {DEFAULT_TTL:.0f}), or no body",
        validationErrors=[{"field": "ttl", "description": "seconds, a number"}],
    )


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status, headers, media_type="application/json")
