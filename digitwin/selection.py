"""Which Things a query selects from the directory: by agent (the client that
registered them), by ``@type`` (a string or a list in the TD), and by a JSONPath
filter (RFC 9535, as the directory's search takes it; a Thing is selected when the
query selects anything from ``[its TD]``).

The listing (``GET /things?agent=..&type=..``), the search and group membership by query
(digitwin.groups) all select with this one class. An agent's Things are read through
the directory's owner index; a type or a filter alone reads every TD once, one at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from vocabulary.problems import BadRequest

from .directory import Directory, ThingRecord
from .search import compile_query, search


@dataclass(frozen=True, slots=True)
class Selection:
    agent: str | None = None
    thing_type: str | None = None
    filter: str | None = None  # a JSONPath query on [the TD as registered]

    def __post_init__(self) -> None:
        for field, value in (("agent", self.agent), ("type", self.thing_type)):
            if value is not None and (not isinstance(value, str) or not value):
                raise BadRequest(f"{field} is a non-empty string", parameter=field)
        if self.filter is not None:
            compile_query(self.filter)  # a bad query is refused before any TD is read

    @classmethod
    def from_dict(cls, data: Any) -> Selection:
        """From {"agent", "type", "filter"} (each optional); BadRequest otherwise."""
        if not isinstance(data, dict):
            raise BadRequest("a query is an object with agent, type and/or filter")
        unknown = set(data) - {"agent", "type", "filter"}
        if unknown:
            raise BadRequest(f"a query has agent, type and filter, not {sorted(unknown)}")
        return cls(data.get("agent"), data.get("type"), data.get("filter"))

    def to_dict(self) -> dict[str, str]:
        out = {"agent": self.agent, "type": self.thing_type, "filter": self.filter}
        return {key: value for key, value in out.items() if value is not None}

    @property
    def everything(self) -> bool:
        return self.agent is None and self.thing_type is None and self.filter is None

    def matches(self, record: ThingRecord) -> bool:
        if self.agent is not None and record.owner != self.agent:
            return False
        if self.thing_type is not None and self.thing_type not in types_of(record.td):
            return False
        return self.filter is None or bool(search(self.filter, [record.td]))

    def records(self, directory: Directory, *, owner: str | None = None) -> Iterator[ThingRecord]:
        """The selected Things in id order; ``owner``: only that client's (an agent
        sees its own Things only)."""
        agent = self.agent
        if owner is not None:
            if agent is not None and agent != owner:
                return
            agent = owner
        if agent is None:
            candidates: Iterator[ThingRecord] = directory.records()
        else:
            ids = sorted(directory.things_of(agent))
            candidates = (record for i in ids if (record := directory.get(i)) is not None)
        for record in candidates:
            if self.matches(record):
                yield record


def types_of(td: dict[str, Any]) -> list[str]:
    """The TD's ``@type`` as a list (absent: none)."""
    declared = td.get("@type")
    if isinstance(declared, str):
        return [declared]
    if isinstance(declared, list):
        return [t for t in declared if isinstance(t, str)]
    return []
