"""Login sessions: what a token refers to, so that logout and removal take effect at
once and survive a restart. One bucket: ``s\\0<session id>`` -> session JSON, and
``c\\0<client id>\\0<session id>`` to find a client's sessions."""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass

import orjson

from bucketstore import Bucket
from vocabulary import clock


@dataclass
class Session:
    session_id: str
    client_id: str
    created: float
    expires: float
    revoked: bool = False

    def valid(self, now: float | None = None) -> bool:
        return not self.revoked and (clock.now() if now is None else now) < self.expires


class Sessions:
    """Sessions in a bucket, with an in-memory copy of those read (checked per request)."""

    def __init__(self, bucket: Bucket) -> None:
        self._bucket = bucket
        self._cache: dict[str, Session | None] = {}

    def create(self, client_id: str, lifetime: float) -> Session:
        now = clock.now()
        session = Session(secrets.token_urlsafe(16), client_id, now, now + lifetime)
        self._bucket.batch(
            set={
                f"s\x00{session.session_id}": orjson.dumps(asdict(session)),
                f"c\x00{client_id}\x00{session.session_id}": b"",
            }
        )
        return session

    def get(self, session_id: str) -> Session | None:
        if session_id in self._cache:
            return self._cache[session_id]
        if not isinstance(session_id, str) or not session_id:
            return None
        raw = self._bucket.get(f"s\x00{session_id}")
        session = Session(**orjson.loads(raw)) if raw else None
        if len(self._cache) < 100_000:
            self._cache[session_id] = session
        return session

    def forget(self, session_id: str) -> Session | None:
        """Drop the copy read of a session (another node changed it); returns it."""
        return self._cache.pop(session_id, None)

    def revoke(self, session_id: str) -> None:
        session = self.get(session_id)
        if session is not None and not session.revoked:
            session = Session(**{**asdict(session), "revoked": True})
            self._bucket.set(f"s\x00{session_id}", orjson.dumps(asdict(session)))
            self._cache[session_id] = session

    def revoke_all(self, client_id: str) -> int:
        """End every session of a client (removed, disabled, or its password changed)."""
        prefix = f"c\x00{client_id}\x00"
        ids = [key[len(prefix) :] for key in self._bucket.keys(prefix=prefix)]
        for session_id in ids:
            self.revoke(session_id)
        return len(ids)

    def prune(self, now: float | None = None) -> int:
        """Forget sessions that expired or were revoked."""
        now = clock.now() if now is None else now
        stale = [
            s
            for raw in self._bucket.values(prefix="s\x00")
            if not (s := Session(**orjson.loads(raw))).valid(now)
        ]
        self._bucket.write_batches(
            delete=[
                key
                for s in stale
                for key in (f"s\x00{s.session_id}", f"c\x00{s.client_id}\x00{s.session_id}")
            ]
        )
        for session in stale:
            self._cache.pop(session.session_id, None)
        return len(stale)
