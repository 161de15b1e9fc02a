"""The contract every bucket store backend keeps; runs once per registered backend."""

import pytest

from bucketstore import (
    InvalidKeyError,
    InvalidValueError,
    StoreClosedError,
)


def fill(bucket, keys):
    bucket.set_many({key: key.encode() for key in keys})


def test_missing_key_is_none(bucket):
    assert bucket.get("nope") is None
    assert bucket.get_many(["nope", "also-nope"]) == {}


def test_set_get_overwrite(bucket):
    bucket.set("a", b"1")
    bucket.set("a", b"2")
    assert bucket.get("a") == b"2"
    assert bucket.count() == 1


def test_unicode_keys_round_trip(bucket):
    keys = ["urn:dev:ops:32473-lamp-1", "Grüße", "温度", "emoji-🌡", "a/b.c d#+"]
    fill(bucket, keys)
    for key in keys:
        assert bucket.get(key) == key.encode()
    assert list(bucket.keys()) == sorted(keys)


def test_order_is_unicode_code_point_order(bucket):
    # Code point order differs from UTF-16 order for astral characters.
    keys = ["\uffff", "\U0001f600", "z", "Z", "é", "a"]
    fill(bucket, keys)
    assert list(bucket.keys()) == sorted(keys)


def test_binary_and_large_values(bucket):
    blob = bytes(range(256)) * 4096  # 1 MiB with every byte value, NULs included
    bucket.set("blob", blob)
    bucket.set("empty", b"")
    assert bucket.get("blob") == blob
    assert bucket.get("empty") == b""


def test_bytes_like_values_come_back_as_bytes(bucket):
    bucket.set("ba", bytearray(b"xy"))
    bucket.set("mv", memoryview(b"zw"))
    assert bucket.get("ba") == b"xy" and type(bucket.get("ba")) is bytes
    assert bucket.get("mv") == b"zw" and type(bucket.get("mv")) is bytes


@pytest.mark.parametrize("key", ["", None, 5, b"bytes-key", "\ud800"])
def test_bad_keys_are_refused_with_a_clear_error(bucket, key):
    for call in (
        lambda: bucket.get(key),
        lambda: bucket.set(key, b"v"),
        lambda: bucket.delete(key),
        lambda: bucket.get_many([key]),
        lambda: bucket.delete_many([key]),
    ):
        with pytest.raises(InvalidKeyError, match="key"):
            call()
    assert bucket.count() == 0


@pytest.mark.parametrize("value", ["text", 5, None, [1]])
def test_non_bytes_values_are_refused_naming_the_key(bucket, value):
    with pytest.raises(InvalidValueError, match="'k1'"):
        bucket.set("k1", value)
    assert bucket.get("k1") is None


def test_get_many_returns_present_keys(bucket):
    fill(bucket, ["a", "b", "c"])
    assert bucket.get_many(["c", "a", "x"]) == {"a": b"a", "c": b"c"}


def test_set_many_accepts_pairs_and_mappings(bucket):
    bucket.set_many([("a", b"1"), ("b", b"2")])
    bucket.set_many({"c": b"3"})
    assert list(bucket.items()) == [("a", b"1"), ("b", b"2"), ("c", b"3")]


@pytest.mark.parametrize(
    "bad_item, error",
    [
        (("", b"x"), InvalidKeyError),
        (("bad", "str"), InvalidValueError),
        ((7, b"x"), InvalidKeyError),
    ],
)
def test_set_many_is_all_or_nothing(bucket, bad_item, error):
    bucket.set("existing", b"old")
    items = [("existing", b"new"), ("a", b"1"), bad_item, ("z", b"26")]
    with pytest.raises(error):
        bucket.set_many(items)
    assert list(bucket.items()) == [("existing", b"old")]


def test_delete_semantics(bucket):
    fill(bucket, ["a", "b", "c", "d"])
    bucket.delete("b")
    bucket.delete("b")  # deleting a missing key is not an error
    bucket.delete("never-there")
    bucket.delete_many(["a", "x", "d"])
    assert list(bucket.keys()) == ["c"]
    assert bucket.get("b") is None
    assert bucket.count() == 1


