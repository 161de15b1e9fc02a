"""Ids and names in bus addresses: one level of an MQTT topic, one token of a NATS
subject (one scheme for both buses: docs/nats.md, docs/mqtt.md).

Every character outside ``A-Z a-z 0-9 _ ~ : -`` is percent-encoded as the %XX of its
UTF-8 bytes, so ``/ + # . * > %`` and spaces never appear raw and a URN such as
``urn:dev:ops:32473-lamp-1`` stays readable.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_~:-")
_ALL_SAFE = re.compile(r"[A-Za-z0-9_~:-]+", re.ASCII).fullmatch  # the common case, at C speed


def encode(text: str) -> str:
    """One topic level or subject token for an id or a name."""
    if not text:
        raise ValueError("an empty id or name has no topic level or subject token")
    if _ALL_SAFE(text):
        return text
    return "".join(ch if ch in _SAFE else "".join(f"%{b:02X}" for b in ch.encode()) for ch in text)


def decode(level: str) -> str:
    return unquote(level, errors="strict")
