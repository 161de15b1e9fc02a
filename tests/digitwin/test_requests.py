"""Queued action and property-write records on the real LevelDB store."""

from pathlib import Path
from typing import Any

import pytest

from bucketstore import BucketStore, open_store
from digitwin.requests import Record, RequestQueue
from vocabulary import clock
from vocabulary.envelope import (
    ABSENT,
    CANCELLED,
    COMPLETED,
    DELIVERED,
    EXPIRED,
    FAILED,
    PENDING,
    RUNNING,
)
from vocabulary.problems import Conflict

LAMP = "urn:dev:ops:lamp-1"
FAN = "urn:dev:ops:fan-1"
T0 = 1_600_000_000.0


@pytest.fixture
def queue(store: BucketStore) -> RequestQueue:
    return RequestQueue(store.bucket("requests"), retention=50.0)


def invoke(queue: RequestQueue, thing_id: str = LAMP, name: str = "toggle", **kw: Any) -> Record:
    kw.setdefault("now", T0)
    return queue.add("invokeaction", thing_id, name, "consumer-1", {"on": True}, **kw)


def ids(records: list[Record]) -> list[str]:
    return [record.id for record in records]


# --- add and durability -------------------------------------------------------------------------


def test_add_creates_a_pending_record(queue: RequestQueue) -> None:
    record = invoke(queue, ttl=30, correlation_id="c-1")
    assert record.status == PENDING
    assert (record.thing_id, record.name, record.sender_id) == (LAMP, "toggle", "consumer-1")
    assert record.input == {"on": True}
    assert (record.time_requested, record.expires) == (T0, T0 + 30)
    assert record.correlation_id == "c-1"
    assert record.deliveries == 0


def test_add_without_ttl_uses_the_default(store: BucketStore) -> None:
    queue = RequestQueue(store.bucket("requests"), default_ttl=120.0)
    assert invoke(queue).expires == T0 + 120


def test_add_with_a_ttl_that_is_not_positive_is_refused(queue: RequestQueue) -> None:
    with pytest.raises(ValueError):
        invoke(queue, ttl=0)
    assert queue.open_for_thing(LAMP) == []


def test_each_record_gets_its_own_id(queue: RequestQueue) -> None:
    assert len({invoke(queue).id for _ in range(20)}) == 20


def test_get_returns_what_add_wrote(queue: RequestQueue) -> None:
    record = invoke(queue)
    assert queue.get(record.id) == record


def test_get_of_an_unknown_id_is_none(queue: RequestQueue) -> None:
    assert queue.get("no-such-record") is None


def test_add_writes_through_without_a_flush(store_path: Path) -> None:
    store = open_store(store_path)
    record = invoke(RequestQueue(store.bucket("requests")))
    store.close()
    with open_store(store_path) as reopened:
        queue = RequestQueue(reopened.bucket("requests"))
        assert queue.get(record.id) == record
        assert ids(queue.open_for_thing(LAMP)) == [record.id]


def test_update_writes_through(store_path: Path) -> None:
    store = open_store(store_path)
    queue = RequestQueue(store.bucket("requests"))
    record = queue.update(invoke(queue), COMPLETED, output=42, now=T0 + 1)
    store.close()
    with open_store(store_path) as reopened:
        stored = RequestQueue(reopened.bucket("requests")).get(record.id)
        assert (stored.status, stored.output, stored.time_ended) == (COMPLETED, 42, T0 + 1)


def test_absent_input_stays_absent_and_null_input_stays_null(queue: RequestQueue) -> None:
    absent = queue.add("invokeaction", LAMP, "toggle", "consumer-1", now=T0)
    null = queue.add("invokeaction", LAMP, "toggle", "consumer-1", None, now=T0)
    assert queue.get(absent.id).input is ABSENT
    assert queue.get(null.id).input is None


def test_sequence_continues_after_reopening(store_path: Path) -> None:
    store = open_store(store_path)
    queue = RequestQueue(store.bucket("requests"))
    first, second = invoke(queue), invoke(queue)
    store.close()
    with open_store(store_path) as reopened:
        queue = RequestQueue(reopened.bucket("requests"))
        third = invoke(queue)
        assert third.seq > second.seq > first.seq
        assert ids(queue.open_for_thing(LAMP)) == [first.id, second.id, third.id]
        assert ids(queue.for_thing(LAMP)) == [third.id, second.id, first.id]


