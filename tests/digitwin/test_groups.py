"""Groups and group requests in the bucket store (digitwin.groups), and the selection
of Things they and the directory's listing use (digitwin.selection), on the real
LevelDB store with the real TD validation."""

from __future__ import annotations

from typing import Any

import pytest

from bucketstore import BucketStore, open_store
from digitwin import groups as groups_module
from digitwin.directory import Directory
from digitwin.groups import GroupRequest, Groups, parse_definition
from digitwin.selection import Selection, types_of
from digitwin.validation import validate_td
from tests.support.tds import thing_td
from vocabulary.envelope import ABSENT
from vocabulary.problems import BadRequest, NotFound


@pytest.fixture
def directory(store: BucketStore) -> Directory:
    directory = Directory(store.bucket("things"), validate_td)
    for n, (owner, types) in enumerate(
        [("a", "x:Lamp"), ("b", ["x:Lamp", "x:Dimmer"]), ("a", "x:Sensor"), ("b", None)]
    ):
        members: dict[str, Any] = {} if types is None else {"@type": types}
        directory.put(thing_td(f"urn:t:{n}", f"Thing {n}", **members), owner)
    return directory


def selected(directory: Directory, owner: str | None = None, **query: str) -> list[str]:
    selection = Selection.from_dict(query)
    return [r.thing_id for r in selection.records(directory, owner=owner)]


def test_selection_by_agent_type_and_filter(directory: Directory) -> None:
    assert selected(directory, agent="a") == ["urn:t:0", "urn:t:2"]
    assert selected(directory, type="x:Lamp") == ["urn:t:0", "urn:t:1"]
    assert selected(directory, type="x:Dimmer", agent="b") == ["urn:t:1"]
    assert selected(directory, filter="$[?@.title == 'Thing 3']") == ["urn:t:3"]
    assert selected(directory, owner="a", type="x:Lamp") == ["urn:t:0"]
    assert selected(directory, owner="a", agent="b") == []  # an agent sees its own only
    assert types_of({"@type": ["a", 1, "b"]}) == ["a", "b"] and types_of({}) == []


@pytest.mark.parametrize(
    "query", [{"agent": ""}, {"type": 3}, {"filter": "$["}, {"colour": "red"}, ["agent"]]
)
def test_bad_selections_are_refused(query: Any) -> None:
    with pytest.raises(BadRequest):
        Selection.from_dict(query)


def test_groups_survive_a_restart_and_follow_the_directory(store_path, directory, store) -> None:
    groups = Groups(store.bucket("groups"))
    assert groups.put(parse_definition("lamps", {"query": {"type": "x:Lamp"}}), "mia")
    listed = parse_definition("two", {"title": "Two", "members": ["urn:t:3", "urn:t:0", "urn:t:0"]})
    assert groups.put(listed, "mia")
    assert not groups.put(listed, "root")  # replaced: not new
    assert groups.members(groups.get("two"), directory) == ["urn:t:0", "urn:t:3"]
    directory.put(thing_td("urn:t:9", "Thing 9", **{"@type": "x:Lamp"}), "c")
    assert groups.members(groups.get("lamps"), directory) == ["urn:t:0", "urn:t:1", "urn:t:9"]
    store.close()
    reopened = open_store(store_path)
    try:
        again = Groups(reopened.bucket("groups"))
        assert [g.name for g in again.all()] == ["lamps", "two"]
        two = again.get("two")
        assert (two.title, two.by, two.created <= two.modified) == ("Two", "root", True)
        assert again.get("lamps").query == Selection(thing_type="x:Lamp")
        again.delete("two")
        with pytest.raises(NotFound):
            again.get("two")
    finally:
        reopened.close()


def test_group_requests_keep_the_newest(store: BucketStore, monkeypatch) -> None:
    monkeypatch.setattr(groups_module, "MAX_REQUESTS", 3)
    groups = Groups(store.bucket("groups"))
    for n in range(5):
        groups.add_request(
            GroupRequest(f"{n:015d}-x", "g", "invokeaction", "toggle", ABSENT, "mia", float(n))
        )
    with pytest.raises(NotFound):
        groups.request(f"{1:015d}-x")
    kept = groups.request(f"{4:015d}-x")
    assert kept.input is ABSENT and kept.sender_id == "mia"
    assert [groups.request(f"{n:015d}-x").id for n in (2, 3)] == [f"{n:015d}-x" for n in (2, 3)]
