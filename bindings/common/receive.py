"""The receive pipeline every binding shares: one message from the wire to the router,
and its answer back.

    size -> JSON -> fields the address implies -> envelope -> router -> reply

A binding supplies only what its protocol decides: the payload (bytes, or text on
WebSocket), the connection it came on, the address it came to (an MQTT topic or a NATS
subject, parsed with vocabulary/channels.py; none on WebSocket) and how an answer goes
back (``reply``). A bad message never reaches the router: it is answered with an error
response (an RFC 9457 problem in the envelope's shape, with ``validationErrors`` naming
the field) and logged, and ``receive`` returns False so the binding can count it
(bindings/common/bad_messages.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson

from core.connection import Connection
from core.contract import Core
from vocabulary.channels import Address
from vocabulary.envelope import EnvelopeError, Message, error_frame, parse_message

# Sends an answer back: the router's response, or an error response (a dict).
Reply = Callable[[Message | dict[str, Any]], Any]


class _Refused(Exception):
    def __init__(self, status: int, detail: str, reply_id: str | None = None, **extra: Any):
        super().__init__(detail)
        self.status, self.detail, self.reply_id, self.extra = status, detail, reply_id, extra


class Receiver:
    def __init__(self, router: Core, max_message_bytes: int, log: logging.Logger) -> None:
        self.router = router
        self.max_message_bytes = max_message_bytes
        self.log = log  # the binding's
        self.refused = 0  # messages refused before the router (for tests and stats)

    def receive(
        self,
        connection: Connection,
        payload: bytes | str,
        reply: Reply,
        address: Address | None = None,
    ) -> bool:
        """Carry one message to the router and ``reply`` with its answer, if any;
        False (after an error reply) when the message was refused."""
        try:
            message = self._parse(connection, payload, address)
        except _Refused as refused:
            self.refuse(
                connection, reply, refused.status, refused.detail, refused.reply_id, **refused.extra
            )
            return False
        response = self.router.handle(connection, message)
        if response is not None:
            reply(response)
        return True

    def refuse(
        self,
        connection: Connection | None,
        reply: Reply,
        status: int,
        detail: str,
        correlation_id: str | None = None,
        **extra: Any,
    ) -> None:
        """Answer a message the hub will not carry with an error response, and log it."""
        self.refused += 1
        who = connection.client.id if connection is not None else "an unknown client"
        self.log.info("refused a message from %s: %s", who, detail)
        reply(error_frame(correlation_id, status, detail, **extra))

    def _parse(
        self, connection: Connection, payload: bytes | str, address: Address | None
    ) -> Message:
        if len(payload) > self.max_message_bytes:
            unit = "characters" if isinstance(payload, str) else "bytes"  # as received
            raise _Refused(
                413,
                f"a message of {len(payload)} {unit} is over the limit of {self.max_message_bytes}",
            )
        raw: Any = None
        try:
            try:
                raw = orjson.loads(payload)
            except orjson.JSONDecodeError as exc:
                raise EnvelopeError("(root)", f"not valid JSON: {exc}") from None
            if not isinstance(raw, dict):  # the envelope's own check names what it is
                return parse_message(payload, connection.client.id)
            if address is not None:
                address.fill(raw)  # which checks the text fields first
                return parse_message(raw, connection.client.id, texts_checked=True)
            return parse_message(raw, connection.client.id)
        except EnvelopeError as exc:
            raise _Refused(
                400,
                f"not a valid message: {exc}",
                _reply_id(raw),
                validationErrors=[{"field": exc.field, "description": exc.description}],
            ) from None


def _reply_id(raw: Any) -> str | None:
    """The id a bad message's error response carries: its correlationID or messageID."""
    if isinstance(raw, dict):
        for key in ("correlationID", "messageID"):
            if isinstance(raw.get(key), str):
                return raw[key]
    return None
