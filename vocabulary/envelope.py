"""The one message envelope every binding speaks (docs/messages.md).

Bindings parse what arrives with ``parse_message``, which is strict: an unknown message
type or operation, a missing required field, a wrong type or an unknown field is an
``EnvelopeError`` naming the field, and nothing reaches the core. ``senderID`` is always
the authenticated client's id, whatever the wire said.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from . import clock
from .operations import (
    CANCEL_ACTION,
    NAMED_OPERATIONS,
    OPERATIONS,
    QUERY_ACTION,
    THINGLESS_OPERATIONS,
)
from .problems import BadRequest, problem_title

REQUEST = "request"
RESPONSE = "response"
NOTIFICATION = "notification"
MESSAGE_TYPES = frozenset({REQUEST, RESPONSE, NOTIFICATION})

# ActionStatus states (docs/messages.md).
PENDING = "pending"
DELIVERED = "delivered"
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
EXPIRED = "expired"
CANCELLED = "cancelled"
STATUSES = frozenset({PENDING, DELIVERED, RUNNING, COMPLETED, FAILED, EXPIRED, CANCELLED})
TERMINAL = frozenset({COMPLETED, FAILED, EXPIRED, CANCELLED})


class _Absent:
    """Marks a data field that is not in the message (JSON null is a real value)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ABSENT"

    def __bool__(self) -> bool:
        return False


ABSENT: Any = _Absent()

# Wire name -> attribute name, in the order they are written.
_FIELDS = {
    "messageType": "message_type",
    "operation": "operation",
    "thingID": "thing_id",
    "name": "name",
    "input": "input",
    "value": "value",
    "output": "output",
    "correlationID": "correlation_id",
    "actionID": "action_id",
    "ttl": "ttl",
    "messageID": "message_id",
    "senderID": "sender_id",
    "status": "status",
    "error": "error",
    "timestamp": "timestamp",
}
_FIELD_NAMES = frozenset(_FIELDS)
_TEXT_FIELDS = frozenset(
    {
        "messageType",
        "operation",
        "thingID",
        "name",
        "correlationID",
        "actionID",
        "messageID",
        "status",
        "timestamp",
    }
)


class EnvelopeError(ValueError):
    """A message that does not fit the envelope; ``field`` names the culprit."""

    def __init__(self, field: str, description: str) -> None:
        super().__init__(f"{field}: {description}")
        self.field = field
        self.description = description


@dataclass(slots=True)
class Message:
    message_type: str
    operation: str
    thing_id: str | None = None
    name: str | None = None
    input: Any = ABSENT
    value: Any = ABSENT
    output: Any = ABSENT
    correlation_id: str | None = None
    action_id: str | None = None  # the hub's id of a queued action or property write
    ttl: float | None = None  # seconds a queued request may wait for its agent
    message_id: str = ""
    sender_id: str | None = None
    status: str | None = None
    error: dict[str, Any] | None = None
    timestamp: str = ""

    def __post_init__(self) -> None:
        if not self.message_id:
            self.message_id = new_message_id()
        if not self.timestamp:
            self.timestamp = clock.rfc3339_now()

    def to_dict(self) -> dict[str, Any]:
        """The wire fields in _FIELDS order. In input / value / output, null is data;
        elsewhere None means "not set". Written out field by field: every message the
        hub sends passes here, and a loop over getattr cost twice as much."""
        out: dict[str, Any] = {}
        if self.message_type is not None:
            out["messageType"] = self.message_type
        if self.operation is not None:
            out["operation"] = self.operation
        if self.thing_id is not None:
            out["thingID"] = self.thing_id
        if self.name is not None:
            out["name"] = self.name
        if self.input is not ABSENT:
            out["input"] = self.input
        if self.value is not ABSENT:
            out["value"] = self.value
        if self.output is not ABSENT:
            out["output"] = self.output
        if self.correlation_id is not None:
            out["correlationID"] = self.correlation_id
        if self.action_id is not None:
            out["actionID"] = self.action_id
        if self.ttl is not None:
            out["ttl"] = self.ttl
        if self.message_id is not None:
            out["messageID"] = self.message_id
        if self.sender_id is not None:
            out["senderID"] = self.sender_id
        if self.status is not None:
            out["status"] = self.status
        if self.error is not None:
            out["error"] = self.error
        if self.timestamp is not None:
            out["timestamp"] = self.timestamp
        return out

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    def required_thing_id(self) -> str:
        """``thing_id``, for an operation on one Thing; BadRequest when there is none
        (``parse_message`` requires it for most operations, not for every message type)."""
        if self.thing_id is None:
            raise BadRequest(f"{self.operation} needs a thingID")
        return self.thing_id

    def required_name(self) -> str:
        """``name``, for an operation on one affordance; BadRequest when there is none."""
        if self.name is None:
            raise BadRequest(f"{self.operation} needs a name")
        return self.name

    @property
    def data(self) -> Any:
        """The payload, whichever of input / value / output carries it (ABSENT if none)."""
        for value in (self.input, self.value, self.output):
            if value is not ABSENT:
                return value
        return ABSENT


