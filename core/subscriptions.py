"""Which connection wants which notifications.

A subscription is (kind, thing id or None for every Thing, name or None for every
affordance). Kinds: ``property`` (observe), ``event`` (subscribe), ``action`` (request
status changes), ``presence`` and ``directory`` (TD created, updated, deleted). The
index is keyed by (kind, thing), so a notification only looks at the connections that
asked for its Thing or for every Thing.
"""

from __future__ import annotations

from collections import defaultdict

from vocabulary import operations as ops

from .connection import Connection

PROPERTY, EVENT, ACTION, PRESENCE, DIRECTORY = (
    "property",
    "event",
    "action",
    "presence",
    "directory",
)
KINDS = frozenset({PROPERTY, EVENT, ACTION, PRESENCE, DIRECTORY})

# The kind of subscription each notification operation is delivered to.
KIND_OF_NOTIFICATION = {
    ops.OBSERVE_PROPERTY: PROPERTY,
    ops.SUBSCRIBE_EVENT: EVENT,
    ops.QUERY_ACTION: ACTION,
    ops.UPDATE_PRESENCE: PRESENCE,
    ops.UPDATE_THING: DIRECTORY,
    ops.DELETE_THING: DIRECTORY,
}


class Subscriptions:
    def __init__(self) -> None:
        # (kind, thing or None) -> connection -> names (None in the set: every name)
        self._index: dict[tuple[str, str | None], dict[Connection, set[str | None]]] = defaultdict(
            dict
        )
        self._by_connection: dict[Connection, set[tuple[str, str | None]]] = defaultdict(set)

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
        every = self._index.get((kind, None))
        if every:
            seen = {connection for connection, _ in found}
            for connection, names in every.items():
                if connection not in seen and (None in names or name in names):
                    found.append((connection, True))
        return found

    def wants(
        self, connection: Connection, kind: str, thing_id: str, name: str | None
    ) -> bool | None:
        """Like ``matching`` for one connection: None when it does not want it."""
        for wildcard, key in ((False, (kind, thing_id)), (True, (kind, None))):
            names = self._index.get(key, {}).get(connection)
            if names is not None and (None in names or name in names):
                return wildcard
        return None

    def count(self) -> int:
        return sum(len(entry) for entry in self._index.values())
