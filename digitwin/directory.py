"""The Thing Description directory: TDs as their agents sent them, who owns each, and the
WoT Discovery registration information (created, modified, expires, ttl).

One bucket, so that a TD and its index entries change in one atomic write:

    td\\0<id>                  {"td": ..., "owner": ..., "created": ..., ...} (JSON)
    o\\0<owner>\\0<id>          the Things each client registered
    x\\0<expires ms>\\0<id>     TDs with an expiry, soonest first (for purging)

Listing walks ``td\\0`` keys in id order (Unicode code points, as WoT Discovery asks) and
decodes one TD at a time, so no listing or search holds the whole directory in memory.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

import orjson

from bucketstore import Bucket
from vocabulary import clock
from vocabulary.problems import BadRequest, Conflict, NotFound

from .validation import ValidationError

_TD = "td\x00"


@dataclass(slots=True)
class ThingRecord:
    thing_id: str
    td: dict[str, Any]  # as the agent sent it, with its id, without `registration`
    owner: str | None
    created: float
    modified: float
    expires: float | None = None
    ttl: float | None = None

    def registration(self) -> dict[str, Any]:
        """The WoT Discovery RegistrationInformation object."""
        out: dict[str, Any] = {
            "created": clock.rfc3339(self.created),
            "modified": clock.rfc3339(self.modified),
        }
        if self.expires is not None:
            out["expires"] = clock.rfc3339(self.expires)
        if self.ttl is not None:
            out["ttl"] = self.ttl
        return out

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "td": self.td,
                "owner": self.owner,
                "created": self.created,
                "modified": self.modified,
                "expires": self.expires,
                "ttl": self.ttl,
            }
        )

    @classmethod
    def from_json(cls, thing_id: str, raw: bytes) -> ThingRecord:
        data = orjson.loads(raw)
        return cls(
            thing_id,
            data["td"],
            data["owner"],
            data["created"],
            data["modified"],
            data["expires"],
            data["ttl"],
        )


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON Merge Patch: returns the patched copy of ``target``."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def merge_diff(source: Any, target: Any) -> Any:
    """The RFC 7396 merge patch that turns ``source`` into ``target`` (the inverse of
    ``merge_patch``): changed members, and null for removed ones."""
    if not isinstance(source, dict) or not isinstance(target, dict):
        return copy.deepcopy(target)
    patch: dict[str, Any] = {key: None for key in source if key not in target}
    for key, value in target.items():
        if key not in source:
            patch[key] = copy.deepcopy(value)
        elif source[key] != value:
            patch[key] = merge_diff(source[key], value)
    return patch


def _expiry_key(record: ThingRecord) -> str | None:
    if record.expires is None:
        return None
    return f"x\x00{round(record.expires * 1000):015d}\x00{record.thing_id}"


class Directory:
    """Register, update, patch, retrieve, delete and list Thing Descriptions."""

    def __init__(
        self,
        bucket: Bucket,
        validate: Callable[[Any], None],
        *,
        check_size: Callable[[dict[str, Any], str | None], None] | None = None,
    ) -> None:
        self._bucket = bucket
        self._validate = validate
        # check_size(td, owner) refuses a TD too large to keep (the hub's limit), whether
        # it arrives whole or is the result of a merge patch; None: no limit.
        self.check_size = check_size

    def get(self, thing_id: str) -> ThingRecord | None:
        raw = self._bucket.get(_TD + thing_id) if thing_id else None
        return ThingRecord.from_json(thing_id, raw) if raw else None

    def put(
        self,
        td: Any,
        owner: str | None,
        *,
        keep_owner: bool = False,
        now: float | None = None,
    ) -> tuple[ThingRecord, bool]:
        """Create or replace a TD; returns the record and whether it was created.

        A TD without an id gets ``urn:uuid:<v4>``. Another owner's TD is refused with
        Conflict, unless ``keep_owner`` (an administrator acting on it): then the TD keeps
        its owner.
        """
        if not isinstance(td, dict):
            raise BadRequest(
                "a Thing Description is a JSON object",
                validationErrors=[{"field": "(root)", "description": "must be an object"}],
            )
        td = dict(td)
        if "id" not in td:
            td["id"] = f"urn:uuid:{uuid.uuid4()}"
        thing_id = td["id"]
        if self.check_size is not None:
            self.check_size(td, owner)
        self._check(td)
        registration = td.pop("registration", None) or {}
        now = clock.now() if now is None else now

        existing = self.get(thing_id) if isinstance(thing_id, str) else None
        if existing is not None and existing.owner != owner:
            if not keep_owner:
                raise Conflict(
                    f"Thing {thing_id} is registered by another client",
                    thingID=thing_id,
                )
            owner = existing.owner
        record = ThingRecord(
            thing_id,
            td,
            owner,
            created=existing.created if existing else now,
            modified=now,
        )
        _apply_lifetime(record, registration, now)

        writes = {_TD + thing_id: record.to_json()}
        if owner is not None:
            writes[f"o\x00{owner}\x00{thing_id}"] = b""
        deletes = []
        if existing is not None and (old := _expiry_key(existing)):
            deletes.append(old)
        if new := _expiry_key(record):
            writes[new] = b""
        self._bucket.batch(set=writes, delete=deletes)
        return record, existing is None

    def patch(
        self, thing_id: str, patch: Any, owner: str | None, *, keep_owner: bool = False
    ) -> ThingRecord:
        """Apply an RFC 7396 merge patch to a TD (and its registration), then validate it.

        An empty patch ``{}`` renews ``expires`` from ``ttl``: the WoT Discovery keep-alive.
        """
        existing = self.get(thing_id)
        if existing is None:
            raise NotFound(f"no Thing {thing_id}", thingID=thing_id)
        if not isinstance(patch, dict):
            raise BadRequest("a merge patch for a Thing Description is a JSON object")
        if "id" in patch and patch["id"] != thing_id:
            raise BadRequest(
                "a patch may not change the Thing's id",
                validationErrors=[{"field": "id", "description": "must not change"}],
            )
        enriched = {**existing.td, "registration": _client_registration(existing)}
        patched = merge_patch(enriched, patch)
        record, _ = self.put(patched, owner, keep_owner=keep_owner)
        return record

    def delete(self, thing_id: str, owner: str | None, *, keep_owner: bool = False) -> ThingRecord:
        existing = self.get(thing_id)
        if existing is None:
            raise NotFound(f"no Thing {thing_id}", thingID=thing_id)
        if existing.owner != owner and not keep_owner:
            raise Conflict(f"Thing {thing_id} is registered by another client", thingID=thing_id)
        deletes = [_TD + thing_id, f"o\x00{existing.owner}\x00{thing_id}"]
        if old := _expiry_key(existing):
            deletes.append(old)
        self._bucket.delete_many(deletes)
        return existing

    def records(self, offset: int = 0, limit: int | None = None) -> Iterator[ThingRecord]:
        """TDs in id order, decoded one at a time."""
        stop = None if limit is None else offset + limit
        for key, raw in islice(self._bucket.items(prefix=_TD), offset, stop):
            yield ThingRecord.from_json(key[len(_TD) :], raw)

    def records_after(self, after: str | None, limit: int) -> list[ThingRecord]:
        """Up to ``limit`` TDs in id order after the id ``after`` (from the first: None);
        paging by key, so a walk over every TD reads each once."""
        start = None if after is None else _TD + after
        items = self._bucket.items(start, prefix=_TD, exclusive=after is not None)
        return [ThingRecord.from_json(key[len(_TD) :], raw) for key, raw in islice(items, limit)]

    def count(self) -> int:
        return sum(1 for _ in self._bucket.keys(prefix=_TD))

    def things_of(self, owner: str) -> list[str]:
        prefix = f"o\x00{owner}\x00"
        return [key[len(prefix) :] for key in self._bucket.keys(prefix=prefix)]

    def next_expiry(self) -> float | None:
        for key in self._bucket.keys(prefix="x\x00"):
            return int(key.split("\x00")[1]) / 1000
        return None

    def purge_expired(self, now: float | None = None) -> list[ThingRecord]:
        """Delete every TD whose ``expires`` has passed; returns them."""
        limit = f"{round((clock.now() if now is None else now) * 1000):015d}"
        purged = []
        for key in self._bucket.keys(prefix="x\x00"):
            _, expires, thing_id = key.split("\x00", 2)
            if expires > limit:
                break
            record = self.get(thing_id)
            if record is None:
                self._bucket.delete(key)
            else:
                purged.append(self.delete(thing_id, record.owner))
        return purged

    def _check(self, td: dict[str, Any]) -> None:
        thing_id = td.get("id")
        errors = []
        if not isinstance(thing_id, str) or not thing_id:
            errors.append({"field": "id", "description": "must be a non-empty string (a URI)"})
        elif "\x00" in thing_id:
            errors.append({"field": "id", "description": "must not contain NUL"})
        try:
            self._validate(td)
        except ValidationError as exc:
            errors += [error.as_dict() for error in exc.errors]
        if errors:
            raise BadRequest(
                "The input did not pass the JSON Schema validation", validationErrors=errors
            )


def _client_registration(record: ThingRecord) -> dict[str, Any]:
    """The registration fields a client may set, as they are now."""
    if record.ttl is not None:
        return {"ttl": record.ttl}
    if record.expires is not None:
        return {"expires": clock.rfc3339(record.expires)}
    return {}


def _apply_lifetime(record: ThingRecord, registration: dict[str, Any], now: float) -> None:
    """``ttl`` wins over ``expires``: the server computes expires from it (WoT Discovery)."""
    ttl = registration.get("ttl")
    if ttl is not None:
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl <= 0:
            raise BadRequest(
                "registration.ttl must be a positive number of seconds",
                validationErrors=[{"field": "registration.ttl", "description": "must be > 0"}],
            )
        record.ttl = ttl
        record.expires = now + ttl
    elif (expires := registration.get("expires")) is not None:
        try:
            record.expires = clock.parse_rfc3339(expires)
        except (TypeError, ValueError):
            raise BadRequest(
                "registration.expires must be an RFC 3339 date-time",
                validationErrors=[
                    {"field": "registration.expires", "description": "not an RFC 3339 date-time"}
                ],
            ) from None
