"""DigiTwin: the core every binding routes through (via the router).

It keeps, for every Thing, the TD (directory), the latest values (twins), the requests
waiting for its agent (request queue) and its agent's presence, and it announces every
change as a notification message through the ``notify`` callback it is given (the
router's fan-out).
It knows nothing of protocols, connections or permissions: the router decides who may
do what, then calls these methods. All calls are synchronous (the store answers in
microseconds) and must be made from one thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from bucketstore import BucketStore
from vocabulary import clock
from vocabulary import operations as ops
from vocabulary.envelope import (
    ABSENT,
    COMPLETED,
    DELIVERED,
    FAILED,
    NOTIFICATION,
    TERMINAL,
    Message,
)
from vocabulary.problems import BadRequest, MethodNotAllowed, NotFound, Problem

from .directory import Directory, ThingRecord, merge_diff
from .history import (
    EVENT,
    KINDS,
    PROPERTY,
    HistoryConfig,
    ThingHistory,
    open_history,
    series_prefix,
)
from .history_query import parse_query, run_query
from .presence import Presence
from .requests import Record, RequestQueue
from .search import search
from .state import (
    declined_entry,
    declined_writes,
    last_ended_writes,
    property_state,
    restore_values,
    restores,
    state_document,
)
from .twins import Twin, TwinCache, TwinStats
from .twintd import AFFORDANCE_KINDS, FormProvider, build_twin_td, enriched_td
from .validation import ValidationError, compile_data_schema, validate_td

log = logging.getLogger("wothub.twin")


@dataclass(frozen=True)
class TwinConfig:
    max_active: int = 1000  # twins kept in memory
    idle_timeout: float = 600.0  # seconds before an unused twin is unloaded
    request_ttl: float = 3600.0  # default expiry of queued actions and writes
    request_retention: float = 86400.0  # how long finished requests stay queryable
    history: HistoryConfig = field(default_factory=HistoryConfig)  # docs/history.md


class DigiTwin:
    def __init__(
        self,
        store: BucketStore,
        config: TwinConfig | None = None,
        *,
        validate: Callable[[Any], None] = validate_td,
        notify: Callable[[Message], None] | None = None,
        check_td_size: Callable[[dict[str, Any], str | None], None] | None = None,
    ) -> None:
        """``notify`` receives every change as a notification (none: they are dropped);
        ``check_td_size(td, owner)`` refuses a TD too large to keep, whole or patched."""
        self.config = config or TwinConfig()
        things, twins = store.bucket("things"), store.bucket("twins")
        self._shared = things, twins  # see follow_other_nodes
        self.directory = Directory(things, validate, check_size=check_td_size)
        self.requests = RequestQueue(
            store.bucket("requests"),
            default_ttl=self.config.request_ttl,
            retention=self.config.request_retention,
        )
        self.twins = TwinCache(
            twins,
            self._load_twin,
            max_active=self.config.max_active,
            idle_timeout=self.config.idle_timeout,
        )
        self.agent_presence = Presence(store.bucket("presence"))
        self._restore_settings = store.bucket("restoresettings")  # thing id -> true, false
        self.history = open_history(store, self.config.history)
        self._providers: list[FormProvider] = []
        self._twin_tds: dict[str, dict[str, Any]] = {}  # twin TDs of active twins
        self._notify = notify or (lambda message: None)

    # -- other nodes (a shared store, cluster mode) -----------------------------------

    def follow_other_nodes(self, loop: asyncio.AbstractEventLoop) -> None:
        """What another node writes reaches this node's reads: a TD registered, changed
        or removed there, a twin's values written there. This node's copies (an active
        twin, a built twin TD) are dropped, and read again from the store; an active
        twin's desired and declined writes follow the write records changed there; an
        agent connected here that another node took for gone is put back.
        (The notifications of those changes are that node's; see docs/cluster.md.) The
        work is done on ``loop``. On a store that only this hub writes (LevelDB),
        nothing is ever reported."""
        things, twins = self._shared
        things.on_change(self._thing_changed, loop)
        twins.on_change(self.twins.drop, loop)
        active = self.twins.peek
        self.requests.follow_queued_and_ended(
            loop, lambda thing_id: active(thing_id) is not None, self._write_changed
        )
        self.history.follow_other_nodes(loop)
        self.agent_presence.bucket.on_change(self._presence_changed, loop)

    def _presence_changed(self, agent_id: str) -> None:
        """Another node changed an agent's presence record. If it took this node out while
        the agent is connected here (it counted this node gone: this node's lease
        renewals stalled for 5 s, its event loop waiting on the store), this node puts
        itself back and announces the agent online again."""
        if self.agent_presence.restore(agent_id):
            log.warning(
                "another node counted this node gone while agent %s was connected here "
                "(its lease renewals stalled): the agent is online again",
                agent_id,
            )
            self._announce_presence(agent_id)

    def _write_changed(self, record: Record) -> None:
        """Another node queued or ended a request of an active twin: if it is a write,
        that property's desired and declined follow the stored records, as ``request``
        and ``_write_ended`` keep them on the node that did it."""
        twin = self.twins.peek(record.thing_id)
        if twin is None or record.operation != ops.WRITE_PROPERTY:
            return  # a twin not active here is loaded from the records at its next use
        waiting = [
            r
            for r in self.requests.open_for_thing(record.thing_id)
            if r.operation == ops.WRITE_PROPERTY and r.name == record.name
        ]
        if waiting:
            twin.desired[record.name] = _desired(waiting[-1])  # the last one queued
        else:
            twin.desired.pop(record.name, None)
        if twin.declined is not None:
            _follow_declined(twin.declined, record)

    def _thing_changed(self, key: str) -> None:
        kind, _, thing_id = key.partition("\x00")
        if kind != "td":
            return  # an index entry
        self._twin_tds.pop(thing_id, None)
        record = self.directory.get(thing_id)
        twin = self.twins.peek(thing_id)
        if twin is None:
            return
        if record is None:
            self.twins.drop(thing_id, unwritten_too=True)
        else:
            twin.td, twin.owner = record.td, record.owner
            twin.checkers.clear()

    # -- bindings' forms -------------------------------------------------------------

    def add_form_provider(self, provider: FormProvider) -> None:
        self._providers.append(provider)
        self._twin_tds.clear()

    @property
    def form_providers(self) -> tuple[FormProvider, ...]:
        """The bindings' form providers, for the TDs the hub builds besides twin TDs."""
        return tuple(self._providers)

    def remove_form_provider(self, provider: FormProvider) -> None:
        self._providers.remove(provider)
        self._twin_tds.clear()

    # -- directory ---------------------------------------------------------------------

    def update_thing(
        self, td: Any, owner: str | None, *, keep_owner: bool = False
    ) -> tuple[ThingRecord, bool]:
        """Register or replace a TD; returns the record and whether it is new."""
        thing_id = td.get("id") if isinstance(td, dict) else None
        before = self.directory.get(thing_id) if isinstance(thing_id, str) else None
        record, created = self.directory.put(td, owner, keep_owner=keep_owner)
        self._td_changed(record, created, before)
        return record, created

    def patch_thing(
        self, thing_id: str, patch: Any, owner: str | None, *, keep_owner: bool = False
    ) -> ThingRecord:
        before = self.directory.get(thing_id)
        record = self.directory.patch(thing_id, patch, owner, keep_owner=keep_owner)
        self._td_changed(record, False, before)
        return record

    def delete_thing(
        self, thing_id: str, owner: str | None, *, keep_owner: bool = False
    ) -> ThingRecord:
        record = self.directory.delete(thing_id, owner, keep_owner=keep_owner)
        self._thing_gone(record)
        return record

    def thing(self, thing_id: str) -> ThingRecord | None:
        return self.directory.get(thing_id)

    def owner_of(self, thing_id: str) -> str | None:
        twin = self.twins.peek(thing_id)
        if twin is not None:
            return twin.owner
        record = self.directory.get(thing_id)
        return record.owner if record else None

    def twin_td(self, thing_id: str) -> dict[str, Any] | None:
        """The TD consumers see, with the hub's forms (built once per change)."""
        cached = self._twin_tds.get(thing_id)
        if cached is not None:
            return cached
        twin = self.twins.get(thing_id)
        if twin is None:
            return None
        built = self._twin_tds[thing_id] = build_twin_td(twin.td, self._providers)
        return built

    def list_things(
        self, offset: int = 0, limit: int | None = None, *, enriched: bool = False
    ) -> Iterator[dict[str, Any]]:
        """Twin TDs in id order, built one at a time (no twin is loaded); ``enriched``
        adds the directory's registration information (WoT Discovery)."""
        for record in self.directory.records(offset, limit):
            td = self._twin_tds.get(record.thing_id) or build_twin_td(record.td, self._providers)
            yield enriched_td(td, record.registration()) if enriched else td

    def twins_after(
        self, after: str | None, limit: int
    ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """Up to ``limit`` Things in id order after the id ``after`` (None: from the
        first), each as its twin TD and its properties' latest values (write-only ones
        never have one); read without loading or caching a twin, so a walk over every
        Thing (e.g. at start) leaves the twin cache as it was."""
        out = []
        for record in self.directory.records_after(after, limit):
            thing_id = record.thing_id
            td = self._twin_tds.get(thing_id) or build_twin_td(record.td, self._providers)
            active = self.twins.peek(thing_id)
            reported = active.properties if active else self.twins.stored_properties(thing_id)
            affordances = record.td.get("properties") or {}
            values = {
                name: entry["value"]
                for name, entry in reported.items()
                if "value" in entry
                and isinstance(affordances.get(name), dict)
                and not affordances[name].get("writeOnly")
            }
            out.append((td, values))
        return out

    def enriched_td(self, thing_id: str) -> dict[str, Any] | None:
        """The twin TD with its registration information, as the directory serves it."""
        record = self.directory.get(thing_id)
        if record is None:
            return None
        td = self.twin_td(thing_id)
        return None if td is None else enriched_td(td, record.registration())

    def count_things(self) -> int:
        return self.directory.count()

    def search_things(self, query: str) -> list[Any]:
        """RFC 9535 JSONPath over the enriched twin TDs (as the directory serves them)."""
        return search(query, self.list_things(enriched=True))

    def things_of(self, owner: str) -> list[str]:
        return self.directory.things_of(owner)

    def enriched_tds(self, records: Iterable[ThingRecord]) -> Iterator[dict[str, Any]]:
        """The enriched twin TDs of these directory records (a selection's), built one
        at a time as ``list_things`` builds them (no twin is loaded)."""
        for record in records:
            td = self._twin_tds.get(record.thing_id) or build_twin_td(record.td, self._providers)
            yield enriched_td(td, record.registration())

    def purge_expired_things(self, now: float | None = None) -> list[ThingRecord]:
        purged = self.directory.purge_expired(now)
        for record in purged:
            self._thing_gone(record)
        return purged

    def _td_changed(
        self, record: ThingRecord, created: bool, before: ThingRecord | None = None
    ) -> None:
        self._twin_tds.pop(record.thing_id, None)
        twin = self.twins.peek(record.thing_id)
        if twin is not None:
            twin.td, twin.owner = record.td, record.owner
            twin.checkers.clear()
        change: dict[str, Any] = {"created": created}
        if before is not None:  # what changed, as a merge patch (WoT Discovery's diff)
            change["diff"] = merge_diff(before.td, record.td)
        self._emit(ops.UPDATE_THING, record.thing_id, value=change)

    def _thing_gone(self, record: ThingRecord) -> None:
        thing_id = record.thing_id
        self._twin_tds.pop(thing_id, None)
        self.twins.forget(thing_id)
        self.history.forget(thing_id)
        for cancelled in self.requests.cancel_all_for_thing(
            thing_id, f"Thing {thing_id} was removed from the directory"
        ):
            self._emit_request(cancelled)
        # The former owner: who may see this, now that the directory has forgotten it.
        self._emit(ops.DELETE_THING, thing_id, value={"owner": record.owner})

    # -- values ------------------------------------------------------------------------

    def report_property(
        self, thing_id: str, name: str, value: Any, timestamp: str | None = None
    ) -> dict[str, Any]:
        """An agent reports a property value; it is checked against the property's schema."""
        twin = self._twin(thing_id)
        _check(twin, "properties", name, value)
        if twin.td["properties"][name].get("writeOnly"):  # _check found the affordance
            raise BadRequest(
                f"property {name!r} of {thing_id} is write-only: the hub keeps no value of it"
            )
        entry = {"value": value, "timestamp": timestamp or clock.rfc3339_now()}
        twin.properties[name] = entry
        self.twins.mark_dirty(twin)
        self.history.append(thing_id, PROPERTY, name, value, entry["timestamp"])
        self._emit(ops.OBSERVE_PROPERTY, thing_id, name, value=value, timestamp=entry["timestamp"])
        return entry

    def report_event(
        self, thing_id: str, name: str, value: Any = ABSENT, timestamp: str | None = None
    ) -> dict[str, Any]:
        twin = self._twin(thing_id)
        _affordance(twin, "events", name)
        if value is not ABSENT:
            _check(twin, "events", name, value)
        entry: dict[str, Any] = {
            "value": None if value is ABSENT else value,
            "timestamp": timestamp or clock.rfc3339_now(),
        }
        twin.events[name] = entry
        self.twins.mark_dirty(twin)
        self.history.append(thing_id, EVENT, name, entry["value"], entry["timestamp"])
        self._emit(ops.SUBSCRIBE_EVENT, thing_id, name, value=value, timestamp=entry["timestamp"])
        return entry

    def read_property(self, thing_id: str, name: str) -> dict[str, Any]:
        """{"value", "timestamp"} as last reported, plus "desired" while a write waits.

        A property never reported has no "value"."""
        twin = self._twin(thing_id)
        if _affordance(twin, "properties", name).get("writeOnly"):
            raise MethodNotAllowed(
                f"property {name!r} of {thing_id} is write-only: it cannot be read or observed",
                thingID=thing_id,
                allow=["writeproperty"],
            )
        out = dict(twin.properties.get(name, {}))
        if name in twin.desired:
            out["desired"] = twin.desired[name]
        return out

    def read_all_properties(self, thing_id: str) -> dict[str, dict[str, Any]]:
        """Every property but the write-only ones."""
        twin = self._twin(thing_id)
        properties = twin.td.get("properties") or {}
        return {
            name: self.read_property(thing_id, name)
            for name, affordance in properties.items()
            if not (isinstance(affordance, dict) and affordance.get("writeOnly"))
        }

    def query_history(
        self, thing_id: str, kind: str, name: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        """A page of one property's or event's history (``kind`` property or event):
        ``digitwin.history_query``. It sees every value reported before it."""
        query = parse_query(params)
        twin = self._twin(thing_id)
        member = "properties" if kind == "property" else "events"
        _affordance(twin, member, name)
        self.history.flush()
        return run_query(self.history, series_prefix(thing_id, KINDS[kind], name), query)

    def read_event(self, thing_id: str, name: str) -> dict[str, Any]:
        twin = self._twin(thing_id)
        _affordance(twin, "events", name)
        return dict(twin.events.get(name, {}))

    # -- actions and property writes ---------------------------------------------------

    def request(
        self,
        operation: str,
        thing_id: str,
        name: str,
        data: Any,
        sender_id: str,
        *,
        correlation_id: str | None = None,
        ttl: float | None = None,
    ) -> Record:
        """Record an ``invokeaction`` or ``writeproperty`` for the Thing's agent (written
        through before this returns)."""
        self._check_request(operation, thing_id, name, data)
        record = self.requests.add(
            operation, thing_id, name, sender_id, data, correlation_id=correlation_id, ttl=ttl
        )
        self._recorded(record)
        return record

    def request_many(
        self,
        operation: str,
        thing_ids: Iterable[str],
        name: str,
        data: Any,
        sender_id: str,
        *,
        ttl: float | None = None,
        delivered: Container[str] = (),
    ) -> tuple[list[Record], dict[str, Problem]]:
        """``request`` on many Things at once (a group's members): each checked as
        ``request`` checks it, the refused ones returned with their problem, the others
        recorded together (``RequestQueue.add_many``; ``delivered``: stored as delivered,
        and announced as ``update_request`` announces a delivery)."""
        refused: dict[str, Problem] = {}
        accepted = []
        for thing_id in thing_ids:
            try:
                self._check_request(operation, thing_id, name, data)
            except Problem as problem:
                refused[thing_id] = problem
            else:
                accepted.append(thing_id)
        records = self.requests.add_many(
            operation, accepted, name, sender_id, data, delivered=delivered, ttl=ttl
        )
        for record in records:
            self._recorded(record)
            if record.status == DELIVERED:
                self._emit_request(record)
        return records, refused

    def _recorded(self, record: Record) -> None:
        """What follows a new request's record (``request``, ``request_many``)."""
        if record.operation == ops.WRITE_PROPERTY:
            twin = self._twin(record.thing_id)
            twin.desired[record.name] = _desired(record)
            self._emit_state(twin, record.name)

    def _check_request(self, operation: str, thing_id: str, name: str, data: Any) -> None:
        if operation == ops.INVOKE_ACTION:
            self.check_action_input(thing_id, name, data)
        elif operation == ops.WRITE_PROPERTY:
            self.check_write(thing_id, name, data)
        else:
            raise BadRequest(f"{operation} is not queued for agents")

    def check_write(self, thing_id: str, name: str, data: Any) -> None:
        """Refuse (BadRequest, NotFound) a value the property does not take."""
        twin = self._twin(thing_id)
        affordance = _affordance(twin, "properties", name)
        if affordance.get("readOnly"):
            raise BadRequest(f"property {name!r} of {thing_id} is read-only")
        if data is ABSENT:
            raise BadRequest(f"writeproperty {name!r} needs a value")
        _check(twin, "properties", name, data)

    def check_action_input(self, thing_id: str, name: str, data: Any) -> None:
        """Refuse (BadRequest, NotFound) an input that the action's schema does not take."""
        twin = self._twin(thing_id)
        affordance = _affordance(twin, "actions", name)
        if data is not ABSENT:
            _check(twin, "actions", name, data)
        elif _needs_input(affordance.get("input")):
            raise BadRequest(f"action {name!r} of {thing_id} needs an input")

    def get_request(self, record_id: str) -> Record:
        record = self.requests.get(record_id)
        if record is None:
            raise NotFound(f"no action or write {record_id}", actionID=record_id)
        return record

    def requests_of(self, thing_id: str, name: str | None = None) -> list[Record]:
        return self.requests.for_thing(thing_id, name)

    def open_requests_of_agent(self, agent_id: str) -> list[Record]:
        """Everything not finished for the agent's Things, in order per Thing."""
        return [
            record
            for thing_id in self.directory.things_of(agent_id)
            for record in self.requests.open_for_thing(thing_id)
        ]

    def update_request(
        self,
        record: Record,
        status: str,
        *,
        output: Any = ABSENT,
        error: dict[str, Any] | None = None,
        if_status: str | None = None,
    ) -> Record:
        """Move a record along its state machine (delivery, agent progress, cancel);
        with ``if_status``, only from that state (``RequestQueue.update``)."""
        record = self.requests.update(
            record, status, output=output, error=error, if_status=if_status
        )
        if record.status in TERMINAL and record.operation == ops.WRITE_PROPERTY:
            self._write_ended(record)
        self._emit_request(record)
        return record

    def expire_requests(self, now: float | None = None) -> list[Record]:
        expired = self.requests.expire_due(now)
        for record in expired:
            if record.operation == ops.WRITE_PROPERTY:
                self._write_ended(record)
            self._emit_request(record)
        return expired

    def _write_ended(self, record: Record) -> None:
        """A write ended: it is no longer desired; refused, it is the declined one, and
        accepted, nothing is declined any more. Observers of the state are told."""
        twin = self.twins.get(record.thing_id)
        if twin is None:
            return
        if twin.desired.get(record.name, {}).get("id") == record.id:
            del twin.desired[record.name]
        if twin.declined is not None:
            _follow_declined(twin.declined, record)
        self._emit_state(twin, record.name)

    # -- the state document and configuration restore -----------------------------------

    def read_state(self, thing_id: str) -> dict[str, Any]:
        """The Thing's state document (digitwin/state.py): per property reported,
        desired and declined, and the delta."""
        twin = self._twin(thing_id)
        return state_document(
            thing_id,
            {name: self._property_state(twin, name) for name in twin.td.get("properties") or {}},
        )

    def restore_configuration(self, thing_id: str, sender_id: str) -> list[Record]:
        """Queue, for a Thing whose TD asks for it, the last values of its writable
        properties that have no write waiting (``state.restore_values``); a value its
        TD no longer takes is skipped. Returns the writes queued (not delivered)."""
        setting = self.restore_setting(thing_id)
        record = self.directory.get(thing_id)  # asked before a twin is loaded
        twin = self.twins.get(thing_id) if record and restores(record.td, setting) else None
        if twin is None:
            return []
        # One read of the Thing's records serves the open writes, the ended ones and
        # (for the state notes of the writes queued below) the declined ones.
        retained = self.requests.for_thing(thing_id)
        queued = {r.name for r in retained if r.operation == ops.WRITE_PROPERTY and not r.final}
        ended = last_ended_writes(retained)
        if twin.declined is None:
            twin.declined = declined_writes(retained)
        records = []
        restoring = restore_values(twin.td, twin.properties, ended, queued, setting)
        for name, value in restoring.items():
            try:
                records.append(self.request(ops.WRITE_PROPERTY, thing_id, name, value, sender_id))
            except BadRequest:
                continue  # the TD changed since: the value is no longer one it takes
        return records

    def restore_setting(self, thing_id: str) -> bool | None:
        """The administrators' restore setting of a Thing: True or False wins over its
        TD's ``wothub:restoreConfiguration``; None, there is none."""
        stored = self._restore_settings.get(thing_id)
        return None if stored is None else stored == b"true"

    def set_restore_setting(self, thing_id: str, setting: bool | None) -> None:
        """Set (None: remove) the administrators' restore setting of a Thing, which may
        not be registered yet."""
        if setting is None:
            self._restore_settings.delete(thing_id)
        else:
            self._restore_settings.set(thing_id, b"true" if setting else b"false")

    def _property_state(self, twin: Twin, name: str) -> dict[str, Any]:
        if twin.declined is None:
            twin.declined = declined_writes(self.requests.for_thing(twin.thing_id))
        return property_state(
            twin.properties.get(name), twin.desired.get(name), twin.declined.get(name)
        )

    def _emit_state(self, twin: Twin, name: str) -> None:
        """Tell observers of the state that a property's desired or declined changed."""
        self._emit(ops.OBSERVE_STATE, twin.thing_id, name, value=self._property_state(twin, name))

    def next_deadline(self) -> float | None:
        """The next time a request or a TD expires, if any."""
        times = [t for t in (self.requests.next_expiry(), self.directory.next_expiry()) if t]
        return min(times) if times else None

    def _emit_request(self, record: Record) -> None:
        """Announce a request's new state to whoever subscribed to its Thing's actions."""
        self._emit(ops.QUERY_ACTION, record.thing_id, record.name, value=record.to_status())

    # -- presence ------------------------------------------------------------------------

    def set_presence(self, agent_id: str, online: bool) -> list[str]:
        """This node's connection of an agent came or went; returns the ids of its
        Things (notified) when that changed anything."""
        if not self.agent_presence.mark(agent_id, online):
            return []
        return self._announce_presence(agent_id)

    def node_gone(self, node: str, seen: float | None = None) -> list[str]:
        """A cluster node died (its lease ran out; ``seen``: when it was last alive):
        its agents' connections are gone. The node that takes them out of the store
        announces each agent whose presence changed; returns those agents."""
        agents = self.agent_presence.remove_node(node, seen)
        for agent_id in agents:
            self._announce_presence(agent_id)
        return agents

    def _announce_presence(self, agent_id: str) -> list[str]:
        things = self.directory.things_of(agent_id)
        status = self.agent_presence.status(agent_id)
        for thing_id in things:
            self._emit(ops.UPDATE_PRESENCE, thing_id, value=status)
        return things

    def presence(self, thing_id: str) -> dict[str, Any]:
        """{"online": bool, "lastSeen": RFC 3339 or absent} of the Thing's agent."""
        owner = self.owner_of(thing_id)
        if owner is None:
            return {"online": False}
        return self.agent_presence.status(owner)

    # -- housekeeping ------------------------------------------------------------------

    def flush(self) -> int:
        """Write every changed twin's values (the write-behind batch), then the values
        appended to the history since (docs/history.md); returns the twins written."""
        written = self.twins.flush()
        self.history.flush()
        return written

    def set_history_setting(self, thing_id: str, setting: ThingHistory | None) -> None:
        """The administrators' history setting of a Thing (None: remove it)."""
        self.history.set_setting(thing_id, setting)

    def prune_history(self, budget: int = 10_000, now: float | None = None) -> int:
        """A bounded step of the history's retention sweep (``History.prune``)."""
        return self.history.prune(budget, now)

    def unload_idle(self, now: float | None = None) -> int:
        for twin_id in [t for t in self._twin_tds if self.twins.peek(t) is None]:
            del self._twin_tds[twin_id]
        return self.twins.unload_idle(now)

    def stats(self) -> TwinStats:
        return self.twins.stats()

    def close(self) -> None:
        self.flush()
        self.history.close()  # cluster mode: the minutes still filling too (history.md)

    # -- internals -----------------------------------------------------------------------

    def _twin(self, thing_id: str) -> Twin:
        twin = self.twins.get(thing_id) if thing_id else None
        if twin is None:
            raise NotFound(f"no Thing {thing_id}", thingID=thing_id)
        return twin

    def _load_twin(self, thing_id: str, stored_values: bytes | None) -> Twin | None:
        record = self.directory.get(thing_id)
        if record is None:
            return None
        properties, events = Twin.parse_values(stored_values)
        desired = {
            r.name: _desired(r)
            for r in self.requests.open_for_thing(thing_id)
            if r.operation == ops.WRITE_PROPERTY
        }
        return Twin(thing_id, record.owner, record.td, properties, events, desired)

    def _emit(
        self,
        operation: str,
        thing_id: str,
        name: str | None = None,
        *,
        value: Any = ABSENT,
        timestamp: str = "",
    ) -> None:
        self._notify(
            Message(NOTIFICATION, operation, thing_id, name, value=value, timestamp=timestamp)
        )


def _needs_input(schema: Any) -> bool:
    """An action needs an input unless it has none, or an object with nothing required."""
    if not schema:
        return False
    return not (schema.get("type") == "object" and not schema.get("required"))


def _affordance(twin: Twin, member: str, name: str) -> dict[str, Any]:
    affordance = (twin.td.get(member) or {}).get(name)
    if not isinstance(affordance, dict):
        kind = AFFORDANCE_KINDS[member]
        raise NotFound(f"Thing {twin.thing_id} has no {kind} {name!r}", thingID=twin.thing_id)
    return affordance


# Where each kind of affordance keeps the schema of the data it carries.
_DATA_SCHEMA = {
    "properties": lambda affordance: affordance,  # a property affordance is a data schema
    "actions": lambda affordance: affordance.get("input"),
    "events": lambda affordance: affordance.get("data"),
}
_WHAT = {"properties": "property {!r}", "actions": "input of action {!r}", "events": "event {!r}"}


def _check(twin: Twin, member: str, name: str, value: Any) -> None:
    """Check ``value`` against the affordance's data schema (compiled once per TD)."""
    checker = twin.checkers.get((member, name))
    if checker is None:
        schema = _DATA_SCHEMA[member](_affordance(twin, member, name)) or {}
        try:
            checker = compile_data_schema(schema)
        except ValidationError as exc:
            raise BadRequest(f"the TD's schema for {name!r} is unusable: {exc}") from None
        twin.checkers[(member, name)] = checker
    try:
        checker(value)
    except ValidationError as exc:
        raise BadRequest(
            f"{_WHAT[member].format(name)} does not match its schema: {exc}",
            validationErrors=[error.as_dict() for error in exc.errors],
        ) from None


def _follow_declined(declined: dict[str, dict[str, Any]], record: Record) -> None:
    """A write that ended: refused, it is its property's declined one; accepted, nothing
    is declined any more. Expired and cancelled writes change nothing."""
    if record.status == FAILED:
        declined[record.name] = declined_entry(record)
    elif record.status == COMPLETED:
        declined.pop(record.name, None)


def _desired(record: Record) -> dict[str, Any]:
    return {
        "value": record.input,
        "timestamp": clock.rfc3339(record.time_requested),
        "senderID": record.sender_id,
        "id": record.id,
    }
