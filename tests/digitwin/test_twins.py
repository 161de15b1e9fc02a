"""The twin cache: a bounded LRU of active twins over the real LevelDB store."""

from pathlib import Path
from typing import Any

import orjson
import pytest

from bucketstore import Bucket, BucketStore, open_store
from digitwin.directory import Directory
from digitwin.twins import Twin, TwinCache, TwinStats
from digitwin.validation import validate_td
from tests.support.tds import sensor_td
from vocabulary import clock

T0 = 1_600_000_000.0
A, B, C, D = (f"urn:dev:ops:sensor-{n}" for n in "abcd")


class DirectoryLoader:
    """Builds twins from the TDs in a real directory, as the DigiTwin facade does;
    remembers which Things it was asked for."""

    def __init__(self, directory: Directory) -> None:
        self.directory = directory
        self.calls: list[str] = []

    def __call__(self, thing_id: str, stored_values: bytes | None) -> Twin | None:
        self.calls.append(thing_id)
        record = self.directory.get(thing_id)
        if record is None:
            return None
        properties, events = Twin.parse_values(stored_values)
        return Twin(thing_id, record.owner, record.td, properties, events, {})


@pytest.fixture
def values(store: BucketStore) -> Bucket:
    return store.bucket("values")


@pytest.fixture
def loader(store: BucketStore) -> DirectoryLoader:
    directory = Directory(store.bucket("things"), validate_td)
    for thing_id in (A, B, C, D):
        directory.put(sensor_td(thing_id), "agent-1")
    return DirectoryLoader(directory)


@pytest.fixture
def cache(values: Bucket, loader: DirectoryLoader) -> TwinCache:
    return TwinCache(values, loader, max_active=3, idle_timeout=60.0)


def report(cache: TwinCache, twin: Twin, value: float) -> None:
    twin.properties["t"] = {"value": value, "timestamp": clock.rfc3339(T0)}
    cache.mark_dirty(twin)


def stored_t(values: Bucket, thing_id: str) -> Any:
    properties, _ = Twin.parse_values(values.get(thing_id))
    return properties.get("t", {}).get("value")


# --- loading ------------------------------------------------------------------------------------


def test_first_get_loads_the_twin(cache: TwinCache, loader: DirectoryLoader) -> None:
    twin = cache.get(A)
    assert (twin.thing_id, twin.owner, twin.td["title"]) == (A, "agent-1", "Sensor")
    assert loader.calls == [A]


def test_later_gets_are_served_from_memory(cache: TwinCache, loader: DirectoryLoader) -> None:
    first = cache.get(A)
    assert cache.get(A) is first
    assert cache.get(A) is first
    assert loader.calls == [A]
    assert cache.stats().loaded == 1


def test_get_of_an_unknown_thing_is_none(cache: TwinCache) -> None:
    assert cache.get("urn:dev:ops:nothing") is None
    assert cache.stats() == TwinStats(active=0, loaded=0, unloaded=0, dirty=0)


def test_get_passes_the_stored_values_to_load(cache: TwinCache, values: Bucket) -> None:
    values.set(A, orjson.dumps({"properties": {"t": {"value": 21.5}}, "events": {}}))
    assert cache.get(A).properties == {"t": {"value": 21.5}}


def test_get_marks_the_twin_used_now(cache: TwinCache) -> None:
    before = clock.now()
    twin = cache.get(A)
    assert before <= twin.last_used <= clock.now()


def test_peek_neither_loads_nor_counts_a_use(cache: TwinCache, loader: DirectoryLoader) -> None:
    assert cache.peek(A) is None
    twin = cache.get(A)
    twin.last_used = T0
    assert cache.peek(A) is twin
    assert twin.last_used == T0
    assert loader.calls == [A]


def test_max_active_must_be_positive(values: Bucket, loader: DirectoryLoader) -> None:
    with pytest.raises(ValueError):
        TwinCache(values, loader, max_active=0)


# --- eviction -----------------------------------------------------------------------------------


def test_cap_evicts_the_least_recently_used(cache: TwinCache) -> None:
    cache.get(A)
    cache.get(B)
    cache.get(C)
    cache.get(A)  # B is now the least recently used
    cache.get(D)
    assert cache.peek(B) is None
    assert all(cache.peek(thing_id) is not None for thing_id in (A, C, D))
    assert cache.stats().active == 3


def test_evicted_dirty_twin_is_written_before_it_is_dropped(
    cache: TwinCache, values: Bucket
) -> None:
    report(cache, cache.get(A), 21.5)
    for thing_id in (B, C, D):
        cache.get(thing_id)
    assert cache.peek(A) is None
    assert stored_t(values, A) == 21.5
    assert cache.stats().dirty == 0


def test_evicted_twin_comes_back_with_its_values(cache: TwinCache, loader: DirectoryLoader) -> None:
    report(cache, cache.get(A), 21.5)
    for thing_id in (B, C, D):
        cache.get(thing_id)
    assert cache.get(A).properties["t"]["value"] == 21.5
    assert loader.calls.count(A) == 2


def test_evicted_clean_twin_is_not_written(cache: TwinCache, values: Bucket) -> None:
    for thing_id in (A, B, C, D):
        cache.get(thing_id)
    assert cache.peek(A) is None
    assert values.get(A) is None


# --- flushing -----------------------------------------------------------------------------------


