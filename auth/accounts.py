"""Client accounts: who may connect, with which role, and how they prove it.

One bucket, key = client id, value = the account as JSON (with its argon2id hash).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from bucketstore import Bucket
from vocabulary import clock
from vocabulary.problems import BadRequest, Conflict, NotFound

from .passwords import Passwords
from .roles import KIND_ROLES, ROLES

# Ids appear in MQTT topics, NATS subjects and URLs: keep them plain.
_CLIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
HUB_ID = "wothub"  # owner of the hub's own Things; not a client anyone can log in as


_ATTEMPTS = 20  # compare-and-set tries of one change before giving up (Conflict)


@dataclass
class Account:
    client_id: str
    kind: str
    role: str
    display_name: str
    enabled: bool
    created: float
    updated: float
    password_hash: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """What administrators see: everything but the hash."""
        return {
            "clientID": self.client_id,
            "kind": self.kind,
            "role": self.role,
            "displayName": self.display_name,
            "enabled": self.enabled,
            "created": clock.rfc3339(self.created),
            "updated": clock.rfc3339(self.updated),
            "hasPassword": self.password_hash is not None,
        }


def check_role(kind: str, role: str) -> None:
    if kind not in KIND_ROLES:
        raise BadRequest(f"kind must be one of {', '.join(KIND_ROLES)}, not {kind!r}")
    if role not in KIND_ROLES[kind]:
        raise BadRequest(
            f"a {kind} client may have role {', '.join(KIND_ROLES[kind])}, not {role!r}"
            if role in ROLES
            else f"role must be one of {', '.join(ROLES)}, not {role!r}"
        )


class Accounts:
    """Accounts in a bucket, with an in-memory copy of those read: the authorizer looks
    up the account behind every request, and only this object writes the bucket."""

    def __init__(self, bucket: Bucket, passwords: Passwords) -> None:
        self._bucket = bucket
        self.passwords = passwords
        self._cache: dict[str, Account | None] = {}

    def get(self, client_id: str) -> Account | None:
        if client_id in self._cache:
            return self._cache[client_id]
        if not isinstance(client_id, str) or not _CLIENT_ID.match(client_id):
            return None
        raw = self._bucket.get(client_id)
        account = Account(**orjson.loads(raw)) if raw else None
        if len(self._cache) < 100_000:
            self._cache[client_id] = account
        return account

    def forget(self, client_id: str) -> Account | None:
        """Drop the copy read of an account (another node changed it); returns it."""
        return self._cache.pop(client_id, None)

    def require(self, client_id: str) -> Account:
        account = self.get(client_id)
        if account is None:
            raise NotFound(f"no client {client_id!r}", clientID=client_id)
        return account

    def add(
        self,
        client_id: str,
        kind: str,
        role: str,
        *,
        display_name: str = "",
        password: str | None = None,
    ) -> Account:
        if not isinstance(client_id, str) or not _CLIENT_ID.match(client_id):
            raise BadRequest(
                "a client id is 1-128 letters, digits, '.', '_', '@' or '-', starting with "
                f"a letter or digit, not {client_id!r}"
            )
        if client_id == HUB_ID:
            raise BadRequest(f"{HUB_ID!r} is reserved for the hub itself")
        check_role(kind, role)
        exists = Conflict(f"client {client_id!r} exists already", clientID=client_id)
        if self._bucket.get(client_id) is not None:
            raise exists
        now = clock.now()
        account = Account(
            client_id,
            kind,
            role,
            display_name or client_id,
            True,
            now,
            now,
            self._hash(password),
        )
        # Only if nobody added it meanwhile (another node, in a cluster).
        if not self._bucket.swap(client_id, None, orjson.dumps(asdict(account))):
            raise exists
        self._cache.pop(client_id, None)
        return account

    def list(self) -> list[Account]:
        return [Account(**orjson.loads(raw)) for raw in self._bucket.values()]

    def remove(self, client_id: str) -> Account:
        account = self.require(client_id)
        self._bucket.delete(client_id)
        self._cache.pop(client_id, None)
        return account

    def update(
        self,
        client_id: str,
        *,
        role: str | None = None,
        enabled: bool | None = None,
        password: str | None = None,
        display_name: str | None = None,
    ) -> Account:
        """Changed only if the record is still as read: another node may change the same
        client at the same time, and neither change is lost (read again, tried again)."""
        password_hash = self._hash(password)  # once: hashing is the slow part
        for _ in range(_ATTEMPTS):
            valid = isinstance(client_id, str) and _CLIENT_ID.match(client_id)
            raw = self._bucket.get(client_id) if valid else None
            if raw is None:
                raise NotFound(f"no client {client_id!r}", clientID=client_id)
            account = Account(**orjson.loads(raw))
            if role is not None:
                check_role(account.kind, role)
                account.role = role
            if enabled is not None:
                account.enabled = bool(enabled)
            if password_hash is not None:
                account.password_hash = password_hash
            if display_name is not None:
                account.display_name = display_name
            account.updated = clock.now()
            written = self._bucket.swap(client_id, raw, orjson.dumps(asdict(account)))
            self._cache.pop(client_id, None)
            if written:
                return account
        raise Conflict(f"client {client_id!r} is being changed elsewhere; try again")

    def _hash(self, password: str | None) -> str | None:
        if password is None:
            return None
        try:
            return self.passwords.hash(password)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
