"""The TD directory on the real LevelDB store with the real TD validation."""

import copy
import uuid
from pathlib import Path
from typing import Any

import pytest

from bucketstore import BucketStore, open_store
from digitwin.directory import Directory, merge_patch
from digitwin.validation import validate_td
from tests.support.tds import lamp_td
from vocabulary import clock
from vocabulary.problems import BadRequest, Conflict, NotFound

LAMP = "urn:dev:ops:lamp-1"
T0 = 1_600_000_000.0  # a fixed "now" (in the past) for the tests that pass one


def thing(thing_id: str | None = LAMP, **members: Any) -> dict[str, Any]:
    """The shared lamp, small (one property) and described (no id when ``thing_id`` is
    None), with ``members`` set."""
    return lamp_td(thing_id, only=("on",), description="A lamp", **members)


@pytest.fixture
def directory(store: BucketStore) -> Directory:
    return Directory(store.bucket("things"), validate_td)


def ids(records: Any) -> list[str]:
    return [record.thing_id for record in records]


# --- create and replace -------------------------------------------------------------------------


def test_put_of_a_new_thing_creates_it(directory: Directory) -> None:
    record, created = directory.put(thing(), "agent-1", now=T0)
    assert created is True
    assert (record.thing_id, record.owner) == (LAMP, "agent-1")
    assert record.created == record.modified == T0
    assert directory.get(LAMP).td == thing()


def test_put_of_an_existing_thing_replaces_it(directory: Directory) -> None:
    directory.put(thing(), "agent-1", now=T0)
    record, created = directory.put(thing(title="Desk lamp"), "agent-1", now=T0 + 5)
    assert created is False
    assert record.td["title"] == "Desk lamp"
    assert directory.get(LAMP).td["title"] == "Desk lamp"


def test_replace_keeps_created_and_advances_modified(directory: Directory) -> None:
    directory.put(thing(), "agent-1", now=T0)
    directory.put(thing(title="Desk lamp"), "agent-1", now=T0 + 5)
    stored = directory.get(LAMP)
    assert stored.created == T0
    assert stored.modified == T0 + 5


def test_registration_times_are_rfc3339(directory: Directory) -> None:
    record, _ = directory.put(thing(), "agent-1", now=T0)
    registration = record.registration()
    assert registration == {"created": clock.rfc3339(T0), "modified": clock.rfc3339(T0)}
    assert clock.parse_rfc3339(registration["created"]) == T0


def test_anonymous_thing_gets_a_uuid_urn(directory: Directory) -> None:
    record, created = directory.put(thing(None), "agent-1")
    assert created
    assert record.thing_id.startswith("urn:uuid:")
    assert uuid.UUID(record.thing_id.removeprefix("urn:uuid:")).version == 4
    assert record.td["id"] == record.thing_id
    assert directory.get(record.thing_id).td["id"] == record.thing_id


def test_two_anonymous_things_get_different_ids(directory: Directory) -> None:
    first, _ = directory.put(thing(None), "agent-1")
    second, _ = directory.put(thing(None), "agent-1")
    assert first.thing_id != second.thing_id
    assert directory.count() == 2


def test_put_does_not_modify_the_callers_td(directory: Directory) -> None:
    td = thing(None, registration={"ttl": 60})
    before = copy.deepcopy(td)
    directory.put(td, "agent-1")
    assert td == before


def test_registration_is_not_stored_in_the_td(directory: Directory) -> None:
    directory.put(thing(registration={"ttl": 60}), "agent-1")
    assert "registration" not in directory.get(LAMP).td


def test_thing_of_another_owner_is_a_conflict(directory: Directory) -> None:
    directory.put(thing(), "agent-1", now=T0)
    with pytest.raises(Conflict):
        directory.put(thing(title="Stolen"), "agent-2", now=T0 + 1)
    stored = directory.get(LAMP)
    assert (stored.owner, stored.td["title"]) == ("agent-1", "Lamp")


def test_keep_owner_replaces_another_owners_thing_and_keeps_its_owner(
    directory: Directory,
) -> None:
    directory.put(thing(), "agent-1", now=T0)
    record, created = directory.put(thing(title="Fixed"), "admin", keep_owner=True, now=T0 + 1)
    assert created is False
    assert record.owner == "agent-1"
    assert directory.get(LAMP).td["title"] == "Fixed"
    assert directory.things_of("agent-1") == [LAMP]
    assert directory.things_of("admin") == []


# --- validation ---------------------------------------------------------------------------------


def test_invalid_td_is_a_bad_request_listing_each_field(directory: Directory) -> None:
    td = thing(title=5, security="basic_sc")
    td["properties"]["on"]["forms"] = []
    with pytest.raises(BadRequest) as info:
        directory.put(td, "agent-1")
    errors = info.value.extensions["validationErrors"]
    assert {error["field"] for error in errors} == {"title", "security", "properties.on.forms"}
    assert all(error["description"] for error in errors)
    assert directory.get(LAMP) is None


