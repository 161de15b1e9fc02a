"""Twin notifications on the buses (``wot.twin...``): the data as the payload, the rest
of the envelope in NATS message headers (docs/nats.md, docs/mqtt.md).

nats-server delivers one message on a twin subject to NATS and MQTT subscribers alike,
and MQTT 3.1.1 has no headers: MQTT clients (node-wot's MQTT binding among them) get the
raw JSON value they expect on the topic of a TD form; NATS clients also get the headers,
from which ``rebuild`` makes the envelope again (clients/nats.py).

=====================  ==========================================================
``.prop.{name}``       the property value (JSON)
``.event.{name}``      the event data (JSON; ``null`` when the event has none)
``.td``                the twin TD (JSON); empty when the Thing was deleted
``.presence``          the presence status (JSON)
``.state.{name}``      the property's entry of the state document (JSON): its
                       ``reported``, ``desired`` and ``declined``
=====================  ==========================================================

Pure data and functions: no I/O.
"""

from __future__ import annotations

from typing import Any

import orjson

from . import operations as ops
from .channels import CHANNELS, TWIN, Address
from .envelope import NOTIFICATION, Message

MESSAGE_TYPE = "Wot-Message-Type"
OPERATION = "Wot-Operation"
TIMESTAMP = "Wot-Timestamp"
MESSAGE_ID = "Wot-Message-Id"
SENDER_ID = "Wot-Sender-Id"
CREATED = "Wot-Created"  # updatething: "true" for a new Thing, "false" for a replaced TD
# The hub node that published it: a node of a cluster skips its own (docs/cluster.md).
NODE = "Wothub-Node"


# The operation a twin subject carries by default (the first of its channel's): left out
# of the headers, as the message type (always notification), since ``rebuild`` implies
# them. Every header costs the sender and each NATS receiver a parse.
_IMPLIED_OPERATIONS = frozenset(
    channel.operations[0] for channel in CHANNELS if channel.family == TWIN
)
_NO_NEWLINES = str.maketrans({"\r": " ", "\n": " "})


def headers(message: Message, node: str | None = None) -> dict[str, str]:
    """The NATS headers of a twin notification: what its subject and payload do not say,
    and the ``node`` that publishes it."""
    out = {}
    if message.message_type != NOTIFICATION:
        out[MESSAGE_TYPE] = message.message_type
    if message.operation not in _IMPLIED_OPERATIONS:
        out[OPERATION] = message.operation
    out[TIMESTAMP] = message.timestamp
    out[MESSAGE_ID] = message.message_id
    if message.sender_id:
        out[SENDER_ID] = message.sender_id
    if message.operation == ops.UPDATE_THING and isinstance(message.value, dict):
        out[CREATED] = "true" if message.value.get("created") else "false"
    if node is not None:
        out[NODE] = node
    return out


def node_line(node: str) -> bytes:
    """The ``NODE`` header line, written once per publisher for ``header_block``."""
    return b"%b: %b\r\n" % (NODE.encode(), _clean(node))


def header_block(message: Message, node: bytes = b"") -> bytes:
    """``headers`` as the NATS protocol writes them (``NATS/1.0`` then one ``Name: value``
    line each), for a publisher that writes the HPUB itself; ``node`` is the publisher's
    ``node_line`` (or nothing). No value can end a line."""
    if (
        message.operation in _PLAIN_OPERATIONS
        and message.message_type == NOTIFICATION
        and not message.sender_id
    ):  # a value or an event: the hub's own stamp and id, nothing else (the hot path)
        return _PLAIN_BLOCK % (_clean(message.timestamp), _clean(message.message_id), node)
    lines = b"".join(
        b"%b: %b\r\n" % (name.encode(), _clean(value)) for name, value in headers(message).items()
    )
    return b"NATS/1.0\r\n" + lines + node + b"\r\n"


def _clean(value: str) -> bytes:
    """A header value that cannot end its line (a search costs less than a translate)."""
    if "\r" in value or "\n" in value:
        value = value.translate(_NO_NEWLINES)
    return value.encode()


_PLAIN_OPERATIONS = frozenset({ops.OBSERVE_PROPERTY, ops.SUBSCRIBE_EVENT})
_PLAIN_BLOCK = f"NATS/1.0\r\n{TIMESTAMP}: %b\r\n{MESSAGE_ID}: %b\r\n%b\r\n".encode()


def rebuild(address: Address, payload: bytes, found: dict[str, str] | None) -> dict[str, Any]:
    """The envelope of a twin notification from its subject, payload and headers.
    ``value`` is the payload, except for ``updatething`` ({"created", "td"}) and
    ``deletething`` (none). ValueError for a payload that is not JSON."""
    found = found or {}
    operation = found.get(OPERATION) or address.channel.operations[0]
    message: dict[str, Any] = {
        "messageType": found.get(MESSAGE_TYPE, NOTIFICATION),
        "operation": operation,
        "thingID": address.thing_id,
    }
    if address.name is not None:
        message["name"] = address.name
    if operation == ops.UPDATE_THING:
        td = orjson.loads(payload) if payload else None
        message["value"] = {"created": found.get(CREATED) == "true", "td": td}
    elif operation != ops.DELETE_THING:
        message["value"] = orjson.loads(payload)
    for wire, header in (
        ("messageID", MESSAGE_ID),
        ("senderID", SENDER_ID),
        ("timestamp", TIMESTAMP),
    ):
        if header in found:
            message[wire] = found[header]
    return message
