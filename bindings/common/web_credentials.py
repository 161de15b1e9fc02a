"""Who is asking over HTTP and WebSocket: what the client presented, handed to auth.

The ``Authorization`` header (Bearer or Basic) and the client certificate from the ASGI
TLS extension (``scope["extensions"]["tls"]``, which the hub's server fills in,
asgi_server) go to ``AuthService.authenticate`` as they are; which one decides is auth's
one policy (docs/auth.md). Every failure is the same 401, whatever the reason (auth
logs the reason).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from starlette.requests import HTTPConnection

from auth.credentials import Credentials
from auth.errors import AuthenticationFailed
from auth.service import AuthService
from vocabulary.identity import Client
from vocabulary.problems import Unauthorized


class WebCredentials:
    def __init__(self, auth: AuthService, verify_certificate: Callable[[Any], str]) -> None:
        self.auth = auth
        self.verify_certificate = verify_certificate

    async def client(self, request: HTTPConnection) -> Client:
        """The authenticated client, or Unauthorized (401)."""
        found = await self.optional_client(request)
        if found is None:
            raise Unauthorized(
                "authentication required: a bearer token, HTTP Basic or a client certificate"
            )
        return found

    async def optional_client(self, request: HTTPConnection) -> Client | None:
        """The client, or None when the request carries no credentials at all."""
        header = _authorization(request.scope["headers"])
        certificate = peer_certificate(request)
        if not header and certificate is None:
            return None
        credentials = authorization_credentials(header) if header else Credentials()
        if certificate is not None:  # replace() costs as much as a remembered token check
            credentials = replace(credentials, certificate=certificate)
        return await self.login(credentials, request)

    async def login(self, credentials: Credentials, request: HTTPConnection) -> Client:
        return await self.auth.authenticate(
            credentials, source_address(request), self.verify_certificate
        )


def authorization_credentials(value: str) -> Credentials:
    """The credentials in an ``Authorization`` value: ``Bearer <token>`` or ``Basic``."""
    scheme, _, value = value.partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if scheme == "bearer":
        if not value:
            raise AuthenticationFailed("an empty bearer token")
        return Credentials(token=value)
    if scheme == "basic":
        client_id, password = basic_credentials(value)
        return Credentials(client_id=client_id, password=password)
    raise AuthenticationFailed("unsupported Authorization scheme")


def source_address(request: HTTPConnection) -> str | None:
    """The client's address, as the login throttle counts it."""
    client = request.scope.get("client")  # not request.client: no Address object per call
    return client[0] if client else None


def _authorization(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The ``Authorization`` value from the raw ASGI headers (as Starlette's ``Headers``
    reads them, without building one per request)."""
    for name, value in headers:
        if name == b"authorization":
            return value.decode("latin-1")
    return None


def peer_certificate(request: HTTPConnection) -> bytes | None:
    """The client's certificate (PEM) when it presented one over TLS."""
    tls = request.scope.get("extensions", {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    return chain[0].encode() if chain else None


def basic_credentials(value: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise AuthenticationFailed("malformed Basic credentials") from None
    client_id, sep, password = decoded.partition(":")
    if not sep:
        raise AuthenticationFailed("malformed Basic credentials")
    return client_id, password
