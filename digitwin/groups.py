"""Named groups of Things and the requests made to a whole group, kept in one bucket.

A group's members are a list of Thing ids, or a query (digitwin.selection: agent, @type,
a JSONPath filter) evaluated against the directory each time the group is used, so a
Thing that registers later and matches is a member from then on, and one deleted is
not. Listed ids are kept as given: one not (or no longer) registered is reported as
missing where the group is used.

    g\\0<name>     {"name", "title", "members" | "query", "created", "modified", "by"}
    r\\0<id>       a group request: which member request each member got (core.groups)

Group request ids start with the time in milliseconds, so the oldest come first and
only the newest ``MAX_REQUESTS`` are kept.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import orjson

from bucketstore import Bucket
from vocabulary import clock
from vocabulary.envelope import ABSENT
from vocabulary.problems import BadRequest, NotFound

from .directory import Directory, ThingRecord
from .selection import Selection

_GROUP = "g\x00"
_REQUEST = "r\x00"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.~-]{0,63}$")
MAX_MEMBERS = 10_000  # listed ids in one group
MAX_REQUESTS = 1000  # group requests kept (the member requests are the twin's)
GROUP_ID_PREFIX = "urn:wothub:group:"


@dataclass(slots=True)
class Group:
    name: str
    title: str = ""
    members: list[str] | None = None  # listed ids, or None for a query group
    query: Selection | None = None
    created: float = 0.0
    modified: float = 0.0
    by: str = ""  # who defined it last

    @property
    def thing_id(self) -> str:
        """The id of the group's own TD."""
        return GROUP_ID_PREFIX + self.name

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "id": self.thing_id}
        if self.title:
            out["title"] = self.title
        if self.members is not None:
            out["members"] = self.members
        if self.query is not None:
            out["query"] = self.query.to_dict()
        out |= {"created": clock.rfc3339(self.created), "modified": clock.rfc3339(self.modified)}
        return out | {"by": self.by}

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "name": self.name,
                "title": self.title,
                "members": self.members,
                "query": None if self.query is None else self.query.to_dict(),
                "created": self.created,
                "modified": self.modified,
                "by": self.by,
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> Group:
        data = orjson.loads(raw)
        query = data.get("query")
        return cls(
            data["name"],
            data.get("title", ""),
            data.get("members"),
            None if query is None else Selection.from_dict(query),
            data["created"],
            data["modified"],
            data.get("by", ""),
        )


def parse_definition(name: str, definition: Any) -> Group:
    """A group from ``{"title", "members": [ids]}`` or ``{"title", "query": {...}}``;
    BadRequest naming what is wrong."""
    if not isinstance(name, str) or not NAME.match(name):
        raise BadRequest(
            f"a group name is 1-64 letters, digits and _.~- (starting with a letter or "
            f"digit), not {name!r}",
            parameter="name",
        )
    if not isinstance(definition, dict):
        raise BadRequest("a group is an object: {title, members: [ids]} or {title, query}")
    unknown = set(definition) - {"name", "title", "members", "query"}
    if unknown:
        raise BadRequest(f"a group has title, members or query, not {sorted(unknown)}")
    if definition.get("name", name) != name:
        raise BadRequest("the group's name differs from the name it is stored under")
    title = definition.get("title", "")
    if not isinstance(title, str):
        raise BadRequest("a group's title is a string")
    has_members, has_query = "members" in definition, "query" in definition
    if has_members == has_query:
        raise BadRequest("a group has either members (a list of Thing ids) or a query")
    if has_members:
        members = definition["members"]
        if not isinstance(members, list) or not all(
            isinstance(m, str) and m and "\x00" not in m for m in members
        ):
            raise BadRequest("members is a list of Thing ids (non-empty strings)")
        if len(members) > MAX_MEMBERS:
            raise BadRequest(f"a group lists at most {MAX_MEMBERS} Things; use a query")
        return Group(name, title, members=sorted(set(members)))
    query = Selection.from_dict(definition["query"])
    if query.everything:
        raise BadRequest("a group's query needs agent, type or filter")
    return Group(name, title, query=query)


