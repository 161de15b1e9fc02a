"""Recent successful password checks, so that a reconnecting device costs no argon2.

A device that logs in with its password on every connect (MQTT, NATS) would otherwise
pay a full argon2id check on each reconnect, and a storm of reconnects after a network
blip would take minutes of CPU. A success is remembered under a keyed hash (HMAC-SHA256
with a key made at start and never stored) of client id and password, so the memory
holds no password and nothing that can be checked offline. An entry counts only while
the account's stored hash is the one it was checked against (a password change drops
it) and for ``ttl`` seconds; the service also forgets a client's entries when it is
removed, disabled or changes role.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict

from vocabulary import clock


class RecentVerifications:
    def __init__(self, ttl: float = 900.0, max_entries: int = 100_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._key = secrets.token_bytes(32)
        # keyed hash -> (client id, stored hash it matched, until)
        self._entries: OrderedDict[bytes, tuple[str, str, float]] = OrderedDict()

    def _digest(self, client_id: str, password: str) -> bytes:
        message = client_id.encode() + b"\x00" + password.encode()
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def matches(self, client_id: str, password: str, stored_hash: str | None) -> bool:
        if self.ttl <= 0 or not stored_hash:
            return False
        digest = self._digest(client_id, password)
        entry = self._entries.get(digest)
        if entry is None:
            return False
        owner, hashed, until = entry
        if (
            owner != client_id
            or until <= clock.now()
            or not hmac.compare_digest(hashed, stored_hash)
        ):
            del self._entries[digest]
            return False
        return True

    def remember(self, client_id: str, password: str, stored_hash: str) -> None:
        if self.ttl <= 0:
            return
        digest = self._digest(client_id, password)
        self._entries.pop(digest, None)
        self._entries[digest] = (client_id, stored_hash, clock.now() + self.ttl)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget(self, client_id: str) -> None:
        for digest in [d for d, entry in self._entries.items() if entry[0] == client_id]:
            del self._entries[digest]