def test_flush_writes_every_dirty_twin_and_counts_them(cache: TwinCache, values: Bucket) -> None:
    for n, thing_id in enumerate((A, B, C)):
        report(cache, cache.get(thing_id), float(n))
    assert cache.flush() == 3
    assert [stored_t(values, thing_id) for thing_id in (A, B, C)] == [0.0, 1.0, 2.0]
    assert cache.stats().dirty == 0


def test_flush_with_nothing_dirty_writes_nothing(cache: TwinCache, values: Bucket) -> None:
    cache.get(A)
    assert cache.flush() == 0
    assert values.get(A) is None


def test_twin_marked_dirty_twice_is_written_once(cache: TwinCache) -> None:
    twin = cache.get(A)
    report(cache, twin, 1.0)
    report(cache, twin, 2.0)
    assert cache.stats().dirty == 1
    assert cache.flush() == 1


def test_second_flush_writes_only_what_changed_since(cache: TwinCache) -> None:
    report(cache, cache.get(A), 1.0)
    cache.flush()
    report(cache, cache.get(B), 2.0)
    assert cache.flush() == 1


def test_flushed_values_survive_reopening_the_store(store_path: Path) -> None:
    with open_store(store_path) as store:
        directory = Directory(store.bucket("things"), validate_td)
        directory.put(sensor_td(A), "agent-1")
        cache = TwinCache(store.bucket("values"), DirectoryLoader(directory))
        report(cache, cache.get(A), 21.5)
        cache.flush()
    with open_store(store_path) as store:
        directory = Directory(store.bucket("things"), validate_td)
        cache = TwinCache(store.bucket("values"), DirectoryLoader(directory))
        assert cache.get(A).properties["t"]["value"] == 21.5


def test_flush_keeps_desired_values_out_of_the_store(cache: TwinCache, values: Bucket) -> None:
    twin = cache.get(A)
    twin.desired["t"] = {"value": 5, "timestamp": clock.rfc3339(T0), "id": "w-1"}
    report(cache, twin, 1.0)
    cache.flush()
    assert set(orjson.loads(values.get(A))) == {"properties", "events"}


# --- idle twins ---------------------------------------------------------------------------------


@pytest.fixture
def used_at_different_times(cache: TwinCache) -> TwinCache:
    """A used at T0, B at T0 + 50, C at T0 + 100 (least recently used first)."""
    for thing_id, used in ((A, T0), (B, T0 + 50), (C, T0 + 100)):
        cache.get(thing_id).last_used = used
    return cache


def test_unload_idle_unloads_only_twins_idle_longer_than_the_timeout(
    used_at_different_times: TwinCache,
) -> None:
    cache = used_at_different_times
    assert cache.unload_idle(now=T0 + 100) == 1  # idle timeout 60: only A (100 s idle)
    assert cache.peek(A) is None
    assert cache.peek(B) is not None and cache.peek(C) is not None


def test_unload_idle_keeps_a_twin_idle_exactly_the_timeout(
    used_at_different_times: TwinCache,
) -> None:
    assert used_at_different_times.unload_idle(now=T0 + 110) == 1  # B idle exactly 60 s
    assert used_at_different_times.peek(B) is not None


def test_unload_idle_can_unload_every_twin(used_at_different_times: TwinCache) -> None:
    assert used_at_different_times.unload_idle(now=T0 + 1000) == 3
    assert used_at_different_times.stats().active == 0


def test_unload_idle_writes_a_dirty_idle_twin(cache: TwinCache, values: Bucket) -> None:
    twin = cache.get(A)
    report(cache, twin, 7.0)
    twin.last_used = T0
    cache.unload_idle(now=T0 + 61)
    assert stored_t(values, A) == 7.0


def test_unload_idle_with_nothing_idle_unloads_nothing(cache: TwinCache) -> None:
    cache.get(A)
    assert cache.unload_idle() == 0
    assert cache.peek(A) is not None


# --- forget -------------------------------------------------------------------------------------


def test_forget_drops_the_twin_and_its_stored_values(cache: TwinCache, values: Bucket) -> None:
    report(cache, cache.get(A), 1.0)
    cache.flush()
    report(cache, cache.get(A), 2.0)
    cache.forget(A)
    assert cache.peek(A) is None
    assert values.get(A) is None
    assert cache.stats().dirty == 0
    assert cache.flush() == 0
    assert values.get(A) is None


def test_forget_of_an_inactive_twin_removes_its_stored_values(
    cache: TwinCache, values: Bucket
) -> None:
    values.set(A, orjson.dumps({"properties": {"t": {"value": 1.0}}, "events": {}}))
    cache.forget(A)
    assert values.get(A) is None


# --- stats --------------------------------------------------------------------------------------


def test_stats_follow_loads_unloads_and_dirty_twins(cache: TwinCache) -> None:
    assert cache.stats() == TwinStats(active=0, loaded=0, unloaded=0, dirty=0)
    for thing_id in (A, B, C):
        cache.get(thing_id)
    report(cache, cache.peek(B), 1.0)
    assert cache.stats() == TwinStats(active=3, loaded=3, unloaded=0, dirty=1)
    cache.get(D)  # evicts A
    assert cache.stats() == TwinStats(active=3, loaded=4, unloaded=1, dirty=1)
    cache.flush()
    assert cache.stats() == TwinStats(active=3, loaded=4, unloaded=1, dirty=0)
    cache.get(A)  # loads A again, evicts B
    assert cache.stats() == TwinStats(active=3, loaded=5, unloaded=2, dirty=0)
    assert cache.unload_idle(now=clock.now() + 3600) == 3
    assert cache.stats() == TwinStats(active=0, loaded=5, unloaded=5, dirty=0)