def test_missing_required_members_are_reported(directory: Directory) -> None:
    td = thing()
    del td["title"]
    with pytest.raises(BadRequest) as info:
        directory.put(td, "agent-1")
    problem = info.value.to_dict()
    assert problem["status"] == 400 and problem["title"] == "Bad Request"
    descriptions = [error["description"] for error in problem["validationErrors"]]
    assert any("title" in description for description in descriptions)


def test_td_that_is_not_an_object_is_a_bad_request(directory: Directory) -> None:
    with pytest.raises(BadRequest) as info:
        directory.put([thing()], "agent-1")
    assert info.value.extensions["validationErrors"][0]["field"] == "(root)"


def test_id_that_is_not_a_string_is_a_bad_request(directory: Directory) -> None:
    with pytest.raises(BadRequest) as info:
        directory.put(thing(42), "agent-1")
    assert "id" in {error["field"] for error in info.value.extensions["validationErrors"]}


# --- lifetime: ttl and expires ------------------------------------------------------------------


def test_ttl_sets_expires_from_now(directory: Directory) -> None:
    record, _ = directory.put(thing(registration={"ttl": 60}), "agent-1", now=T0)
    assert (record.ttl, record.expires) == (60, T0 + 60)


def test_ttl_and_expires_are_kept_in_the_store(directory: Directory) -> None:
    directory.put(thing(registration={"ttl": 60}), "agent-1", now=T0)
    stored = directory.get(LAMP)
    assert (stored.ttl, stored.expires) == (60, T0 + 60)
    assert stored.registration()["ttl"] == 60
    assert stored.registration()["expires"] == clock.rfc3339(T0 + 60)


def test_expires_without_ttl_is_kept(directory: Directory) -> None:
    expires = "2030-01-02T03:04:05.000Z"
    directory.put(thing(registration={"expires": expires}), "agent-1", now=T0)
    stored = directory.get(LAMP)
    assert stored.ttl is None
    assert stored.expires == clock.parse_rfc3339(expires)
    assert stored.registration()["expires"] == expires


def test_ttl_wins_over_expires(directory: Directory) -> None:
    registration = {"ttl": 60, "expires": "2030-01-02T03:04:05Z"}
    record, _ = directory.put(thing(registration=registration), "agent-1", now=T0)
    assert record.expires == T0 + 60


@pytest.mark.parametrize("ttl", [0, -1, True])
def test_ttl_that_is_not_positive_is_a_bad_request(directory: Directory, ttl: Any) -> None:
    with pytest.raises(BadRequest) as info:
        directory.put(thing(registration={"ttl": ttl}), "agent-1")
    fields = {error["field"] for error in info.value.extensions["validationErrors"]}
    assert fields == {"registration.ttl"}


def test_thing_without_lifetime_never_expires(directory: Directory) -> None:
    record, _ = directory.put(thing(), "agent-1", now=T0)
    assert record.expires is None and record.ttl is None
    assert directory.next_expiry() is None


def test_empty_merge_patch_renews_expires(directory: Directory) -> None:
    directory.put(thing(registration={"ttl": 60}), "agent-1", now=T0)
    before = clock.now()
    record = directory.patch(LAMP, {}, "agent-1")
    after = clock.now()
    assert before + 60 <= record.expires <= after + 60
    assert record.ttl == 60
    assert directory.get(LAMP).expires == record.expires


def test_keep_alive_moves_the_expiry_index(directory: Directory) -> None:
    directory.put(thing(registration={"ttl": 60}), "agent-1", now=T0)
    record = directory.patch(LAMP, {}, "agent-1")
    assert directory.next_expiry() == pytest.approx(record.expires, abs=0.001)
    # The old expiry (T0 + 60) is no longer indexed: purging after it keeps the TD.
    assert directory.purge_expired(now=T0 + 100) == []
    assert directory.get(LAMP) is not None


# --- merge patch --------------------------------------------------------------------------------


def test_patch_changes_a_member(directory: Directory) -> None:
    directory.put(thing(), "agent-1")
    record = directory.patch(LAMP, {"title": "Desk lamp"}, "agent-1")
    assert record.td["title"] == "Desk lamp"
    assert directory.get(LAMP).td["title"] == "Desk lamp"


def test_patch_with_null_removes_a_member(directory: Directory) -> None:
    directory.put(thing(), "agent-1")
    directory.patch(LAMP, {"description": None}, "agent-1")
    assert "description" not in directory.get(LAMP).td


