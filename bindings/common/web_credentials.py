"""Who is asking: a bearer token, HTTP Basic, or a client certificate.

The certificate comes from the ASGI TLS extension (``scope["extensions"]["tls"]``),
which the hub's server fills in (asgi_server). Every failure is the same 401, whatever
the reason (auth logs the reason).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from starlette.requests import HTTPConnection

from auth.errors import AuthenticationFailed
from auth.service import AuthService
from vocabulary.identity import Client
from vocabulary.problems import Unauthorized


class Credentials:
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
        header = request.headers.get("authorization")
        if header:
            scheme, _, value = header.partition(" ")
            scheme = scheme.lower()
            if scheme == "bearer" and value.strip():
                return self.auth.authenticate_token(value.strip())
            if scheme == "basic":
                client_id, password = basic_credentials(value.strip())
                return await self.auth.authenticate_password(
                    client_id, password, source_address(request)
                )
            raise AuthenticationFailed("unsupported Authorization scheme")
        certificate = peer_certificate(request)
        if certificate is not None:
            return self.auth.authenticate_certificate(certificate, self.verify_certificate)
        return None


def source_address(request: HTTPConnection) -> str | None:
    """The client's address, as the login throttle counts it."""
    return request.client.host if request.client is not None else None


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