def test_add_many_numbers_one_record_a_thing_after_the_others(store_path: Path) -> None:
    """A group's requests: one record per Thing, numbered in order after the records
    queued before them and before those queued after; written through (durable before
    add_many returns); those of connected agents' Things stored delivered."""
    store = open_store(store_path)
    queue = RequestQueue(store.bucket("requests"))
    before = invoke(queue, FAN)
    many = queue.add_many(
        "writeproperty", [LAMP, FAN], "level", "manager-1", 80, delivered={FAN}, ttl=30, now=T0
    )
    after = invoke(queue, FAN)
    store.close()
    with open_store(store_path) as reopened:
        queue = RequestQueue(reopened.bucket("requests"))
        lamp, fan = (queue.get(record.id) for record in many)
        assert (lamp, fan) == tuple(many)
        assert before.seq < lamp.seq < fan.seq < after.seq
        assert (lamp.status, lamp.deliveries, fan.status, fan.deliveries) == (
            PENDING,
            0,
            DELIVERED,
            1,
        )
        assert (fan.operation, fan.name, fan.input, fan.sender_id) == (
            "writeproperty",
            "level",
            80,
            "manager-1",
        )
        assert fan.expires == T0 + 30
        assert ids(queue.open_for_thing(FAN)) == [before.id, fan.id, after.id]
        assert ids(queue.open_for_thing(LAMP)) == [lamp.id]


def test_add_many_of_no_things_writes_nothing(queue: RequestQueue) -> None:
    assert queue.add_many("invokeaction", [], "toggle", "consumer-1") == []
    assert invoke(queue).seq == 1


# --- the state machine --------------------------------------------------------------------------


def test_record_goes_from_pending_to_completed(queue: RequestQueue) -> None:
    record = invoke(queue)
    for status in (DELIVERED, RUNNING):
        queue.update(record, status, now=T0 + 1)
        assert queue.get(record.id).status == status
        assert record.time_ended is None
    queue.update(record, COMPLETED, output={"on": False}, now=T0 + 2)
    stored = queue.get(record.id)
    assert (stored.status, stored.output, stored.time_ended) == (COMPLETED, {"on": False}, T0 + 2)
    assert stored.final


def test_pending_record_can_be_cancelled(queue: RequestQueue) -> None:
    record = queue.update(invoke(queue), CANCELLED, now=T0 + 1)
    assert queue.get(record.id).status == CANCELLED
    assert record.time_ended == T0 + 1


def test_running_record_can_fail_with_an_error(queue: RequestQueue) -> None:
    problem = {"title": "Jammed", "status": 500}
    record = invoke(queue)
    queue.update(record, RUNNING)
    queue.update(record, FAILED, error=problem, now=T0 + 3)
    stored = queue.get(record.id)
    assert (stored.status, stored.error) == (FAILED, problem)


def test_completed_record_cannot_run_again(queue: RequestQueue) -> None:
    record = queue.update(invoke(queue), COMPLETED)
    with pytest.raises(Conflict) as info:
        queue.update(record, RUNNING)
    assert info.value.extensions == {"actionID": record.id, "actionStatus": COMPLETED}
    assert queue.get(record.id).status == COMPLETED


def test_expired_record_cannot_complete(queue: RequestQueue) -> None:
    record = invoke(queue, ttl=10)
    (expired,) = queue.expire_due(now=T0 + 10)
    with pytest.raises(Conflict):
        queue.update(expired, COMPLETED, output=1)
    assert queue.get(record.id).status == EXPIRED


def test_running_record_cannot_go_back_to_delivered(queue: RequestQueue) -> None:
    record = queue.update(invoke(queue), RUNNING)
    with pytest.raises(Conflict):
        queue.update(record, DELIVERED)


def test_deliveries_count_delivered_transitions(queue: RequestQueue) -> None:
    record = invoke(queue)
    queue.update(record, DELIVERED)
    queue.update(record, DELIVERED)  # redelivered after the agent reconnected
    assert queue.update(record, RUNNING).deliveries == 2
    assert queue.get(record.id).deliveries == 2


