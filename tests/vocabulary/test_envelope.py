"""The message envelope: strict parsing at the edge, and faithful serialisation."""

from typing import Any

import orjson
import pytest

from vocabulary import clock
from vocabulary.envelope import (
    ABSENT,
    NOTIFICATION,
    REQUEST,
    RESPONSE,
    EnvelopeError,
    Message,
    parse_message,
)

THING = "urn:dev:ops:32473-lamp-1"


def request(**fields: Any) -> dict[str, Any]:
    """A minimal valid readproperty request, with ``fields`` added or replaced."""
    return {
        "messageType": "request",
        "operation": "readproperty",
        "thingID": THING,
        "name": "on",
        **fields,
    }


def field_of_error(raw: Any) -> str:
    with pytest.raises(EnvelopeError) as info:
        parse_message(raw, "alice")
    assert info.value.description, "the error must say what is wrong"
    return info.value.field


# --- accepted -----------------------------------------------------------------------------------


def test_minimal_request_is_accepted() -> None:
    message = parse_message(orjson.dumps(request()), "alice")
    assert message.message_type == REQUEST
    assert message.operation == "readproperty"
    assert message.thing_id == THING
    assert message.name == "on"
    assert message.input is ABSENT


def test_minimal_response_is_accepted() -> None:
    raw = {
        "messageType": "response",
        "operation": "invokeaction",
        "thingID": THING,
        "name": "toggle",
        "correlationID": "c-1",
        "status": "completed",
        "output": {"on": True},
    }
    message = parse_message(raw, "agent-1")
    assert message.message_type == RESPONSE
    assert message.correlation_id == "c-1"
    assert message.status == "completed"
    assert message.output == {"on": True}


def test_minimal_notification_is_accepted() -> None:
    raw = {
        "messageType": "notification",
        "operation": "observeproperty",
        "thingID": THING,
        "name": "on",
        "value": False,
    }
    message = parse_message(raw, "hub")
    assert message.message_type == NOTIFICATION
    assert message.value is False


def test_text_input_is_accepted_like_bytes() -> None:
    message = parse_message(orjson.dumps(request()).decode(), "alice")
    assert (message.operation, message.thing_id, message.name) == ("readproperty", THING, "on")


@pytest.mark.parametrize("operation", ["subscribeallevents", "updatething"])
def test_thingless_operation_needs_no_thing_id(operation: str) -> None:
    message = parse_message({"messageType": "request", "operation": operation}, "alice")
    assert message.operation == operation
    assert message.thing_id is None


def test_sender_id_from_the_wire_is_replaced_by_the_authenticated_one() -> None:
    message = parse_message(request(senderID="mallory"), "alice")
    assert message.sender_id == "alice"
    assert message.to_dict()["senderID"] == "alice"


def test_message_id_and_timestamp_are_filled_in_when_absent() -> None:
    message = parse_message(request(), "alice")
    assert message.message_id
    clock.parse_rfc3339(message.timestamp)  # a valid RFC 3339 date-time
    assert message.timestamp.endswith("Z")


def test_generated_message_ids_are_unique() -> None:
    ids = {parse_message(request(), "alice").message_id for _ in range(100)}
    assert len(ids) == 100


def test_message_id_and_timestamp_from_the_wire_are_kept() -> None:
    raw = request(messageID="m-42", timestamp="2026-01-02T03:04:05.678Z")
    message = parse_message(raw, "alice")
    assert message.message_id == "m-42"
    assert message.timestamp == "2026-01-02T03:04:05.678Z"


@pytest.mark.parametrize("wire", ["input", "value", "output"])
def test_json_null_data_survives_a_round_trip(wire: str) -> None:
    message = parse_message(request(**{wire: None}), "alice")
    assert getattr(message, wire) is None
    assert message.to_dict()[wire] is None
    assert orjson.loads(message.to_json())[wire] is None
    assert message.data is None


def test_absent_fields_are_omitted_from_the_output() -> None:
    message = parse_message(request(), "alice")
    out = orjson.loads(message.to_json())
    assert set(out) == {
        "messageType",
        "operation",
        "thingID",
        "name",
        "messageID",
        "senderID",
        "timestamp",
    }


def test_parsed_message_round_trips_through_json() -> None:
    raw = request(
        operation="writeproperty",
        input={"level": 3},
        correlationID="c-9",
        messageID="m-1",
        timestamp="2026-01-02T03:04:05.678Z",
        ttl=30,
    )
    message = parse_message(raw, "alice")
    again = parse_message(message.to_json(), "alice")
    assert again == message


def test_data_is_absent_when_the_message_carries_none() -> None:
    assert parse_message(request(), "alice").data is ABSENT


def test_message_built_in_code_gets_id_and_timestamp() -> None:
    message = Message(REQUEST, "readallproperties", thing_id=THING)
    assert message.message_id and message.timestamp
    assert "input" not in message.to_dict()


# --- refused: the whole message -----------------------------------------------------------------


