"""NATS auth callout answered by the hub: the same credentials as on every binding.

nats-server sends every login (except its configured ``auth_users``) as an
``authorization_request`` JWT on ``$SYS.REQ.USER.AUTH``, encrypted to the hub's curve key
(``xkv1``, the server's key in the ``Nats-Server-Xkey`` header). The hub checks, first
that applies:

1. a client certificate (``client_tls.verified_chains`` / ``certs``, present on the
   mutual-TLS WebSocket listener) with the CA's ``verify_client_certificate``;
2. ``auth_token``, or a ``pass`` that is a hub token (``user`` then must be its client);
3. ``user`` + ``pass``: the client id and its password.

It answers with an ``authorization_response`` signed by the issuer account key, holding a
user JWT that puts the client in the application account with subject permissions derived
from its role (``auth.roles.PERMISSIONS``) and its id, or with an ``error``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from auth.errors import AuthenticationFailed
from auth.roles import AGENT, PERMISSIONS, SERVICE
from vocabulary import operations as ops
from vocabulary.identity import Client
from vocabulary.problems import Problem

from . import subjects
from .jwt import CurveKey, SigningKey, decode, encode

log = logging.getLogger("wothub.nats")

AUTH_SUBJECT = "$SYS.REQ.USER.AUTH"
XKEY_HEADER = "Nats-Server-Xkey"

# The requests a consumer may publish, one subject each: wot.client.{c}.req.{operation}.
CONSUMER_REQUESTS = frozenset(
    {
        ops.READ_PROPERTY,
        ops.READ_ALL_PROPERTIES,
        ops.READ_MULTIPLE_PROPERTIES,
        ops.WRITE_PROPERTY,
        ops.INVOKE_ACTION,
        ops.QUERY_ACTION,
        ops.QUERY_ALL_ACTIONS,
        ops.CANCEL_ACTION,
        ops.READ_THING,
        ops.UPDATE_THING,
        ops.DELETE_THING,
        ops.OBSERVE_PROPERTY,
        ops.UNOBSERVE_PROPERTY,
        ops.OBSERVE_ALL_PROPERTIES,
        ops.UNOBSERVE_ALL_PROPERTIES,
        ops.SUBSCRIBE_EVENT,
        ops.UNSUBSCRIBE_EVENT,
        ops.SUBSCRIBE_ALL_EVENTS,
        ops.UNSUBSCRIBE_ALL_EVENTS,
    }
)


def permissions(client_id: str, role: str) -> dict[str, dict[str, list[str]]]:
    """``{"pub": {"allow": [...]}, "sub": {"allow": [...]}}`` for a client.

    Agents publish only under their own ``wot.agent.{id}.>`` and subscribe to their
    request subject; consumers publish one request subject per operation their role
    allows (a viewer has no ``invokeaction`` or ``writeproperty`` subject) and subscribe
    to ``wot.twin.>`` and their own responses; both get their own reply inboxes.
    """
    c = subjects.encode(client_id)
    pub: list[str] = []
    sub: list[str] = [f"{subjects.inbox_prefix(client_id)}.>"]
    allowed = PERMISSIONS.get(role, frozenset())
    if role in (AGENT, SERVICE):
        pub.append(f"{subjects.PREFIX}.agent.{c}.>")
        sub.append(subjects.agent(client_id, subjects.REQ))
    if role != AGENT:
        pub.extend(
            subjects.client_request(client_id, op) for op in sorted(CONSUMER_REQUESTS & allowed)
        )
        sub.append(subjects.client_responses(client_id))
        if ops.OBSERVE_PROPERTY in allowed or ops.SUBSCRIBE_EVENT in allowed:
            sub.append(f"{subjects.PREFIX}.twin.>")
    return {"pub": {"allow": pub}, "sub": {"allow": sub}}


@dataclass(frozen=True)
class Login:
    """An authorized NATS connection, as the callout saw it."""

    client: Client
    server_id: str
    connection_id: int
    method: str  # certificate, token or password


class AuthCallout:
    """Decides logins; ``respond`` turns one request message into the reply bytes."""

    def __init__(
        self,
        auth: Any,
        verify_certificate: Any,
        issuer: SigningKey,
        xkey: CurveKey | None,
        *,
        account: str = "APP",
    ) -> None:
        self.auth = auth
        self.verify_certificate = verify_certificate
        self.issuer = issuer
        self.xkey = xkey
        self.account = account
        self.on_login: Any = None  # called with each Login

    async def respond(self, data: bytes, headers: dict[str, str] | None) -> bytes | None:
        """The reply to one request (None when it cannot even be read: no reply)."""
        server_xkey = (headers or {}).get(XKEY_HEADER)
        try:
            if self.xkey is not None:
                if not server_xkey:
                    raise ValueError("the request is not encrypted; the hub expects xkey")
                data = self.xkey.open(data, server_xkey)
            request = decode(data)
            nats = request["nats"]
            user_nkey = nats["user_nkey"]
            server_id = nats["server_id"]["id"]
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring a bad auth callout request: %s", exc)
            return None
        info = nats.get("client_info") or {}
        try:
            client, method = await self._authenticate(nats)
        except (Problem, AuthenticationFailed, ValueError) as exc:
            log.info(
                "NATS login refused from %s (user %r): %s",
                info.get("host"),
                (nats.get("connect_opts") or {}).get("user"),
                exc,
            )
            claims = self._response(user_nkey, server_id, error="not authorized")
        else:
            user = encode(
                {
                    "sub": user_nkey,
                    "aud": self.account,
                    "name": client.id,
                    "nats": {"type": "user", "version": 2, **permissions(client.id, client.role)},
                },
                self.issuer,
            )
            claims = self._response(user_nkey, server_id, jwt=user)
            log.debug("NATS login of %s (%s) by %s", client.id, client.role, method)
            if self.on_login is not None:
                self.on_login(Login(client, server_id, int(info.get("id", 0)), method))
        out = encode(claims, self.issuer).encode()
        if self.xkey is not None and server_xkey:
            out = self.xkey.seal(out, server_xkey)
        return out

    def _response(self, user_nkey: str, server_id: str, **result: str) -> dict[str, Any]:
        return {
            "sub": user_nkey,
            "aud": server_id,
            "nats": {"type": "authorization_response", "version": 2, **result},
        }

    async def _authenticate(self, nats: dict[str, Any]) -> tuple[Client, str]:
        tls = nats.get("client_tls") or {}
        chains = tls.get("verified_chains") or []
        certificate = (chains[0][0] if chains and chains[0] else None) or next(
            iter(tls.get("certs") or []), None
        )
        if certificate:
            client = self.auth.authenticate_certificate(
                certificate.encode(), self.verify_certificate
            )
            return client, "certificate"
        opts = nats.get("connect_opts") or {}
        user, password, token = opts.get("user"), opts.get("pass"), opts.get("auth_token")
        if not token and isinstance(password, str) and password.count(".") == 2:
            try:  # a hub token (a JWT) in the password field
                client = self.auth.authenticate_token(password)
            except (Problem, AuthenticationFailed):
                pass  # then it is a password
            else:
                if not user or user == client.id:
                    return client, "token"
        if token:
            client = self.auth.authenticate_token(token)
            if user and user != client.id:
                raise ValueError(f"the token is {client.id}'s, not {user}'s")
            return client, "token"
        if user and password:
            source = (nats.get("client_info") or {}).get("host")  # for the throttle
            return await self.auth.authenticate_password(user, password, source), "password"
        raise ValueError("no credentials")
