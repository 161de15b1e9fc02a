"""vocabulary/twin_wire.py: the headers of twin notifications, as a dict for nats-py
and as the block the twin relay writes itself; the envelope rebuilt from them."""

from __future__ import annotations

import pytest

from vocabulary import operations as ops
from vocabulary import twin_wire
from vocabulary.channels import NATS
from vocabulary.envelope import NOTIFICATION, Message
from vocabulary.operations import DELETE_THING

THING = "urn:dev:ops:lamp-1"
MESSAGES = [
    Message(NOTIFICATION, ops.OBSERVE_PROPERTY, THING, "level", value=3),
    Message(NOTIFICATION, ops.SUBSCRIBE_EVENT, THING, "clicked", value=None),
    Message(NOTIFICATION, ops.OBSERVE_PROPERTY, THING, "level", value=3, sender_id="agent-1"),
    Message(NOTIFICATION, ops.UPDATE_THING, THING, value={"created": True, "td": {}}),
    Message(NOTIFICATION, ops.DELETE_THING, THING),
    Message(NOTIFICATION, ops.UPDATE_PRESENCE, THING, value={"online": True}),
]


def _parse(block: bytes) -> dict[str, str]:
    lines = block.decode().split("\r\n")
    assert lines[0] == "NATS/1.0" and lines[-2:] == ["", ""]
    return dict(line.split(": ", 1) for line in lines[1:-2])


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: f"{m.operation}-{m.sender_id}")
def test_the_block_says_what_the_headers_say(message):
    assert _parse(twin_wire.header_block(message)) == twin_wire.headers(message)
    node = twin_wire.node_line("node-1")
    with_node = twin_wire.headers(message, node="node-1")
    assert _parse(twin_wire.header_block(message, node)) == with_node
    assert with_node[twin_wire.NODE] == "node-1"


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: f"{m.operation}-{m.sender_id}")
def test_what_the_subject_implies_is_left_out_and_rebuilt(message):
    headers = twin_wire.headers(message)
    assert twin_wire.MESSAGE_TYPE not in headers
    implied = message.operation in (
        ops.OBSERVE_PROPERTY,
        ops.SUBSCRIBE_EVENT,
        ops.UPDATE_THING,
        ops.UPDATE_PRESENCE,
    )
    assert (twin_wire.OPERATION not in headers) == implied
    subject = NATS.notification(message.operation, THING, message.name)
    payload = b"null" if message.operation != ops.DELETE_THING else b""
    if message.operation == ops.UPDATE_THING:
        payload = b"{}"
    rebuilt = twin_wire.rebuild(NATS.parse(subject), payload, headers)
    assert rebuilt["messageType"] == NOTIFICATION
    assert rebuilt["operation"] == message.operation
    assert rebuilt["timestamp"] == message.timestamp
    assert rebuilt["messageID"] == message.message_id
    assert rebuilt.get("senderID") == message.sender_id


@pytest.mark.parametrize("operation", [ops.OBSERVE_PROPERTY, ops.DELETE_THING])
def test_no_value_can_add_a_header_line(operation):
    forged = "x\r\nWot-Operation: forged\r\n"
    sender = forged if operation == ops.DELETE_THING else None  # None: the one-template path
    message = Message(NOTIFICATION, operation, THING, message_id=forged, sender_id=sender)
    parsed = _parse(twin_wire.header_block(message))
    assert parsed.get(twin_wire.OPERATION) in (None, ops.DELETE_THING)
    assert parsed[twin_wire.MESSAGE_ID] == forged.replace("\r", " ").replace("\n", " ")


def test_a_node_name_cannot_add_a_header_line():
    message = Message(NOTIFICATION, ops.OBSERVE_PROPERTY, THING, "level", value=3)
    parsed = _parse(twin_wire.header_block(message, twin_wire.node_line("n\r\nWot-Operation: x")))
    assert parsed == {**twin_wire.headers(message), twin_wire.NODE: "n  Wot-Operation: x"}


def test_a_forged_sender_stays_one_header_line_in_order():
    message = Message(
        NOTIFICATION, DELETE_THING, "urn:x", sender_id="a\r\nWot-Operation: forged", value=None
    )
    block = twin_wire.header_block(message)
    lines = block.decode().split("\r\n")
    assert lines[0] == "NATS/1.0" and lines[-2:] == ["", ""]
    assert [line.split(":")[0] for line in lines[1:-2]] == [
        twin_wire.OPERATION,
        twin_wire.TIMESTAMP,
        twin_wire.MESSAGE_ID,
        twin_wire.SENDER_ID,
    ]
    assert f"{twin_wire.OPERATION}: {DELETE_THING}" in lines