def new_id() -> str:
    """A random UUID, for what clients see and may keep (action and request ids)."""
    return str(uuid.uuid4())


_MESSAGE_PREFIX = uuid.uuid4().hex[:12]
_message_numbers = itertools.count(1)


def new_message_id() -> str:
    """Unique across processes (a random prefix per process) and about 15x cheaper than
    a UUID, which matters on a path that stamps every message."""
    return f"{_MESSAGE_PREFIX}-{next(_message_numbers)}"


def parse_message(
    raw: bytes | str | dict[str, Any], sender_id: str, *, texts_checked: bool = False
) -> Message:
    """Parse and check one message from the wire; ``sender_id`` is the authenticated client.
    ``texts_checked``: the caller ran ``check_text_fields`` on ``raw`` already."""
    if isinstance(raw, dict):
        data = raw
    else:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise EnvelopeError("(root)", f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise EnvelopeError("(root)", f"a message is a JSON object, not {_json_type(data)}")
    if not _FIELD_NAMES.issuperset(data):
        unknown = sorted(set(data) - _FIELD_NAMES)
        raise EnvelopeError(unknown[0], "is not a field of the message envelope")

    if not texts_checked:
        check_text_fields(data)  # so a field given is a non-empty string from here on
    message_type = data.get("messageType")
    if message_type is None:
        raise EnvelopeError("messageType", "is required")
    if message_type not in MESSAGE_TYPES:
        raise EnvelopeError(
            "messageType", f"{message_type!r} is not one of {', '.join(sorted(MESSAGE_TYPES))}"
        )
    operation = data.get("operation")
    if operation is None:
        raise EnvelopeError("operation", "is required")
    if operation not in OPERATIONS:
        raise EnvelopeError("operation", f"unknown operation {operation!r}")
    if "thingID" not in data and operation not in THINGLESS_OPERATIONS:
        raise EnvelopeError("thingID", f"is required for {operation}")
    if "name" not in data and operation in NAMED_OPERATIONS:
        raise EnvelopeError("name", f"is required for {operation}")
    if message_type == RESPONSE and "correlationID" not in data:
        raise EnvelopeError("correlationID", "is required in a response")
    needs_action = message_type == REQUEST and operation in (QUERY_ACTION, CANCEL_ACTION)
    if needs_action and "actionID" not in data:
        raise EnvelopeError("actionID", f"is required for {operation}")
    ttl = data.get("ttl")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl <= 0):
        raise EnvelopeError("ttl", "must be a positive number of seconds")
    status = data.get("status")
    if status is not None and status not in STATUSES:
        raise EnvelopeError("status", f"{status!r} is not one of {', '.join(sorted(STATUSES))}")
    error = data.get("error")
    if error is not None and not isinstance(error, dict):
        raise EnvelopeError("error", "must be a problem details object")
    timestamp = data.get("timestamp")
    if timestamp is not None:
        try:
            clock.parse_rfc3339_strict(timestamp)
        except ValueError:
            raise EnvelopeError(
                "timestamp", f"{timestamp!r} is not an RFC 3339 date-time"
            ) from None

    return Message(
        message_type=message_type,
        operation=operation,
        thing_id=data.get("thingID"),
        name=data.get("name"),
        input=data.get("input", ABSENT),
        value=data.get("value", ABSENT),
        output=data.get("output", ABSENT),
        correlation_id=data.get("correlationID"),
        action_id=data.get("actionID"),
        ttl=ttl,
        message_id=data.get("messageID") or "",
        sender_id=sender_id,  # never trusted from the wire
        status=status,
        error=error,
        timestamp=timestamp or "",
    )


def check_text_fields(data: dict[str, Any]) -> None:
    """EnvelopeError for the first field given that must be a non-empty string and is
    not. ``parse_message`` starts with it; a binding that reads fields before parsing
    (to compare them with a topic or subject) calls it first, so a wrong type gets the
    same answer on every binding."""
    for wire in data:  # in the message's own order, so the first bad field is reported
        if wire in _TEXT_FIELDS:
            value = data[wire]
            if not (value and isinstance(value, str)):  # the common case, checked inline
                _text(data, wire)


def _text(data: dict[str, Any], wire: str) -> None:
    """EnvelopeError for a field given that is not a non-empty string."""
    value = data[wire]
    if value is None:
        raise EnvelopeError(wire, "must not be null")
    if not isinstance(value, str) or not value:
        raise EnvelopeError(
            wire,
            "must not be empty" if value == "" else f"must be a string, not {_json_type(value)}",
        )


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return names.get(type(value), type(value).__name__)


def error_frame(
    correlation_id: str | None, status: int, detail: str, **extensions: Any
) -> dict[str, Any]:
    """The error response a bus binding sends for a frame it could not even parse (so
    there is no Message to answer): an RFC 9457 problem in the envelope's shape."""
    out: dict[str, Any] = {
        "messageType": RESPONSE,
        "status": FAILED,
        "error": {
            "type": "about:blank",
            "title": problem_title(status),
            "status": status,
            "detail": detail,
            **extensions,
        },
    }
    if correlation_id:
        out["correlationID"] = correlation_id
    return out
