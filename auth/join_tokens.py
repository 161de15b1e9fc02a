"""One-time join tokens: what a new cluster node presents to get the cluster's secrets
(docs/cluster.md, "Joining a node").

An administrator creates a token; it is returned once and only its SHA-256 is stored
(the token is 256 random bits, so a plain hash is enough), with its expiry. The records
live in the bucket store, so in cluster mode any node can honour a token another node
created. Redeeming marks the record used with ``Bucket.swap``: of two nodes that redeem
the same token at the same moment, only one swap succeeds, and the other is refused.

One bucket: ``<sha256 hex of the token>`` -> the record as JSON.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import asdict, dataclass, replace

import orjson

from bucketstore import Bucket
from vocabulary import clock
from vocabulary.problems import Forbidden, Unauthorized

BUCKET = "join-tokens"
DEFAULT_TTL = 3600.0
MIN_TTL, MAX_TTL = 60.0, 7 * 86400.0
# A used or expired record is kept this long, so that a second try is told why it is
# refused; after that it is removed (the next time a token is created).
KEEP_SPENT = 86400.0
_MAX_TOKEN_LENGTH = 256


class UnknownJoinToken(Unauthorized):
    """Not a token of this cluster (or one removed long after it was spent)."""


class SpentJoinToken(Forbidden):
    """A token of this cluster that was used already or expired."""


@dataclass(frozen=True)
class JoinToken:
    created: float
    expires: float
    created_by: str
    used: float | None = None
    used_by: str | None = None  # the address it was redeemed from


class JoinTokens:
    def __init__(self, bucket: Bucket) -> None:
        self._bucket = bucket

    def create(
        self, created_by: str, ttl: float = DEFAULT_TTL, now: float | None = None
    ) -> tuple[str, JoinToken]:
        """A new token valid for ``ttl`` seconds: the token itself (returned this once)
        and its record."""
        if not MIN_TTL <= ttl <= MAX_TTL:
            raise ValueError(f"a join token's ttl is {MIN_TTL:.0f} to {MAX_TTL:.0f} seconds")
        now = clock.now() if now is None else now
        self._prune(now)
        # Hex: a token must never start with "-", which a command line takes for an option.
        token = secrets.token_hex(32)
        record = JoinToken(created=now, expires=now + ttl, created_by=created_by)
        self._bucket.set(_key(token), orjson.dumps(asdict(record)))
        return token, record

    def redeem(self, token: object, used_by: str, now: float | None = None) -> JoinToken:
        """Mark ``token`` used and return its record; UnknownJoinToken or SpentJoinToken
        (with the reason) when it cannot be."""
        if not isinstance(token, str) or not token or len(token) > _MAX_TOKEN_LENGTH:
            raise UnknownJoinToken("no join token given")
        now = clock.now() if now is None else now
        key = _key(token)
        raw = self._bucket.get(key)
        if raw is None:
            raise UnknownJoinToken(
                "not a join token of this cluster; ask an administrator for one "
                "(wothub cluster join-token)"
            )
        record = JoinToken(**orjson.loads(raw))
        if record.used is not None:
            raise SpentJoinToken(
                f"this join token was used at {clock.rfc3339(record.used)}; a join token "
                f"works once, ask an administrator for a new one"
            )
        if now >= record.expires:
            raise SpentJoinToken(
                f"this join token expired at {clock.rfc3339(record.expires)}; ask an "
                f"administrator for a new one"
            )
        used = replace(record, used=now, used_by=used_by)
        # Compare-and-set: if another request (on this node or another) marked it used
        # since it was read, this one loses. A lost swap is always that: nothing else
        # changes a record that is not spent.
        if not self._bucket.swap(key, raw, orjson.dumps(asdict(used))):
            raise SpentJoinToken(
                "this join token was used by another request just now; a join token works "
                "once, ask an administrator for a new one"
            )
        return used

    def _prune(self, now: float) -> None:
        """Remove the records spent (expired, or used and expired) long enough ago."""
        stale = [
            key
            for key, raw in self._bucket.items()
            if orjson.loads(raw)["expires"] < now - KEEP_SPENT
        ]
        if stale:
            self._bucket.delete_many(stale)


def _key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