def test_a_claim_holds_only_while_the_record_is_in_the_state_claimed_from(
    queue: RequestQueue,
) -> None:
    """Delivering is a claim (pending -> delivered, if still pending): a second claim
    from the same copy is refused, and the record stays as the first one left it."""
    pending = invoke(queue)
    claimed = queue.update(pending, DELIVERED, if_status=PENDING)
    assert claimed.deliveries == 1
    with pytest.raises(Conflict) as refused:
        queue.update(pending, DELIVERED, if_status=PENDING)
    assert refused.value.extensions["actionStatus"] == DELIVERED
    assert queue.get(pending.id).deliveries == 1


def test_a_stale_copy_cannot_move_a_record_backwards(queue: RequestQueue) -> None:
    stale = invoke(queue)  # still says pending
    queue.update(stale, COMPLETED, output=1)
    with pytest.raises(Conflict):
        queue.update(stale, RUNNING)
    assert queue.get(stale.id).status == COMPLETED


# --- per-Thing views ----------------------------------------------------------------------------


@pytest.fixture
def interleaved(queue: RequestQueue) -> dict[str, Record]:
    """Requests for two Things, arriving interleaved."""
    return {
        "lamp-1": invoke(queue, LAMP, "toggle"),
        "fan-1": invoke(queue, FAN, "spin"),
        "lamp-2": invoke(queue, LAMP, "dim"),
        "fan-2": invoke(queue, FAN, "spin"),
        "lamp-3": invoke(queue, LAMP, "toggle"),
    }


def test_open_for_thing_is_in_arrival_order(
    queue: RequestQueue, interleaved: dict[str, Record]
) -> None:
    lamp = [interleaved[key].id for key in ("lamp-1", "lamp-2", "lamp-3")]
    fan = [interleaved[key].id for key in ("fan-1", "fan-2")]
    assert ids(queue.open_for_thing(LAMP)) == lamp
    assert ids(queue.open_for_thing(FAN)) == fan


def test_open_for_thing_excludes_final_records(
    queue: RequestQueue, interleaved: dict[str, Record]
) -> None:
    queue.update(interleaved["lamp-2"], COMPLETED)
    queue.update(interleaved["lamp-1"], CANCELLED)
    assert ids(queue.open_for_thing(LAMP)) == [interleaved["lamp-3"].id]


def test_open_for_thing_of_an_unknown_thing_is_empty(queue: RequestQueue) -> None:
    assert queue.open_for_thing("urn:dev:ops:nothing") == []


def test_open_for_thing_does_not_mix_things_sharing_an_id_prefix(queue: RequestQueue) -> None:
    record = invoke(queue, LAMP + "0")
    assert queue.open_for_thing(LAMP) == []
    assert ids(queue.open_for_thing(LAMP + "0")) == [record.id]


def test_for_thing_is_newest_first_and_keeps_final_records(
    queue: RequestQueue, interleaved: dict[str, Record]
) -> None:
    queue.update(interleaved["lamp-2"], COMPLETED)
    expected = [interleaved[key].id for key in ("lamp-3", "lamp-2", "lamp-1")]
    assert ids(queue.for_thing(LAMP)) == expected


def test_for_thing_filters_by_name(queue: RequestQueue, interleaved: dict[str, Record]) -> None:
    expected = [interleaved[key].id for key in ("lamp-3", "lamp-1")]
    assert ids(queue.for_thing(LAMP, "toggle")) == expected
    assert ids(queue.for_thing(LAMP, "spin")) == []


def test_cancel_all_for_thing_cancels_only_its_open_records(
    queue: RequestQueue, interleaved: dict[str, Record]
) -> None:
    queue.update(interleaved["lamp-1"], COMPLETED)
    cancelled = queue.cancel_all_for_thing(LAMP, "the Thing was deleted")
    assert ids(cancelled) == [interleaved["lamp-2"].id, interleaved["lamp-3"].id]
    for record in cancelled:
        stored = queue.get(record.id)
        assert stored.status == CANCELLED
        assert stored.error["status"] == 410
        assert stored.error["detail"] == "the Thing was deleted"
    assert queue.get(interleaved["lamp-1"].id).status == COMPLETED
    assert queue.open_for_thing(LAMP) == []
    assert len(queue.open_for_thing(FAN)) == 2


# --- expiry and pruning -------------------------------------------------------------------------


@pytest.fixture
def expiring(queue: RequestQueue) -> list[Record]:
    return [invoke(queue, ttl=ttl) for ttl in (10, 20, 30)]


