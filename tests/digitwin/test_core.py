"""The DigiTwin facade with the real LevelDB store: the twin cache at scale."""

import copy

import pytest

from bucketstore import open_store
from digitwin.core import DigiTwin, TwinConfig
from tests.support.tds import sensor_td
from vocabulary.problems import NotFound

BASE_TD = sensor_td()


def sensor(i):
    td = copy.deepcopy(BASE_TD)
    td["id"] = f"urn:dev:sensor:{i:05d}"
    return td


@pytest.fixture
def store(tmp_path):
    with open_store(tmp_path / "store") as store:
        yield store


def test_ten_thousand_twins_with_a_hundred_active(store):
    twin = DigiTwin(store, TwinConfig(max_active=100))
    for i in range(10_000):
        twin.update_thing(sensor(i), "agent")
    for i in range(10_000):
        twin.report_property(f"urn:dev:sensor:{i:05d}", "t", i / 10)
        assert twin.stats().active <= 100
    stats = twin.stats()
    assert stats.active == 100 and stats.loaded == 10_000 and stats.unloaded == 9_900
    # The evicted twins were written before they were dropped; reload one of the first.
    assert twin.read_property("urn:dev:sensor:00007", "t")["value"] == 0.7
    assert twin.stats().loaded == 10_001
    # The most recently used stayed in memory.
    assert twin.twins.peek("urn:dev:sensor:09999") is not None
    assert twin.twins.peek("urn:dev:sensor:00008") is None
    # Listing walks the directory without loading any twin.
    loaded = twin.stats().loaded
    assert sum(1 for _ in twin.list_things()) == 10_000
    assert [td["id"] for td in twin.list_things(9_998, 5)] == [
        "urn:dev:sensor:09998",
        "urn:dev:sensor:09999",
    ]
    assert len(twin.search_things("$[?@.id == 'urn:dev:sensor:04242'].title")) == 1
    # So does the walk by pages after an id (each TD read once).
    walked, after = [], None
    while page := twin.twins_after(after, 3_000):
        walked += [(td["id"], values) for td, values in page]
        after = page[-1][0]["id"]
    assert walked == [(f"urn:dev:sensor:{i:05d}", {"t": i / 10}) for i in range(10_000)]
    assert twin.stats().loaded == loaded


def test_values_survive_reopen_after_flush(tmp_path):
    with open_store(tmp_path / "store") as store:
        twin = DigiTwin(store)
        twin.update_thing(sensor(1), "agent")
        twin.report_property("urn:dev:sensor:00001", "t", 21.5)
        twin.close()
    with open_store(tmp_path / "store") as store:
        twin = DigiTwin(store)
        assert twin.read_property("urn:dev:sensor:00001", "t")["value"] == 21.5


def test_idle_twins_unload_and_come_back(store):
    twin = DigiTwin(store, TwinConfig(idle_timeout=60))
    twin.update_thing(sensor(1), "agent")
    twin.report_property("urn:dev:sensor:00001", "t", 1.0)
    import time

    assert twin.unload_idle(now=time.time() + 120) == 1
    assert twin.stats().active == 0
    assert twin.read_property("urn:dev:sensor:00001", "t")["value"] == 1.0


def test_unknown_things_and_affordances_are_not_found(store):
    twin = DigiTwin(store)
    twin.update_thing(sensor(1), "agent")
    with pytest.raises(NotFound):
        twin.read_property("urn:dev:nothing", "t")
    with pytest.raises(NotFound):
        twin.read_property("urn:dev:sensor:00001", "humidity")
    with pytest.raises(NotFound):
        twin.report_event("urn:dev:sensor:00001", "nope", 1)


def test_twin_td_uses_the_bindings_forms_and_is_rebuilt_when_they_change(store):
    class Provider:
        name = "test"

        def __init__(self, host):
            self.host = host

        def security_definitions(self):
            return {"bearer_sc": {"scheme": "bearer"}}

        def forms(self, thing_id, kind, name, affordance):
            if kind == "thing":
                return [
                    {
                        "href": f"https://{self.host}/things/{thing_id}/properties",
                        "op": ["readallproperties"],
                    }
                ]
            return [{"href": f"https://{self.host}/things/{thing_id}/{kind}/{name}"}]

    twin = DigiTwin(store)
    twin.update_thing(sensor(1), "agent")
    first = Provider("hub-a")
    twin.add_form_provider(first)
    td = twin.twin_td("urn:dev:sensor:00001")
    assert td["properties"]["t"]["forms"][0]["href"].startswith("https://hub-a/")
    assert td["security"] == ["bearer_sc"]
    assert twin.thing("urn:dev:sensor:00001").td["properties"]["t"]["forms"][0]["href"] == (
        "https://s.local/t"  # the agent's TD is kept as sent
    )
    twin.remove_form_provider(first)
    twin.add_form_provider(Provider("hub-b"))
    assert twin.twin_td("urn:dev:sensor:00001")["properties"]["t"]["forms"][0]["href"].startswith(
        "https://hub-b/"
    )
    changed = sensor(1)
    changed["title"] = "Renamed"
    twin.update_thing(changed, "agent")
    assert twin.twin_td("urn:dev:sensor:00001")["title"] == "Renamed"