@dataclass(slots=True)
class GroupRequest:
    """A write or an action asked of a whole group: the member request of each member
    that got one, the refusal of each that did not, and who had no such affordance."""

    id: str
    group: str
    operation: str
    name: str
    input: Any
    sender_id: str
    time_requested: float
    requests: dict[str, str] = field(default_factory=dict)  # thing id -> request id
    refused: dict[str, dict[str, Any]] = field(default_factory=dict)  # thing id -> problem
    skipped: list[str] = field(default_factory=list)  # members without the affordance

    def to_json(self) -> bytes:
        data = {} if self.input is ABSENT else {"input": self.input}  # null is an input
        return orjson.dumps(
            {
                **data,
                "id": self.id,
                "group": self.group,
                "operation": self.operation,
                "name": self.name,
                "senderID": self.sender_id,
                "timeRequested": self.time_requested,
                "requests": self.requests,
                "refused": self.refused,
                "skipped": self.skipped,
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> GroupRequest:
        data = orjson.loads(raw)
        return cls(
            data["id"],
            data["group"],
            data["operation"],
            data["name"],
            data.get("input", ABSENT),
            data["senderID"],
            data["timeRequested"],
            data["requests"],
            data["refused"],
            data["skipped"],
        )


def new_request_id(now: float) -> str:
    return f"{round(now * 1000):015d}-{uuid.uuid4().hex[:16]}"


class Groups:
    """The groups and the group requests in ``bucket``."""

    def __init__(self, bucket: Bucket) -> None:
        self._bucket = bucket

    def get(self, name: str) -> Group:
        raw = self._bucket.get(_GROUP + name) if isinstance(name, str) and name else None
        if raw is None:
            raise NotFound(f"no group {name!r}", group=name)
        return Group.from_json(raw)

    def put(self, group: Group, by: str) -> bool:
        """Store the group; True when it is new."""
        existing = self._bucket.get(_GROUP + group.name)
        now = clock.now()
        group.created = Group.from_json(existing).created if existing else now
        group.modified, group.by = now, by
        self._bucket.set(_GROUP + group.name, group.to_json())
        return existing is None

    def delete(self, name: str) -> Group:
        group = self.get(name)
        self._bucket.delete(_GROUP + name)
        return group

    def all(self) -> list[Group]:
        return [Group.from_json(raw) for _, raw in self._bucket.items(prefix=_GROUP)]

    def on_change(self, callback: Callable[[], object], loop: asyncio.AbstractEventLoop) -> None:
        """``callback()`` on ``loop`` when another node defines or removes a group (a
        shared store, cluster mode); its group requests do not count."""
        self._bucket.on_change(lambda key: callback() if key.startswith(_GROUP) else None, loop)

    def members(self, group: Group, directory: Directory) -> list[str]:
        """The member ids in id order: the listed ones, or what the query selects now."""
        if group.members is not None:
            return group.members
        return [thing_id for thing_id, _ in self.member_records(group, directory)]

    def member_records(
        self, group: Group, directory: Directory
    ) -> Iterator[tuple[str, ThingRecord | None]]:
        """(id, directory record) of each member in id order; None for a listed id that
        is not registered. A query group's records are those its query read."""
        if group.members is None:
            assert group.query is not None
            for record in group.query.records(directory):
                yield record.thing_id, record
        else:
            for thing_id in group.members:
                yield thing_id, directory.get(thing_id)

    # -- group requests --------------------------------------------------------------------

    def add_request(self, request: GroupRequest) -> None:
        keys = list(islice(self._bucket.keys(prefix=_REQUEST), MAX_REQUESTS + 1))
        old = keys[: max(0, len(keys) - MAX_REQUESTS + 1)]
        self._bucket.batch(set={_REQUEST + request.id: request.to_json()}, delete=old)

    def request(self, request_id: str) -> GroupRequest:
        raw = self._bucket.get(_REQUEST + request_id) if request_id else None
        if raw is None:
            raise NotFound(f"no group request {request_id!r}")
        return GroupRequest.from_json(raw)