def test_next_expiry_is_the_soonest_open_record(
    queue: RequestQueue, expiring: list[Record]
) -> None:
    assert queue.next_expiry() == T0 + 10


def test_next_expiry_without_open_records_is_none(queue: RequestQueue) -> None:
    assert queue.next_expiry() is None


def test_expire_due_expires_exactly_the_due_records(
    queue: RequestQueue, expiring: list[Record]
) -> None:
    expired = queue.expire_due(now=T0 + 20)
    assert ids(expired) == ids(expiring[:2])
    assert [queue.get(r.id).status for r in expiring] == [EXPIRED, EXPIRED, PENDING]
    assert ids(queue.open_for_thing(LAMP)) == [expiring[2].id]


def test_expired_record_has_a_timeout_problem(queue: RequestQueue, expiring: list[Record]) -> None:
    queue.expire_due(now=T0 + 15)
    stored = queue.get(expiring[0].id)
    assert stored.error["status"] == 408
    assert stored.error["title"] == "Request Timeout"
    assert stored.time_ended == T0 + 15


def test_next_expiry_moves_on_after_expiring(queue: RequestQueue, expiring: list[Record]) -> None:
    queue.expire_due(now=T0 + 20)
    assert queue.next_expiry() == T0 + 30


def test_expire_due_before_any_expiry_expires_nothing(
    queue: RequestQueue, expiring: list[Record]
) -> None:
    assert queue.expire_due(now=T0 + 9.999) == []
    assert len(queue.open_for_thing(LAMP)) == 3


def test_final_record_is_not_expired(queue: RequestQueue, expiring: list[Record]) -> None:
    queue.update(expiring[0], COMPLETED, now=T0 + 1)
    assert ids(queue.expire_due(now=T0 + 10)) == []
    assert queue.get(expiring[0].id).status == COMPLETED


def test_prune_removes_only_final_records_older_than_retention(queue: RequestQueue) -> None:
    old, recent, still_open = invoke(queue), invoke(queue), invoke(queue, ttl=1000)
    queue.update(old, COMPLETED, now=T0 + 10)
    queue.update(recent, FAILED, now=T0 + 90)
    queue.prune(now=T0 + 100)  # retention 50: what ended before T0 + 50 goes
    assert queue.get(old.id) is None
    assert queue.get(recent.id).status == FAILED
    assert queue.get(still_open.id).status == PENDING
    assert ids(queue.for_thing(LAMP)) == [still_open.id, recent.id]


def test_prune_reports_how_many_records_it_forgot(queue: RequestQueue) -> None:
    for _ in range(2):
        queue.update(invoke(queue), COMPLETED, now=T0 + 10)
    assert queue.prune(now=T0 + 100) == 2


def test_prune_with_nothing_old_enough_removes_nothing(queue: RequestQueue) -> None:
    record = queue.update(invoke(queue), COMPLETED, now=T0 + 10)
    assert queue.prune(now=T0 + 59) == 0
    assert queue.get(record.id) is not None


# --- ActionStatus -------------------------------------------------------------------------------


def test_status_of_a_pending_record(queue: RequestQueue) -> None:
    record = invoke(queue, ttl=60)
    status = record.to_status()
    assert status["status"] == PENDING
    assert status["timeRequested"] == clock.rfc3339(T0)
    assert status["input"] == {"on": True}
    assert "timeEnded" not in status
    assert "output" not in status
    assert "error" not in status


def test_status_of_a_completed_record_has_output_and_time_ended(queue: RequestQueue) -> None:
    record = queue.update(invoke(queue), COMPLETED, output={"on": False}, now=T0 + 2)
    status = record.to_status()
    assert status["status"] == COMPLETED
    assert status["output"] == {"on": False}
    assert status["timeEnded"] == clock.rfc3339(T0 + 2)
    assert "error" not in status


def test_status_of_a_failed_record_has_its_error(queue: RequestQueue) -> None:
    problem = {"title": "Jammed", "status": 500}
    record = queue.update(invoke(queue), FAILED, error=problem, now=T0 + 2)
    status = record.to_status()
    assert (status["status"], status["error"]) == (FAILED, problem)
    assert "output" not in status


def test_status_keeps_a_null_output(queue: RequestQueue) -> None:
    record = queue.update(invoke(queue), COMPLETED, output=None, now=T0 + 2)
    assert queue.get(record.id).to_status()["output"] is None