def test_delete_many_is_all_or_nothing(bucket):
    fill(bucket, ["a", "b"])
    with pytest.raises(InvalidKeyError):
        bucket.delete_many(["a", ""])
    assert list(bucket.keys()) == ["a", "b"]


def test_batch_deletes_and_sets_in_one_write(bucket):
    fill(bucket, ["old", "both", "keep"])
    bucket.batch(set={"new": b"n", "both": b"set"}, delete=["old", "both", "missing"])
    assert dict(bucket.items()) == {"both": b"set", "keep": b"keep", "new": b"n"}


@pytest.mark.parametrize("bad_set, bad_delete", [([("k", "str")], []), ([], ["ok", ""])])
def test_batch_is_all_or_nothing(bucket, bad_set, bad_delete):
    fill(bucket, ["ok", "x"])
    with pytest.raises((InvalidKeyError, InvalidValueError)):
        bucket.batch(set=[("new", b"1"), *bad_set], delete=["x", *bad_delete])
    assert list(bucket.keys()) == ["ok", "x"]


def test_write_batches_takes_more_keys_than_one_batch_may_hold(bucket):
    """For writes that need not be atomic as a whole: any number of keys, in batches of
    at most ``max_batch`` where the backend has a limit; deletes first, so a key in both
    ends set."""
    n = 2 * (bucket.max_batch or 1000) + 1
    bucket.write_batches(set={f"old{i:05d}": b"o" for i in range(n)} | {"both": b"o"})
    assert bucket.count() == n + 1
    bucket.write_batches(
        set={**{f"new{i:05d}": b"v" for i in range(n)}, "both": b"set"},
        delete=[*(f"old{i:05d}" for i in range(n)), "both"],
    )
    assert bucket.count() == n + 1
    assert bucket.get("both") == b"set" and bucket.get("old00000") is None
    assert bucket.get(f"new{n - 1:05d}") == b"v"


KEYS = ["b", "d", "f", "h"]


@pytest.mark.parametrize(
    "start, reverse, exclusive, expected",
    [
        (None, False, False, ["b", "d", "f", "h"]),
        (None, True, False, ["h", "f", "d", "b"]),
        ("d", False, False, ["d", "f", "h"]),  # exact key
        ("d", False, True, ["f", "h"]),
        ("e", False, False, ["f", "h"]),  # between keys
        ("a", False, False, ["b", "d", "f", "h"]),  # before the first
        ("z", False, False, []),  # past the end
        ("d", True, False, ["d", "b"]),
        ("d", True, True, ["b"]),
        ("e", True, False, ["d", "b"]),
        ("a", True, False, []),  # before the first, in reverse
        ("z", True, False, ["h", "f", "d", "b"]),  # past the end, in reverse
    ],
)
def test_seek(bucket, start, reverse, exclusive, expected):
    fill(bucket, KEYS)
    assert list(bucket.keys(start, reverse=reverse, exclusive=exclusive)) == expected
    pairs = list(bucket.items(start, reverse=reverse, exclusive=exclusive))
    assert pairs == [(key, key.encode()) for key in expected]
    assert list(bucket.values(start, reverse=reverse, exclusive=exclusive)) == [
        key.encode() for key in expected
    ]


def test_paging_walks_every_item_once(bucket):
    keys = [f"k{i:04d}" for i in range(250)]
    fill(bucket, keys)
    for reverse in (False, True):
        seen, after = [], None
        while page := bucket.page(after, 100, reverse=reverse):
            assert len(page) <= 100
            seen += [key for key, _ in page]
            after = page[-1][0]
        assert seen == sorted(keys, reverse=reverse)
    assert bucket.page("k0100", 2) == [("k0101", b"k0101"), ("k0102", b"k0102")]
    assert bucket.page(limit=0) == []
    with pytest.raises(ValueError):
        bucket.page(limit=-1)


