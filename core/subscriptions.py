"""Which connection wants which notifications.

A subscription is (kind, thing id or None for every Thing, name or None for every
affordance); the thing id may be a group's, for its members' notifications. Kinds:
``property`` (observe), ``event`` (subscribe), ``action`` (request status changes),
``presence`` and ``directory`` (TD created, updated, deleted). The index is keyed by
(kind, thing), so a notification only looks at the connections that asked for its
Thing, for every Thing, or for a group it is a member of.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from vocabulary import operations as ops

from .connection import Connection

PROPERTY, EVENT, ACTION, PRESENCE, DIRECTORY, STATE = (
    "property",
    "event",
    "action",
    "presence",
    "directory",
    "state",
)
KINDS = frozenset({PROPERTY, EVENT, ACTION, PRESENCE, DIRECTORY, STATE})

# The kind of subscription each notification operation is delivered to.
KIND_OF_NOTIFICATION = {
    ops.OBSERVE_PROPERTY: PROPERTY,
    ops.SUBSCRIBE_EVENT: EVENT,
    ops.QUERY_ACTION: ACTION,
    ops.UPDATE_PRESENCE: PRESENCE,
    ops.UPDATE_THING: DIRECTORY,
    ops.DELETE_THING: DIRECTORY,
    ops.OBSERVE_STATE: STATE,
}


class Subscriptions:
    def __init__(self) -> None:
        # (kind, thing or None) -> connection -> names (None in the set: every name)
        self._index: dict[tuple[str, str | None], dict[Connection, set[str | None]]] = defaultdict(
            dict
        )
        self._by_connection: dict[Connection, set[tuple[str, str | None]]] = defaultdict(set)
        # A subscription may name a group's Thing id (core/groups.py): it wants the
        # notifications of the group's members, kept here per group and per member.
        self._members: dict[str, frozenset[str]] = {}  # group thing id -> member ids
        self._groups_of: dict[str, set[str]] = defaultdict(set)  # member -> group thing ids

    def add(self, connection: Connection, kind: str, thing_id: str | None, name: str | None):
        if kind not in KINDS:
            raise ValueError(f"unknown subscription kind {kind!r}")
        self._index[(kind, thing_id)].setdefault(connection, set()).add(name)
        self._by_connection[connection].add((kind, thing_id))

    def remove(self, connection: Connection, kind: str, thing_id: str | None, name: str | None):
        """Undo one ``add`` (a name, or with None every name of that Thing and kind)."""
        entry = self._index.get((kind, thing_id), {})
        names = entry.get(connection)
        if names is None:
            return
        if name is None:
            names.clear()
        else:
            names.discard(name)
        if not names:
            del entry[connection]
            self._by_connection[connection].discard((kind, thing_id))
            if not entry:
                del self._index[(kind, thing_id)]

    def set_members(self, group_id: str, members: Iterable[str]) -> None:
        """The members of a group (by its Thing id) whose notifications its subscribers get."""
        for member in self._members.pop(group_id, ()):
            groups = self._groups_of[member]
            groups.discard(group_id)
            if not groups:
                del self._groups_of[member]
        self._members[group_id] = frozenset(members)
        for member in self._members[group_id]:
            self._groups_of[member].add(group_id)

    def watched_groups(self) -> list[str]:
        """The groups somebody subscribes to now (the members of the others are forgotten)."""
        if not self._members:
            return []
        watched = {thing_id for _, thing_id in self._index if thing_id in self._members}
        for group_id in [g for g in self._members if g not in watched]:
            self.set_members(group_id, ())
            del self._members[group_id]
        return sorted(watched)

    def connections(self) -> list[Connection]:
        """The connections that have at least one subscription."""
        return [connection for connection, keys in self._by_connection.items() if keys]

    def watched(self) -> bool:
        """Whether a client's connection has a subscription (a binding's own relay,
        which is trusted, does not count)."""
        return any(keys and not c.trusted for c, keys in self._by_connection.items())

    def drop(self, connection: Connection) -> None:
        """Forget every subscription of a connection."""
        for key in self._by_connection.pop(connection, set()):
            entry = self._index.get(key)
            if entry is not None:
                entry.pop(connection, None)
                if not entry:
                    del self._index[key]

    def matching(self, kind: str, thing_id: str, name: str | None) -> list[tuple[Connection, bool]]:
        """Connections that want this notification, each once, with True when only a
        subscription to every Thing matched (the router then checks that Thing's permission).
        A list, so subscriptions may change while the caller goes through it."""
        found: list[tuple[Connection, bool]] = []
        exact = self._index.get((kind, thing_id))
        if exact:
            for connection, names in exact.items():
                if None in names or name in names:
                    found.append((connection, False))
        wider = [self._index.get((kind, None))]  # every Thing, and groups it is in
        if self._groups_of and thing_id in self._groups_of:
            wider += [self._index.get((kind, g)) for g in self._groups_of[thing_id]]
        seen: set[Connection] | None = None
        for entry in wider:
            if not entry:
                continue
            if seen is None:
                seen = {connection for connection, _ in found}
            for connection, names in entry.items():
                if connection not in seen and (None in names or name in names):
                    seen.add(connection)
                    found.append((connection, True))  # the router checks the Thing
        return found

    def wants(
        self, connection: Connection, kind: str, thing_id: str, name: str | None
    ) -> bool | None:
        """Like ``matching`` for one connection: None when it does not want it."""
        keys = [(False, (kind, thing_id)), (True, (kind, None))]
        keys += [(True, (kind, g)) for g in self._groups_of.get(thing_id, ())]
        for wildcard, key in keys:
            names = self._index.get(key, {}).get(connection)
            if names is not None and (None in names or name in names):
                return wildcard
        return None

    def count(self) -> int:
        return sum(len(entry) for entry in self._index.values())
