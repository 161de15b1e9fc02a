"""What a client presented, raw, and which of it decides who the client is.

Every binding fills a ``Credentials`` from its wire (an ``Authorization`` header, MQTT
CONNECT's username and password, NATS's ``connect_opts``, the TLS client certificate)
and calls ``AuthService.authenticate``; the one precedence below applies everywhere
(docs/auth.md):

1. a token: sent as one (HTTP Bearer, NATS ``auth_token``), or a hub token in the
   password field (MQTT and NATS clients have no other place for it);
2. a password, with the client id it belongs to;
3. the TLS client certificate.

The first one present decides alone: when it is wrong the login is refused, never
rescued by the next one (a bad token beside a good certificate is refused). A client id
named beside a token or a certificate must be that credential's client.
"""

from __future__ import annotations

from dataclasses import dataclass

TOKEN, PASSWORD, CERTIFICATE = "token", "password", "certificate"


@dataclass(frozen=True)
class Credentials:
    certificate: bytes | None = None  # the TLS client certificate (PEM)
    token: str | None = None
    client_id: str | None = None  # the user named: Basic, MQTT username, NATS user
    password: str | None = None

    @property
    def method(self) -> str | None:
        """The credential that decides: TOKEN, PASSWORD, CERTIFICATE, or None (nothing
        was presented)."""
        if self.token or looks_like_token(self.password):
            return TOKEN
        if self.password:
            return PASSWORD
        if self.certificate:
            return CERTIFICATE
        return None

    @property
    def bearer(self) -> str | None:
        """The token to check when ``method`` is TOKEN."""
        return self.token or self.password


def looks_like_token(text: object) -> bool:
    """A hub token (a JWT: its header ``{"`` encodes as ``eyJ``, three dotted parts).
    A password can hardly look like that, and one that did is refused when it is set."""
    return isinstance(text, str) and text.startswith("eyJ") and text.count(".") == 2
