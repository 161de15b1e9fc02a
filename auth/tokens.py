"""Signed, expiring bearer tokens (JWT, EdDSA over Ed25519).

The signing key is made on first run in ``<home>/keys/token-signing.key`` (mode 0600)
and reused after; a token names its client, role, session, issue and expiry times.
Whether a token is still good also depends on its session and its client's account:
``auth.service`` checks those.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vocabulary import clock

ISSUER = "wothub"


@dataclass(frozen=True)
class TokenClaims:
    client_id: str
    role: str
    session_id: str
    issued_at: float
    expires: float


_VERIFIED_MAX = 10_000  # signature-checked tokens remembered at once


class TokenError(Exception):
    """The token is malformed, expired or not signed by this hub."""


def write_private(path: Path, data: bytes) -> None:
    """Create ``path`` readable by the owner only, from the first byte on."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


class TokenSigner:
    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self._public = key.public_key()
        self._verified: dict[str, TokenClaims] = {}

    @classmethod
    def load_or_create(cls, home: Path) -> TokenSigner:
        path = Path(home) / "keys" / "token-signing.key"
        if not path.exists():
            key = Ed25519PrivateKey.generate()
            write_private(
                path,
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
            )
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(loaded, Ed25519PrivateKey):
            raise TokenError(f"{path} is not an Ed25519 private key")
        return cls(loaded)

    def issue(self, client_id: str, role: str, session_id: str, lifetime: float) -> str:
        now = clock.now()
        claims = {
            "iss": ISSUER,
            "sub": client_id,
            "role": role,
            "sid": session_id,
            "iat": int(now),
            "exp": int(now + lifetime),
            "jti": secrets.token_urlsafe(8),
        }
        return jwt.encode(claims, self._key, algorithm="EdDSA")

    def verify(self, token: Any, *, allow_expired: bool = False) -> TokenClaims:
        """The token's claims; TokenError says why not. ``allow_expired`` is for refresh.

        A token whose signature was checked is remembered (bounded), so a client that
        sends the same token with every request pays for the Ed25519 check once; the
        expiry is still checked every time, and the session and account by the caller."""
        if not isinstance(token, str) or not token:
            raise TokenError("no token")
        known = self._verified.get(token)
        if known is not None:
            if not allow_expired and known.expires <= clock.now():
                raise TokenError("the token has expired")
            return known
        claims = self._decode(token, allow_expired)
        if len(self._verified) >= _VERIFIED_MAX:
            self._verified.clear()  # simpler than LRU; refilled by the next requests
        self._verified[token] = claims
        return claims

    def _decode(self, token: str, allow_expired: bool) -> TokenClaims:
        try:
            claims = jwt.decode(
                token,
                self._public,
                algorithms=["EdDSA"],  # never "none", never a key the token picks
                issuer=ISSUER,
                options={
                    "require": ["exp", "iat", "sub", "sid"],
                    "verify_exp": not allow_expired,
                },
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("the token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise TokenError(f"invalid token: {exc}") from None
        return TokenClaims(
            claims["sub"], claims.get("role", ""), claims["sid"], claims["iat"], claims["exp"]
        )
