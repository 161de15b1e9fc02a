"""Envelope messages as a binding hands them to the router: JSON through the strict
parser, the sender set by the hub (whatever the wire said)."""

from __future__ import annotations

import itertools

from vocabulary.envelope import Message, parse_message

_ids = itertools.count()


def message(message_type: str, operation: str, thing_id=None, name=None, **fields) -> Message:
    wire = {"messageType": message_type, "operation": operation, **fields}
    if thing_id is not None:
        wire["thingID"] = thing_id
    if name is not None:
        wire["name"] = name
    if message_type == "request":
        wire.setdefault("correlationID", f"c{next(_ids)}")
    return parse_message(wire, sender_id="spoofed-by-the-wire")


def request(operation: str, thing_id=None, name=None, **fields) -> Message:
    return message("request", operation, thing_id, name, **fields)


def notification(operation: str, thing_id=None, name=None, **fields) -> Message:
    return message("notification", operation, thing_id, name, **fields)


def answer(delivered: Message, status=None, output=None) -> Message:
    """An agent's response to the request ``delivered``: its status (default: completed)
    and output."""
    fields = {"correlationID": delivered.correlation_id, "actionID": delivered.action_id}
    if status:
        fields["status"] = status
    fields["output"] = output
    return message("response", delivered.operation, delivered.thing_id, delivered.name, **fields)