def test_prefix_scan_stays_inside_prefix(bucket):
    fill(bucket, ["a", "ab", "ab\U0010ffff", "abc", "abd", "ac", "b", "aa"])
    assert list(bucket.keys(prefix="ab")) == ["ab", "abc", "abd", "ab\U0010ffff"]
    assert list(bucket.keys(prefix="ab", reverse=True)) == ["ab\U0010ffff", "abd", "abc", "ab"]
    assert list(bucket.keys("abc", prefix="ab")) == ["abc", "abd", "ab\U0010ffff"]
    assert list(bucket.keys("abc", prefix="ab", reverse=True)) == ["abc", "ab"]
    assert list(bucket.keys("zzz", prefix="ab", reverse=True)) == [
        "ab\U0010ffff",
        "abd",
        "abc",
        "ab",
    ]
    assert list(bucket.keys("a", prefix="ab")) == ["ab", "abc", "abd", "ab\U0010ffff"]
    assert list(bucket.keys(prefix="x")) == []
    assert bucket.page("abc", 10, prefix="ab") == [
        ("abd", b"abd"),
        ("ab\U0010ffff", "ab\U0010ffff".encode()),
    ]


def test_below_bounds_a_scan_in_either_direction(bucket):
    fill(bucket, ["a", "ab", "abc", "abd", "ac", "b"])
    assert list(bucket.keys(below="abd")) == ["a", "ab", "abc"]
    assert list(bucket.keys("ab", below="abd")) == ["ab", "abc"]
    assert list(bucket.keys("ab", below="abd", exclusive=True)) == ["abc"]
    assert list(bucket.values("ab", below="ac")) == [b"ab", b"abc", b"abd"]
    assert list(bucket.keys(below="abd", reverse=True)) == ["abc", "ab", "a"]
    assert list(bucket.keys("zz", below="abd", reverse=True)) == ["abc", "ab", "a"]
    assert list(bucket.keys("ab", below="abd", reverse=True)) == ["ab", "a"]
    assert list(bucket.items(prefix="ab", below="abd")) == [("ab", b"ab"), ("abc", b"abc")]
    assert list(bucket.keys(prefix="ab", below="b")) == ["ab", "abc", "abd"]
    assert list(bucket.keys("b", below="ab")) == []


def test_buckets_do_not_see_each_others_keys(store):
    # Names chosen so that one bucket's name is a prefix of the other's.
    short, long_ = store.bucket("a"), store.bucket("ab")
    short.set("x", b"short")
    long_.set("x", b"long")
    long_.set("\x00", b"nul-key")
    assert short.get("x") == b"short"
    assert long_.get("x") == b"long"
    assert list(short.items()) == [("x", b"short")]
    assert list(short.keys(prefix="")) == ["x"]
    assert short.count() == 1 and long_.count() == 2
    short.delete_many(["x", "\x00"])
    assert long_.count() == 2


def test_prefix_scans_do_not_cross_bucket_boundaries(store):
    first, second = store.bucket("t"), store.bucket("t2")
    fill(first, ["k1", "k2"])
    fill(second, ["k1", "k3"])
    assert list(first.keys(prefix="k")) == ["k1", "k2"]
    assert list(second.keys(prefix="k", reverse=True)) == ["k3", "k1"]
    assert list(first.keys("k9", reverse=True)) == ["k2", "k1"]
    assert list(second.keys("a")) == ["k1", "k3"]


def test_buckets_are_listed_once_created(store):
    store.bucket("zeta")
    store.bucket("alpha").set("k", b"v")
    assert store.bucket("alpha") is store.bucket("alpha")
    assert store.buckets() == ["alpha", "zeta"]


@pytest.mark.parametrize("name", ["", "a\x00b", None])
def test_bad_bucket_names_are_refused(store, name):
    with pytest.raises(InvalidKeyError, match="bucket name"):
        store.bucket(name)


