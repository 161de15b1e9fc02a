"""NATS auth callout answered by the hub: the same credentials as on every binding.

nats-server sends every login (except its configured ``auth_users``) as an
``authorization_request`` JWT on ``$SYS.REQ.USER.AUTH``, encrypted to the hub's curve key
(``xkv1``, the server's key in the ``Nats-Server-Xkey`` header). The hub hands what
the client presented (``auth_token``; ``user`` and ``pass``, which may hold a hub token;
the client certificate from ``client_tls``, present on the mutual-TLS WebSocket
listener) to auth, whose one policy decides (docs/auth.md).

It answers with an ``authorization_response`` signed by the issuer account key, holding a
user JWT that puts the client in the application account with subject permissions derived
from its role (``auth.roles.PERMISSIONS``) and its id, or with an ``error``.

MQTT clients (nats-server's MQTT listener) log in through the same callout; their MQTT
client id must be theirs (``mqtt_id_belongs``), since nats-server keys MQTT sessions by
that id across the whole account: another client's id would take its session over.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from auth.credentials import CERTIFICATE, Credentials
from auth.errors import AuthenticationFailed
from auth.roles import AGENT, PERMISSIONS, SERVICE
from vocabulary import operations as ops
from vocabulary.identity import Client
from vocabulary.problems import Problem

from . import subjects
from .jwt import CurveKey, SigningKey, decode, encode
from .partitions import mapped

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
        ops.QUERY_HISTORY,
        ops.READ_STATE,
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
        ops.OBSERVE_STATE,
        ops.UNOBSERVE_STATE,
    }
)


def permissions(
    client_id: str, role: str, partitions: int | None = None
) -> dict[str, dict[str, list[str]]]:
    """``{"pub": {"allow": [...]}, "sub": {"allow": [...]}}`` for a client.

    Agents publish under their own ``wot.agent.{id}.>`` and subscribe to their request
    subject; every client publishes one request subject per operation its role allows
    (a viewer has no ``invokeaction`` or ``writeproperty`` subject; an agent only
    ``readthing``, ``queryhistory``, ``readstate``, ``updatething`` and ``deletething``,
    which the router allows on its own Things) and subscribes to its own responses; consumers
    also to ``wot.twin.>`` (values, events, TDs, presence and state changes of every Thing,
    which they all may read; an agent may not); all get their own reply inboxes.
    ``wot.twin`` itself is allowed beside ``wot.twin.>``: an MQTT ``wot/twin/#``
    subscribes the parent level too, and is refused whole without it. With
    ``partitions`` (hub workers), each request subject is also granted as nats-server
    maps it, with the client's partition: permissions are checked on the mapped subject
    (bindings/nats/partitions.py).
    """
    c = subjects.encode(client_id)
    pub: list[str] = []
    sub: list[str] = [f"{subjects.inbox_prefix(client_id)}.>"]
    allowed = PERMISSIONS.get(role, frozenset())
    if role in (AGENT, SERVICE):
        pub.append(f"{subjects.PREFIX}.agent.{c}.>")
        sub.append(subjects.agent(client_id, subjects.REQ))
    # MQTT's one request topic (wot/client/{c}/req) and its responses, every role
    pub.append(f"{subjects.PREFIX}.client.{c}.req")
    # one subject per request operation the role has (an agent: reading its own Things)
    pub.extend(subjects.client_request(client_id, op) for op in sorted(CONSUMER_REQUESTS & allowed))
    sub.append(subjects.client_responses(client_id))
    if allowed & {ops.OBSERVE_PROPERTY, ops.SUBSCRIBE_EVENT, ops.OBSERVE_STATE}:
        sub.extend((f"{subjects.PREFIX}.twin", f"{subjects.PREFIX}.twin.>"))
    if partitions is not None:  # wot.agent.{c}.> covers an agent's own already
        requests = [subject for subject in pub if subject.startswith(f"{subjects.PREFIX}.client.")]
        pub.extend(mapped(subject, partitions) for subject in requests)
    return {"pub": {"allow": pub}, "sub": {"allow": sub}}


def mqtt_id_belongs(client_id: str, mqtt_id: str) -> bool:
    """Whether an MQTT client id is the client's own: its client id as one topic level
    (percent-encoded as in topics, so usually the id itself), alone or followed by
    ``/`` and anything (``lamp-agent``, ``lamp-agent/kitchen``). The encoded id holds no
    ``/``, so no client's ids are another's; nats-server refuses ``.``, ``*``, ``>`` and
    spaces in MQTT client ids, which the encoding never leaves raw."""
    own = subjects.encode(client_id)
    return mqtt_id == own or mqtt_id.startswith(own + "/")


@dataclass(frozen=True)
class Login:
    """An authorized NATS (or MQTT) connection, as the callout saw it: what it logged in
    with decides which changes end it (docs/nats.md, "When a client changes")."""

    client: Client  # its session_id is the token's session, for token logins
    server_id: str
    connection_id: int
    method: str  # certificate, token or password
    certificate_serial: int | None = None  # for certificate logins


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
        # Awaited with each Login and the name of the server it connects at, before the
        # login is answered (a cluster node: the node of that server subscribes first).
        self.before_answer: Any = None
        self.partitions: int | None = None  # hub workers: bindings/nats/partitions.py

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
            client, credentials = await self._authenticate(nats)
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
                    "nats": {
                        "type": "user",
                        "version": 2,
                        **permissions(client.id, client.role, self.partitions),
                    },
                },
                self.issuer,
            )
            claims = self._response(user_nkey, server_id, jwt=user)
            method = credentials.method or "none"
            log.debug("NATS login of %s (%s) by %s", client.id, client.role, method)
            serial = _serial(credentials.certificate) if method == CERTIFICATE else None
            login = Login(client, server_id, int(info.get("id", 0)), method, serial)
            if self.on_login is not None:
                self.on_login(login)
            if self.before_answer is not None:
                await self.before_answer(login, str(nats["server_id"].get("name", "")))
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

    async def _authenticate(self, nats: dict[str, Any]) -> tuple[Client, Credentials]:
        credentials = login_credentials(nats)
        info = nats.get("client_info") or {}
        client = await self.auth.authenticate(
            credentials,
            info.get("host"),
            self.verify_certificate,  # host: for the throttle
        )
        if info.get("type") == "mqtt":
            mqtt_id = info.get("mqtt_id")
            if not isinstance(mqtt_id, str) or not mqtt_id_belongs(client.id, mqtt_id):
                raise ValueError(f"MQTT client id {mqtt_id!r} is not {client.id!r}'s")
        return client, credentials


def login_credentials(nats: dict[str, Any]) -> Credentials:
    """What the client presented, from an authorization request's ``nats`` claims."""
    tls = nats.get("client_tls") or {}
    chains = tls.get("verified_chains") or []
    certificate = (chains[0][0] if chains and chains[0] else None) or next(
        iter(tls.get("certs") or []), None
    )
    opts = nats.get("connect_opts") or {}
    user, password, token = (_text(opts.get(key)) for key in ("user", "pass", "auth_token"))
    if token == password:  # nats-server fills both from an MQTT client's one password
        token = None
    return Credentials(
        certificate.encode() if isinstance(certificate, str) and certificate else None,
        token,
        user,
        password,
    )


def _serial(certificate: bytes | None) -> int | None:
    """The serial number of a (verified) PEM certificate."""
    try:
        return x509.load_pem_x509_certificate(certificate or b"").serial_number
    except ValueError:
        return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