def test_not_json_is_refused_at_root() -> None:
    assert field_of_error(b"{not json") == "(root)"


def test_json_array_is_refused_at_root() -> None:
    assert field_of_error(b"[1, 2]") == "(root)"


def test_unknown_field_is_refused_by_name() -> None:
    assert field_of_error(request(priority="high")) == "priority"


# --- refused: type and operation ----------------------------------------------------------------


def test_unknown_message_type_is_refused() -> None:
    assert field_of_error(request(messageType="command")) == "messageType"


def test_missing_message_type_is_refused() -> None:
    raw = request()
    del raw["messageType"]
    assert field_of_error(raw) == "messageType"


def test_unknown_operation_is_refused() -> None:
    assert field_of_error(request(operation="explode")) == "operation"


def test_missing_operation_is_refused() -> None:
    raw = request()
    del raw["operation"]
    assert field_of_error(raw) == "operation"


# --- refused: required by the operation ---------------------------------------------------------


def test_readproperty_without_thing_id_is_refused() -> None:
    raw = request()
    del raw["thingID"]
    assert field_of_error(raw) == "thingID"


def test_invokeaction_without_name_is_refused() -> None:
    raw = request(operation="invokeaction")
    del raw["name"]
    assert field_of_error(raw) == "name"


def test_response_without_correlation_id_is_refused() -> None:
    assert field_of_error(request(messageType="response")) == "correlationID"


def test_queryaction_request_without_action_id_is_refused() -> None:
    raw = request(operation="queryaction", name="toggle")
    assert field_of_error(raw) == "actionID"


def test_queryaction_request_with_action_id_is_accepted() -> None:
    raw = request(operation="queryaction", name="toggle", actionID="a-1")
    assert parse_message(raw, "alice").action_id == "a-1"


# --- refused: wrong types -----------------------------------------------------------------------


def test_thing_id_that_is_a_number_is_refused() -> None:
    assert field_of_error(request(thingID=42)) == "thingID"


def test_empty_name_is_refused() -> None:
    assert field_of_error(request(name="")) == "name"


def test_null_thing_id_is_refused() -> None:
    assert field_of_error(request(thingID=None)) == "thingID"


def test_error_that_is_not_an_object_is_refused() -> None:
    raw = request(messageType="response", correlationID="c-1", error="it broke")
    assert field_of_error(raw) == "error"


@pytest.mark.parametrize("ttl", [-5, 0, True, "60"], ids=["negative", "zero", "boolean", "text"])
def test_ttl_that_is_not_a_positive_number_is_refused(ttl: Any) -> None:
    assert field_of_error(request(operation="invokeaction", ttl=ttl)) == "ttl"


def test_positive_ttl_is_accepted() -> None:
    assert parse_message(request(operation="invokeaction", ttl=1.5), "alice").ttl == 1.5


def test_status_that_is_not_a_known_state_is_refused() -> None:
    raw = request(messageType="response", correlationID="c-1", status="done")
    assert field_of_error(raw) == "status"


@pytest.mark.parametrize(
    "timestamp",
    [
        "yesterday",
        "2026-01-02",
        "2026-01-02T03:04:05",
        "2026-13-02T03:04:05Z",
        "20260102T030405Z",
        "2026-01-02T03:04Z",
        "2026-W01-5T03:04:05Z",
    ],
    ids=["words", "date-only", "no-offset", "month-13", "basic-format", "no-seconds", "week"],
)
def test_timestamp_that_is_not_rfc3339_is_refused(timestamp: str) -> None:
    assert field_of_error(request(timestamp=timestamp)) == "timestamp"


def test_timestamp_with_an_offset_is_accepted() -> None:
    message = parse_message(request(timestamp="2026-01-02T04:04:05+01:00"), "alice")
    assert message.timestamp == "2026-01-02T04:04:05+01:00"


def test_first_bad_field_in_message_order_is_reported() -> None:
    raw = {
        "messageType": "request",
        "operation": "readproperty",
        "name": 7,
        "thingID": 8,
    }
    assert field_of_error(raw) == "name"


def test_to_dict_writes_every_field_set_in_wire_order():
    """to_dict is written out field by field for speed: it must say what a loop over the
    wire fields says (None means "not set", except in input / value / output, where
    null is data; ABSENT is never written)."""
    from itertools import product

    from vocabulary.envelope import _FIELDS

    data = ("input", "value", "output")
    for thing, name, data_field, payload, extra in product(
        (None, "urn:x"),
        (None, "level"),
        data,
        (None, 0, {"a": [1]}),
        ({}, {"correlation_id": "c", "action_id": "a", "ttl": 5.0, "status": "completed"}),
    ):
        message = Message("response", "readproperty", thing, name, **{data_field: payload}, **extra)
        message.error = {"status": 500} if extra else None
        expected = {}
        for wire, attribute in _FIELDS.items():
            value = getattr(message, attribute)
            if value is not ABSENT and (value is not None or wire in data):
                expected[wire] = value
        assert message.to_dict() == expected
        assert list(message.to_dict()) == list(expected)