def test_iteration_sees_the_view_from_when_it_started(bucket):
    fill(bucket, ["a", "b", "c"])
    it = bucket.items()
    bucket.set("bb", b"new")
    bucket.delete("c")
    assert list(it) == [("a", b"a"), ("b", b"b"), ("c", b"c")]


def test_closed_store_refuses_use(store):
    bucket = store.bucket("x")
    store.close()
    store.close()  # twice is harmless
    assert store.closed
    for call in (
        lambda: bucket.get("k"),
        lambda: bucket.set("k", b"v"),
        lambda: bucket.set_many({"k": b"v"}),
        lambda: bucket.batch(set={"k": b"v"}),
        lambda: bucket.delete("k"),
        lambda: bucket.swap("k", None, b"v"),
        lambda: bucket.count(),
        lambda: list(bucket.items()),
        lambda: store.bucket("y"),
        lambda: store.buckets(),
    ):
        with pytest.raises(StoreClosedError, match="closed"):
            call()


def test_swap_writes_only_over_the_expected_value(bucket):
    assert bucket.swap("k", None, b"1")  # absent -> created
    assert not bucket.swap("k", None, b"2")  # no longer absent
    assert bucket.get("k") == b"1"
    assert not bucket.swap("k", b"0", b"2")  # another value
    assert bucket.get("k") == b"1"
    assert bucket.swap("k", bytearray(b"1"), memoryview(b"2"))  # bytes-like both ways
    assert bucket.get("k") == b"2" and type(bucket.get("k")) is bytes
    assert bucket.swap("k", b"2", b"2")  # same value: still a write that succeeded
    assert bucket.swap("k", b"2", None)  # delete
    assert bucket.get("k") is None
    assert not bucket.swap("k", b"2", b"3")  # gone
    assert bucket.swap("k", None, None)  # missing, stays missing
    assert bucket.swap("k", None, b"")  # recreated after a delete, empty value
    assert bucket.get("k") == b""
    assert not bucket.swap("k", None, b"x")  # empty is a value, not missing
    assert list(bucket.items()) == [("k", b"")]


def test_swap_sees_every_kind_of_write(bucket):
    bucket.set_many({"a": b"1", "b": b"1"})
    assert bucket.swap("a", b"1", b"2")
    bucket.batch(set={"a": b"3"}, delete=["b"])
    assert not bucket.swap("a", b"2", b"4")
    assert bucket.swap("a", b"3", b"4")
    assert bucket.swap("b", None, b"5")
    bucket.delete("a")
    assert bucket.swap("a", None, b"6")
    assert dict(bucket.items()) == {"a": b"6", "b": b"5"}


def test_swap_refuses_bad_arguments(bucket):
    bucket.set("k", b"v")
    for call, error in (
        (lambda: bucket.swap("", None, b"v"), InvalidKeyError),
        (lambda: bucket.swap(None, None, b"v"), InvalidKeyError),
        (lambda: bucket.swap("k", "v", b"w"), InvalidValueError),
        (lambda: bucket.swap("k", b"v", "w"), InvalidValueError),
    ):
        with pytest.raises(error):
            call()
    assert bucket.get("k") == b"v"


def test_batch_if_writes_only_while_the_keys_are_as_expected(bucket):
    fill(bucket, ["record"])
    assert bucket.batch_if({"record": b"record"}, set={"record": b"v2", "index": b""})
    assert dict(bucket.items()) == {"index": b"", "record": b"v2"}
    # Expected the old value, or that the key is missing: nothing is written.
    assert not bucket.batch_if({"record": b"record"}, set={"record": b"v3", "other": b""})
    assert not bucket.batch_if({"record": None}, set={"record": b"v3"})
    assert dict(bucket.items()) == {"index": b"", "record": b"v2"}
    assert bucket.batch_if({"new": None}, set={"new": b"1"})
    assert bucket.batch_if({"record": b"v2"}, delete=["record", "index"])
    assert dict(bucket.items()) == {"new": b"1"}
    # Every expected key must be written by the batch.
    with pytest.raises(InvalidKeyError):
        bucket.batch_if({"new": b"1"}, set={"else": b"x"})
