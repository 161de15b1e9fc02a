"""The fan-out encode cache: a notification goes to many subscribers, and is encoded
once for all of those that get it in the same wire form: the envelope (JSON bytes) or
the bare value (NATS and MQTT twin subjects, SSE data), or a binding's own form
(``get``: an SSE event block).

Entries are keyed by the message's identity and hold the message, so an id is never
reused while its entry lives; the cache starts over when full.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from vocabulary.envelope import ABSENT, Message


class EncodeCache:
    def __init__(self, size: int = 2048) -> None:
        self.size = size
        self._entries: dict[tuple[int, str], tuple[Message, Any]] = {}

    def envelope(self, message: Message | dict[str, Any]) -> bytes:
        """The envelope as JSON; an error response (a dict) is encoded as it comes."""
        if isinstance(message, dict):
            return orjson.dumps(message)
        return self.get(message, "envelope", Message.to_json)

    def value(self, message: Message) -> bytes:
        """The bare value (``null`` when there is none)."""
        return self.get(message, "value", _value_json)

    def value_text(self, message: Message) -> str:
        return self.get(message, "value text", lambda m: self.value(m).decode())

    def get(self, message: Message, form: str, encode: Callable[[Message], Any]) -> Any:
        """``encode(message)``, made once for every subscriber that asks for ``form``."""
        key = (id(message), form)
        entry = self._entries.get(key)
        if entry is not None and entry[0] is message:
            return entry[1]
        data = encode(message)
        if len(self._entries) >= self.size:
            self._entries.clear()
        self._entries[key] = (message, data)
        return data


def _value_json(message: Message) -> bytes:
    return orjson.dumps(None if message.value is ABSENT else message.value)
