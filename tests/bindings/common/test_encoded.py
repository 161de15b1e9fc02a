"""The fan-out encode cache (bindings/common/encoded.py): one encoding per notification
and wire form, shared by every subscriber."""

from __future__ import annotations

import orjson

from bindings.common.encoded import EncodeCache
from vocabulary.envelope import Message


def note(value=None) -> Message:
    if value is None:
        return Message("notification", "subscribeevent", "urn:x", "clicked")
    return Message("notification", "observeproperty", "urn:x", "on", value=value)


def test_a_notification_is_encoded_once_per_wire_form():
    cache, message = EncodeCache(), note({"level": 3})
    envelope = cache.envelope(message)
    assert cache.envelope(message) is envelope
    assert orjson.loads(envelope) == message.to_dict()
    assert cache.value(message) == b'{"level":3}' and cache.value_text(message) == '{"level":3}'


def test_a_notification_without_a_value_is_null_in_the_value_form():
    assert EncodeCache().value(note()) == b"null"


def test_an_equal_but_different_message_is_encoded_for_itself():
    cache = EncodeCache()
    first, second = note(1), note(1)
    assert cache.envelope(first) is not cache.envelope(second)
    assert orjson.loads(cache.envelope(second))["messageID"] == second.message_id


def test_error_responses_are_encoded_as_they_come_and_not_kept():
    cache = EncodeCache()
    error = {"messageType": "response", "status": "failed"}
    assert orjson.loads(cache.envelope(error)) == error
    assert cache.envelope(error) is not cache.envelope(error)


def test_a_full_cache_starts_over():
    cache = EncodeCache(size=2)
    first, second, third = note(1), note(2), note(3)
    kept = [cache.envelope(first), cache.envelope(second)]
    assert cache.envelope(second) is kept[1]
    cache.envelope(third)  # one too many: the cache starts over
    assert cache.envelope(second) is not kept[1]
    assert orjson.loads(cache.envelope(first))["value"] == 1


def test_a_bindings_own_form_is_made_once_per_notification_and_form():
    cache, message, made = EncodeCache(), note(5), []

    def block(name: str):
        def encode(m: Message) -> bytes:
            made.append(name)
            return f"event: {name}\ndata: {cache.value_text(m)}\n\n".encode()

        return encode

    first = cache.get(message, "sse a", block("a"))
    assert cache.get(message, "sse a", block("a")) is first
    assert cache.get(message, "sse b", block("b")) == b"event: b\ndata: 5\n\n"
    assert made == ["a", "b"]