def test_patch_merges_nested_objects(directory: Directory) -> None:
    directory.put(thing(), "agent-1")
    directory.patch(LAMP, {"properties": {"on": {"readOnly": True}}}, "agent-1")
    on = directory.get(LAMP).td["properties"]["on"]
    assert on == {"type": "boolean", "readOnly": True, "forms": [{"href": "https://lamp.local/on"}]}


def test_patch_result_is_validated(directory: Directory) -> None:
    directory.put(thing(), "agent-1")
    with pytest.raises(BadRequest) as info:
        directory.patch(LAMP, {"title": None}, "agent-1")
    assert info.value.extensions["validationErrors"]
    assert directory.get(LAMP).td["title"] == "Lamp"


def test_patch_that_changes_the_id_is_refused(directory: Directory) -> None:
    directory.put(thing(), "agent-1")
    with pytest.raises(BadRequest) as info:
        directory.patch(LAMP, {"id": "urn:dev:ops:other"}, "agent-1")
    assert info.value.extensions["validationErrors"][0]["field"] == "id"
    assert directory.get("urn:dev:ops:other") is None


def test_patch_that_repeats_the_id_is_accepted(directory: Directory) -> None:
    directory.put(thing(), "agent-1")
    record = directory.patch(LAMP, {"id": LAMP, "title": "Same"}, "agent-1")
    assert record.td["title"] == "Same"


def test_patch_that_is_not_an_object_is_refused(directory: Directory) -> None:
    directory.put(thing(), "agent-1")
    with pytest.raises(BadRequest):
        directory.patch(LAMP, ["title"], "agent-1")


def test_patch_of_an_unknown_thing_is_not_found(directory: Directory) -> None:
    with pytest.raises(NotFound):
        directory.patch("urn:dev:ops:nothing", {"title": "x"}, "agent-1")


def test_patch_by_another_owner_is_a_conflict(directory: Directory) -> None:
    directory.put(thing(), "agent-1")
    with pytest.raises(Conflict):
        directory.patch(LAMP, {"title": "Mine"}, "agent-2")
    assert directory.get(LAMP).td["title"] == "Lamp"


def test_patch_keeps_created(directory: Directory) -> None:
    directory.put(thing(), "agent-1", now=T0)
    record = directory.patch(LAMP, {"title": "Later"}, "agent-1")
    assert record.created == T0
    assert record.modified > T0


# --- delete -------------------------------------------------------------------------------------


def test_delete_removes_the_thing_and_its_index_entries(directory: Directory) -> None:
    directory.put(thing(registration={"ttl": 60}), "agent-1")
    deleted = directory.delete(LAMP, "agent-1")
    assert deleted.thing_id == LAMP
    assert directory.get(LAMP) is None
    assert directory.things_of("agent-1") == []
    assert directory.next_expiry() is None
    assert directory.count() == 0


def test_delete_of_an_unknown_thing_is_not_found(directory: Directory) -> None:
    with pytest.raises(NotFound):
        directory.delete("urn:dev:ops:nothing", "agent-1")


def test_delete_by_another_owner_is_a_conflict(directory: Directory) -> None:
    directory.put(thing(), "agent-1")
    with pytest.raises(Conflict):
        directory.delete(LAMP, "agent-2")
    assert directory.get(LAMP) is not None


def test_delete_with_keep_owner_removes_another_owners_thing(directory: Directory) -> None:
    directory.put(thing(), "agent-1")
    directory.delete(LAMP, "admin", keep_owner=True)
    assert directory.get(LAMP) is None
    assert directory.things_of("agent-1") == []


# --- listing ------------------------------------------------------------------------------------

# Code-point order. A case-insensitive or locale order puts "a" before "Z" and "é" next to
# "e"; UTF-16 order puts U+1F600 (a surrogate pair) before U+FF21.
CODE_POINT_ORDER = ["urn:a:Z", "urn:a:a", "urn:a:é", "urn:a:\uff21", "urn:a:\U0001f600"]


@pytest.fixture
def listed(directory: Directory) -> Directory:
    for thing_id in ["urn:a:\U0001f600", "urn:a:a", "urn:a:\uff21", "urn:a:Z", "urn:a:é"]:
        directory.put(thing(thing_id), "agent-1")
    return directory


def test_records_are_in_code_point_order_of_ids(listed: Directory) -> None:
    assert ids(listed.records()) == CODE_POINT_ORDER


def test_records_are_not_in_utf16_order() -> None:
    # Guards the choice of ids above: it must tell code-point order from UTF-16 order.
    utf16 = sorted(CODE_POINT_ORDER, key=lambda text: text.encode("utf-16-be"))
    assert utf16 != CODE_POINT_ORDER


