"""Notifications to subscribers: the twin's changes, numbered and logged, go to every
connection whose subscriptions want them and whose client may see them; a reconnecting
subscriber gets what it missed replayed from the log."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from bucketstore import BucketStoreError
from digitwin.core import DigiTwin
from digitwin.groups import GROUP_ID_PREFIX
from digitwin.notifications import NotificationLog
from vocabulary import operations as ops
from vocabulary.envelope import COMPLETED, Message
from vocabulary.problems import BadRequest, NotFound, Problem

from .access import Access
from .connection import Connection
from .responses import response
from .stats import Counters
from .subscriptions import (
    ACTION,
    DIRECTORY,
    EVENT,
    KIND_OF_NOTIFICATION,
    PRESENCE,
    PROPERTY,
    STATE,
    Subscriptions,
)

log = logging.getLogger("wothub.router")

# The permission a subscription of each kind needs, per Thing.
PERMISSION_OF_KIND = {
    PROPERTY: ops.OBSERVE_PROPERTY,
    EVENT: ops.SUBSCRIBE_EVENT,
    ACTION: ops.QUERY_ACTION,
    PRESENCE: ops.READ_THING,
    DIRECTORY: ops.READ_THING,
    STATE: ops.READ_STATE,
}
# Subscribe / unsubscribe requests: operation -> (kind, subscribe?, per affordance?)
SUBSCRIPTION_OPS = {
    ops.OBSERVE_PROPERTY: (PROPERTY, True, True),
    ops.UNOBSERVE_PROPERTY: (PROPERTY, False, True),
    ops.OBSERVE_ALL_PROPERTIES: (PROPERTY, True, False),
    ops.UNOBSERVE_ALL_PROPERTIES: (PROPERTY, False, False),
    ops.SUBSCRIBE_EVENT: (EVENT, True, True),
    ops.UNSUBSCRIBE_EVENT: (EVENT, False, True),
    ops.SUBSCRIBE_ALL_EVENTS: (EVENT, True, False),
    ops.UNSUBSCRIBE_ALL_EVENTS: (EVENT, False, False),
    ops.OBSERVE_STATE: (STATE, True, False),
    ops.UNOBSERVE_STATE: (STATE, False, False),
}


class FanOut:
    def __init__(
        self,
        twin: DigiTwin,
        access: Access,
        subscriptions: Subscriptions,
        log: NotificationLog,
        counters: Counters,
        *,
        request_changed: Callable[[dict[str, Any]], None],
        group_members: Callable[[str], list[str]],
    ) -> None:
        self.twin = twin
        self.access = access
        self.subscriptions = subscriptions
        self.log = log
        self.counters = counters
        self.request_changed = request_changed
        self.group_members = group_members  # a group's Thing id -> every member now
        self.on_watch: Callable[[], None] | None = None  # a client's connection subscribed

    def publish(self, message: Message, *, to_relays: bool = True) -> None:
        """The twin's notifications: number them, log them, fan them out. Another node's
        (cluster mode) skip the relays (``to_relays=False``): nats-server has delivered
        them on the bus already."""
        notification = self.log.append(message)
        if message.operation == ops.QUERY_ACTION:
            self.request_changed(message.value)
        kind = KIND_OF_NOTIFICATION[message.operation]
        thing_id = message.required_thing_id()  # the twin's notifications all name one
        if kind == DIRECTORY:  # a Thing came or went: who is a member of each group now
            self.groups_changed()
        sent: dict[str, int] = {}  # per binding, counted once after the loop
        for connection, wildcard in self.subscriptions.matching(kind, thing_id, message.name):
            if wildcard:  # a relay's subscriptions all are
                if connection.trusted:
                    if not to_relays:
                        continue
                elif not self._may_see(connection, kind, message):
                    continue
            if connection.notify(notification.seq, message):
                sent[connection.binding] = sent.get(connection.binding, 0) + 1
            else:
                log.warning("%s fell behind; disconnecting it", connection)
                self.subscriptions.drop(connection)
        for binding, count in sent.items():
            self.counters.message_out(binding, message.operation, count)

    def replay(self, connection: Connection, after: int) -> bool:
        missed = self.log.after(after)
        if missed is None:
            return False
        for notification in missed:
            message = notification.message
            kind = KIND_OF_NOTIFICATION[message.operation]
            thing_id = message.required_thing_id()
            wildcard = self.subscriptions.wants(connection, kind, thing_id, message.name)
            if wildcard is None or (wildcard and not self._may_see(connection, kind, message)):
                continue
            connection.notify(notification.seq, message)
        return True

    # -- subscriptions ---------------------------------------------------------------------

    def subscribe(
        self, connection: Connection, kind: str, thing_id: str | None, name: str | None
    ) -> None:
        if thing_id is not None and _is_group(thing_id):
            self._subscribe_group(connection, kind, thing_id, name)
            return
        if not connection.trusted:
            owner = self.twin.owner_of(thing_id) if thing_id else None
            self.access.require(connection.client, PERMISSION_OF_KIND[kind], thing_id, owner)
        if thing_id is not None and self.twin.thing(thing_id) is None:
            raise NotFound(f"no Thing {thing_id}", thingID=thing_id)
        self.subscriptions.add(connection, kind, thing_id, name)
        if self.on_watch is not None and not connection.trusted:
            self.on_watch()

    def _subscribe_group(
        self, connection: Connection, kind: str, group_id: str, name: str | None
    ) -> None:
        """Observe a group: its members' notifications, each checked as for a
        subscription to every Thing (the client sees the members it may observe), and
        membership following the directory and the group's definition."""
        if kind not in (PROPERTY, EVENT):
            raise BadRequest("a group's members are observed for properties and events")
        self.access.require(connection.client, ops.READ_THING, None, None)
        self.access.require(connection.client, PERMISSION_OF_KIND[kind], None, None)
        self.subscriptions.set_members(group_id, self.group_members(group_id))
        self.subscriptions.add(connection, kind, group_id, name)
        if self.on_watch is not None:
            self.on_watch()

    def groups_changed(self) -> None:
        """Membership may have changed (a TD, a group defined or removed): read again
        the members of the groups somebody observes (a removed group has none)."""
        for group_id in self.subscriptions.watched_groups():
            try:
                members = self.group_members(group_id)
            except NotFound:
                members = []
            except BucketStoreError as exc:  # the notification goes out all the same
                log.warning("the members of %s stay as they were: %s", group_id, exc)
                continue
            self.subscriptions.set_members(group_id, members)

    def subscription(self, connection: Connection, message: Message) -> Message:
        """An observe / unobserve / subscribe / unsubscribe request."""
        kind, subscribe, named = SUBSCRIPTION_OPS[message.operation]
        name = message.name if named else None
        if subscribe:
            self.subscribe(connection, kind, message.thing_id, name)
            if named and not _is_group(
                message.thing_id
            ):  # the affordance must exist and be readable (not write-only)
                read = self.twin.read_property if kind == PROPERTY else self.twin.read_event
                try:
                    read(message.required_thing_id(), message.required_name())
                except Problem:
                    self.subscriptions.remove(connection, kind, message.thing_id, name)
                    raise
        else:
            self.subscriptions.remove(connection, kind, message.thing_id, name)
        return response(message, status=COMPLETED)

    def replace(
        self, connection: Connection, wanted: Iterable[tuple[str, str | None, str | None]]
    ) -> None:
        self.subscriptions.drop(connection)
        for kind, thing_id, name in wanted:
            self.subscriptions.add(connection, kind, thing_id, name)
        if self.on_watch is not None and not connection.trusted:
            self.on_watch()

    def subscribers(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for connection in self.subscriptions.connections():
            counts[connection.binding] = counts.get(connection.binding, 0) + 1
        return counts

    def _may_see(self, connection: Connection, kind: str, message: Message) -> bool:
        if connection.trusted:
            return True
        if message.operation == ops.DELETE_THING and isinstance(message.value, dict):
            owner = message.value.get("owner")  # the TD, and its owner, are gone
        else:
            owner = self.twin.owner_of(message.required_thing_id())
        try:
            reason = self.access.authorizer.authorize(
                connection.client, PERMISSION_OF_KIND[kind], message.thing_id, owner
            )
        except Problem:  # the client was removed or disabled meanwhile
            return False
        return reason is None


def _is_group(thing_id: str | None) -> bool:
    return thing_id is not None and thing_id.startswith(GROUP_ID_PREFIX)