def test_paging_covers_every_record_once_in_order(listed: Directory) -> None:
    pages = [ids(listed.records(offset, 2)) for offset in range(0, 6, 2)]
    assert pages == [CODE_POINT_ORDER[0:2], CODE_POINT_ORDER[2:4], CODE_POINT_ORDER[4:]]


def test_offset_past_the_end_lists_nothing(listed: Directory) -> None:
    assert ids(listed.records(10, 5)) == []


def test_offset_without_limit_lists_the_rest(listed: Directory) -> None:
    assert ids(listed.records(3)) == CODE_POINT_ORDER[3:]


def test_count_counts_every_thing(listed: Directory) -> None:
    assert listed.count() == 5


def test_things_of_lists_only_that_owners_things(directory: Directory) -> None:
    directory.put(thing("urn:b:2"), "agent-1")
    directory.put(thing("urn:b:1"), "agent-1")
    directory.put(thing("urn:b:3"), "agent-2")
    assert directory.things_of("agent-1") == ["urn:b:1", "urn:b:2"]
    assert directory.things_of("agent-2") == ["urn:b:3"]
    assert directory.things_of("agent-3") == []


def test_owner_whose_name_prefixes_another_does_not_see_its_things(directory: Directory) -> None:
    directory.put(thing("urn:b:1"), "agent")
    directory.put(thing("urn:b:2"), "agent-10")
    assert directory.things_of("agent") == ["urn:b:1"]


# --- purging ------------------------------------------------------------------------------------


@pytest.fixture
def expiring(directory: Directory) -> Directory:
    directory.put(thing("urn:c:soon", registration={"ttl": 10}), "agent-1", now=T0)
    directory.put(thing("urn:c:later", registration={"ttl": 100}), "agent-1", now=T0)
    directory.put(thing("urn:c:forever"), "agent-1", now=T0)
    return directory


def test_next_expiry_is_the_soonest(expiring: Directory) -> None:
    assert expiring.next_expiry() == T0 + 10


def test_purge_removes_only_expired_things(expiring: Directory) -> None:
    purged = expiring.purge_expired(now=T0 + 50)
    assert ids(purged) == ["urn:c:soon"]
    assert ids(expiring.records()) == ["urn:c:forever", "urn:c:later"]


def test_purge_removes_the_index_entries_of_what_it_purges(expiring: Directory) -> None:
    expiring.purge_expired(now=T0 + 50)
    assert expiring.things_of("agent-1") == ["urn:c:forever", "urn:c:later"]
    assert expiring.next_expiry() == T0 + 100


def test_purge_before_any_expiry_removes_nothing(expiring: Directory) -> None:
    assert expiring.purge_expired(now=T0 + 9) == []
    assert expiring.count() == 3


def test_purge_twice_purges_once(expiring: Directory) -> None:
    expiring.purge_expired(now=T0 + 50)
    assert expiring.purge_expired(now=T0 + 50) == []


def test_purge_at_the_expiry_instant_removes_it(expiring: Directory) -> None:
    assert ids(expiring.purge_expired(now=T0 + 10)) == ["urn:c:soon"]


# --- durability ---------------------------------------------------------------------------------


def test_things_survive_closing_and_reopening_the_store(store_path: Path) -> None:
    with open_store(store_path) as first:
        directory = Directory(first.bucket("things"), validate_td)
        directory.put(thing(registration={"ttl": 60}), "agent-1", now=T0)
        directory.put(thing("urn:dev:ops:lamp-2"), "agent-2", now=T0)
    with open_store(store_path) as second:
        directory = Directory(second.bucket("things"), validate_td)
        stored = directory.get(LAMP)
        assert (stored.td, stored.owner, stored.created) == (thing(), "agent-1", T0)
        assert (stored.ttl, stored.expires) == (60, T0 + 60)
        assert ids(directory.records()) == [LAMP, "urn:dev:ops:lamp-2"]
        assert directory.things_of("agent-2") == ["urn:dev:ops:lamp-2"]
        assert directory.next_expiry() == T0 + 60


# --- merge_patch (RFC 7396 appendix A) ----------------------------------------------------------

RFC7396_EXAMPLES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "result"), RFC7396_EXAMPLES)
def test_merge_patch_follows_rfc7396_appendix_a(target: Any, patch: Any, result: Any) -> None:
    assert merge_patch(target, patch) == result


def test_merge_patch_does_not_modify_the_target() -> None:
    target = {"a": {"b": "c", "d": "e"}, "f": "g"}
    before = copy.deepcopy(target)
    merge_patch(target, {"a": {"b": None}, "f": None})
    assert target == before


def test_merge_patch_result_does_not_share_values_with_the_patch() -> None:
    patch = {"a": [1, 2]}
    result = merge_patch({}, patch)
    result["a"].append(3)
    assert patch == {"a": [1, 2]}
