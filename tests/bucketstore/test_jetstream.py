"""What only the jetstream backend has: several stores on the same servers (the nodes
of a cluster), server-side atomic batches and compare-and-set, unreachable servers, and
a replicated bucket that survives losing a server. The contract itself is checked by
test_conformance.py, which runs on this backend too."""

import asyncio
import threading
import time

import nats
import pytest

from bucketstore import BucketStoreError, StoreUnavailableError
from bucketstore.jetstream import BATCH_LIMIT, JetStreamStore
from tests.support.jetstream import JetStreamServer, cluster_of_three
from tests.waiting import until


async def test_a_second_store_sees_the_first_ones_writes(jetstream_store_factory):
    first = jetstream_store_factory()
    first.bucket("tds").set_many({"urn:dev:a": b"1", "urn:dev:b": b"2", "urn:dev:c": b"3"})
    first.bucket("tds").delete("urn:dev:c")
    second = jetstream_store_factory()
    # Loaded from the servers when opened: the buckets and what is in them.
    assert second.buckets() == ["tds"]
    tds = second.bucket("tds")
    assert list(tds.items()) == [("urn:dev:a", b"1"), ("urn:dev:b", b"2")]
    # Kept current by the watch, without reopening.
    first.bucket("tds").batch(set={"urn:dev:d": b"4"}, delete=["urn:dev:a"])
    first.bucket("tds").set("urn:dev:b", b"22")
    await until(lambda: tds.get("urn:dev:b") == b"22", timeout=5)
    assert list(tds.items()) == [("urn:dev:b", b"22"), ("urn:dev:d", b"4")]
    first.bucket("new").set("k", b"v")
    assert second.buckets() == ["new", "tds"]


async def test_a_bucket_is_told_of_the_keys_another_store_changed(jetstream_store_factory):
    """on_change reports other writers' changes (set, delete, batch, swap), so a cache
    can drop what it holds; a barrier write by the other store proves the first store's
    own writes were not reported."""
    first, second = jetstream_store_factory(), jetstream_store_factory()
    mine, theirs = first.bucket("clients"), second.bucket("clients")
    changed: list[str] = []
    mine.on_change(changed.append, asyncio.get_running_loop())
    mine.set("own", b"1")
    theirs.set("alice", b"1")
    theirs.batch(set={"bob": b"2"}, delete=["alice"])
    assert theirs.swap("bob", b"2", b"3")
    theirs.set("barrier", b"")
    await until(lambda: "barrier" in changed, timeout=5)
    assert changed == ["alice", "alice", "bob", "bob", "barrier"]
    assert mine.get("bob") == b"3" and mine.get("alice") is None


async def test_a_change_learned_by_a_conditional_write_is_reported_once(
    jetstream_store_factory,
):
    """A batch_if at the moment another store writes the key may find the replica
    behind and read the key from the server; a change learned so is reported then, and
    not again when the watch brings it. Whichever write wins, each key is reported
    once (rounds, so that both orders and the read from the server occur)."""
    first, second = jetstream_store_factory(), jetstream_store_factory()
    mine, theirs = first.bucket("records"), second.bucket("records")
    changed: list[str] = []
    mine.on_change(changed.append, asyncio.get_running_loop())
    rounds = 30
    for round_ in range(rounds):
        key = f"k{round_}"
        await asyncio.to_thread(
            race,
            [
                lambda key=key: theirs.set(key, b"theirs"),
                lambda key=key: mine.batch_if({key: None}, set={key: b"mine"}),
            ],
        )
    theirs.set("barrier", b"")
    await until(lambda: "barrier" in changed, timeout=5)
    assert changed == [f"k{round_}" for round_ in range(rounds)] + ["barrier"]
    assert all(mine.get(f"k{round_}") == b"theirs" for round_ in range(rounds))


def test_stores_with_another_prefix_do_not_see_each_others_buckets(jetstream_store_factory):
    jetstream_store_factory().bucket("b").set("k", b"mine")
    other = jetstream_store_factory(prefix="other-prefix")
    assert "b" not in other.buckets()
    assert other.bucket("b").get("k") is None


def race(calls):
    """Runs the calls at the same moment, one thread each; their results in order."""
    start = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(index, call):
        start.wait(5)
        results[index] = call()

    threads = [threading.Thread(target=run, args=pair) for pair in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_two_stores_swapping_from_the_same_value_never_both_win(jetstream_store_factory):
    first, second = jetstream_store_factory(), jetstream_store_factory()
    one, two = first.bucket("leases"), second.bucket("leases")
    for round_ in range(20):
        key = f"lease-{round_}"
        old = None if round_ % 2 else b"free"  # creating, and replacing a value
        if old is not None:
            one.set(key, old)
        won = race(
            [
                lambda key=key, old=old: one.swap(key, old, b"first"),
                lambda key=key, old=old: two.swap(key, old, b"second"),
            ]
        )
        assert sorted(won) == [False, True], (round_, won)
        winner = b"first" if won[0] else b"second"
        assert one.get(key) == winner
        assert two.swap(key, winner, b"next")  # the loser's stale replica is no obstacle


def test_two_stores_writing_a_batch_if_from_the_same_state_never_both_win(
    jetstream_store_factory,
):
    """A record and its index entry written together, each store expecting the record
    as it read it: one batch is stored whole, the other not at all."""
    first, second = jetstream_store_factory(), jetstream_store_factory()
    one, two = first.bucket("records"), second.bucket("records")
    for round_ in range(10):
        key = f"r{round_}"
        old = None if round_ % 2 else b"open"
        if old is not None:
            one.set(key, old)
        won = race(
            [
                lambda key=key, old=old: one.batch_if(
                    {key: old}, set={key: b"first", f"i-first-{key}": b""}
                ),
                lambda key=key, old=old: two.batch_if(
                    {key: old}, set={key: b"second", f"i-second-{key}": b""}
                ),
            ]
        )
        assert sorted(won) == [False, True], (round_, won)
        winner = "first" if won[0] else "second"
        loser = "second" if won[0] else "first"
        assert one.get(key) == winner.encode()
        assert one.get(f"i-{winner}-{key}") == b"" and one.get(f"i-{loser}-{key}") is None


async def test_concurrent_increments_through_swap_lose_no_update(jetstream_store_factory):
    first = jetstream_store_factory().bucket("counters")
    first.set("n", b"0")
    buckets = [first, jetstream_store_factory().bucket("counters")]  # loaded with n
    rounds = 40

    def increment(bucket):
        retries = 0
        for _ in range(rounds):
            while True:
                current = bucket.get("n")
                if bucket.swap("n", current, str(int(current) + 1).encode()):
                    break
                retries += 1
        return retries

    race([lambda b=bucket: increment(b) for bucket in buckets])
    # Each replica reaches the last increment (the other store's may still be on its
    # way); a lost update would leave them short of it for good.
    total = str(2 * rounds).encode()
    await until(lambda: all(bucket.get("n") == total for bucket in buckets), timeout=5)


async def test_an_atomic_batch_the_server_refuses_writes_nothing(
    jetstream_server, jetstream_store_factory
):
    store = jetstream_store_factory()
    bucket = store.bucket("records")
    bucket.set_many({"a": b"old", "b": b"old"})
    # Let the stream refuse values over 100 bytes: only the server knows, so the batch
    # leaves the client whole and the server must drop all of it.
    nc = await nats.connect(jetstream_server.url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(bucket._stream)
        await js.update_stream(info.config.evolve(max_msg_size=100))
        with pytest.raises(BucketStoreError, match="refused writing a batch"):
            bucket.batch(set={"a": b"new", "big": b"x" * 200, "c": b"new"}, delete=["b"])
        with pytest.raises(BucketStoreError, match="refused writing a batch"):
            bucket.batch(set=[("a", b"new"), ("c", b"new"), ("big", b"x" * 200)])
        assert (await js.stream_info(bucket._stream)).state.last_seq == 2
    finally:
        await nc.close()
    assert dict(bucket.items()) == {"a": b"old", "b": b"old"}
    fresh = jetstream_store_factory().bucket("records")  # what the servers hold
    assert dict(fresh.items()) == {"a": b"old", "b": b"old"}


def test_batches_up_to_the_servers_limit(jetstream_store_factory):
    bucket = jetstream_store_factory().bucket("big")
    with pytest.raises(BucketStoreError, match=f"more than the {BATCH_LIMIT}"):
        bucket.set_many((f"k{i:05d}", b"v") for i in range(BATCH_LIMIT + 1))
    assert bucket.count() == 0
    bucket.set_many((f"k{i:05d}", b"v") for i in range(BATCH_LIMIT))
    fresh = jetstream_store_factory().bucket("big")
    assert fresh.count() == BATCH_LIMIT


def test_values_larger_than_the_servers_payload_are_refused_naming_the_key(
    jetstream_store_factory,
):
    from bucketstore import InvalidValueError

    bucket = jetstream_store_factory().bucket("b")
    with pytest.raises(InvalidValueError, match=r"'huge'.*max_payload"):
        bucket.set("huge", b"x" * (8 << 20))
    assert bucket.get("huge") is None


def test_a_stopped_server_gives_a_clear_error_in_time(tmp_path):
    server = JetStreamServer(tmp_path / "alone").start()
    store = JetStreamStore(servers=server.url, timeout=1.0)
    try:
        bucket = store.bucket("b")
        bucket.set("k", b"v")
        server.stop()
        for write in (
            lambda: bucket.set("k", b"w"),
            lambda: bucket.set_many({"a": b"1", "b": b"2"}),
            lambda: bucket.swap("k", b"v", b"w"),
            lambda: store.bucket("another"),
        ):
            began = time.monotonic()
            with pytest.raises(StoreUnavailableError, match=r"no answer within 1.0 s"):
                write()
            assert time.monotonic() - began < 2.5
        assert bucket.get("k") == b"v"  # reads are local: the last known state
    finally:
        server.stop()
        store.close()
        store.close()


def test_no_server_at_all_is_a_clear_error_in_time(tmp_path):
    server = JetStreamServer(tmp_path / "never-started")  # its port, never listened on
    began = time.monotonic()
    with pytest.raises(StoreUnavailableError, match="connecting"):
        JetStreamStore(servers=server.url, timeout=1.0)
    assert time.monotonic() - began < 2.5


async def test_three_replicas_survive_losing_a_server(tmp_path):
    servers = cluster_of_three(tmp_path)
    urls = [server.url for server in servers]
    stores = []
    try:
        store = JetStreamStore(servers=urls, replicas=3, timeout=2.0)
        stores.append(store)
        bucket = store.bucket("tds")  # retries while the cluster elects its leaders
        bucket.set_many({f"urn:dev:{i}": b"td" for i in range(100)})
        watching = JetStreamStore(servers=urls, timeout=2.0)  # another node
        stores.append(watching)
        assert watching.bucket("tds").count() == 100
        leader = store._run(store._js.stream_info(bucket._stream), "info").cluster.leader
        next(server for server in servers if server.name == leader).kill()
        # Writable again once the other two elect a leader (a few seconds); each
        # attempt waits up to the timeout, the whole is bounded.
        began = time.monotonic()
        while True:
            try:
                bucket.set("urn:dev:after", b"td")
                break
            except StoreUnavailableError:
                assert time.monotonic() - began < 30, "no write accepted 30 s after the kill"
        assert bucket.count() == 101
        # The other node's watch follows the stream to its new leader.
        await until(lambda: watching.bucket("tds").get("urn:dev:after") == b"td", timeout=15)
        # And the two remaining servers hold it all: a store opened now loads it.
        again = JetStreamStore(servers=urls, timeout=2.0)
        stores.append(again)
        assert again.bucket("tds").count() == 101
        assert again.bucket("tds").get("urn:dev:7") == b"td"
    finally:
        for store in stores:
            store.close()
        for server in servers:
            server.stop()


def test_a_write_whose_acknowledgement_comes_late_is_sent_again_and_counted_once(
    jetstream_store_factory, monkeypatch, caplog
):
    """Each attempt waits a short time for its acknowledgement (as after a stream leader
    was lost), then the write goes again: a plain write stores the same value again; a
    conditional write whose first attempt was stored recognises it by its write id, so
    it succeeds once and is not taken for a lost race."""
    monkeypatch.setattr("bucketstore.jetstream._FIRST_ATTEMPT", 1e-4)  # too short for any
    store = jetstream_store_factory()
    bucket, other = store.bucket("counters"), jetstream_store_factory().bucket("counters")
    bucket.set("plain", b"1")
    for number in range(1, 21):
        old = None if number == 1 else str(number - 1).encode()
        assert bucket.swap("next", old, str(number).encode()), number
    assert bucket.get("plain") == b"1"
    assert bucket.get("next") == b"20"
    assert "sending it again" in caplog.text  # the short attempts did time out
    # Another store's replica agrees, and its own conditional write from a stale value
    # is refused: the retries left nothing half-done.
    until_sync = time.monotonic() + 10
    while other.get("next") != b"20" and time.monotonic() < until_sync:
        time.sleep(0.01)  # polls the replica's watch (a condition with a deadline)
    assert other.get("next") == b"20"
    assert not other.swap("next", b"19", b"stale")


def test_a_conditional_write_the_leader_cannot_commit_is_unavailable_not_a_lost_race(tmp_path):
    """The stream's leader alone, its followers killed: it still takes writes but no
    quorum commits them. The first attempt's batch stays in flight, so the next attempt
    is refused ("wrong last sequence") while the server still holds the expected value.
    That is the store not answering (503 at the bindings), not a race lost 20 times."""
    servers = cluster_of_three(tmp_path)
    store = None
    try:
        store = JetStreamStore(servers=[s.url for s in servers], replicas=3, timeout=2.0)
        bucket = store.bucket("accounts")  # retries while the cluster elects its leaders
        assert bucket.swap("ann", None, b"1")
        leader = store._run(store._js.stream_info(bucket._stream), "info").cluster.leader
        for server in servers:
            if server.name != leader:
                server.kill()  # the leader notices the lost quorum only after ~10 s
        began = time.monotonic()
        with pytest.raises(StoreUnavailableError):
            bucket.swap("bob", None, b"1")
        assert time.monotonic() - began < 2.0 + 1.5
        assert bucket.get("ann") == b"1"
    finally:
        if store is not None:
            store.close()
        for server in servers:
            server.stop()


def test_a_write_waits_write_wait_for_a_server_that_comes_back(tmp_path, caplog):
    """A starting node's writes wait ``write_wait`` (the cluster's wait), not the 1 s
    timeout, for JetStream to answer: the write goes through once the server is back."""
    server = JetStreamServer(tmp_path / "js").start()
    store = JetStreamStore(servers=server.url, timeout=1.0)
    try:
        bucket = store.bucket("b")
        bucket.set("k", b"v")
        store.write_wait = 20.0
        server.stop()
        outcome: list[object] = []
        writing = threading.Thread(target=lambda: outcome.append(bucket.set("k", b"w")))
        writing.start()
        waited = time.monotonic() + 10
        while "sending it again" not in caplog.text and time.monotonic() < waited:
            time.sleep(0.01)  # polls for the first attempt's timeout (a condition)
        assert "sending it again" in caplog.text  # past the first attempt, still waiting
        server.start()
        writing.join(25)
        assert outcome == [None]
        assert bucket.get("k") == b"w"
    finally:
        store.close()
        server.stop()


async def test_health_reports_a_stream_that_does_not_answer_and_the_others(
    jetstream_store_factory, jetstream_server
):
    """Each bucket answers for itself: one whose stream is gone (or has no leader yet)
    carries its error, and the others their replicas, rather than the whole report
    failing (``wothub cluster status`` shows them all)."""
    store = jetstream_store_factory()
    store.bucket("things").set("a", b"1")
    store.bucket("clients").set("b", b"2")
    nc = await nats.connect(jetstream_server.url)
    try:
        await nc.jetstream().delete_stream(store.bucket("clients")._stream)
    finally:
        await nc.close()
    health = await asyncio.to_thread(store.health)
    buckets = {bucket["bucket"]: bucket for bucket in health["buckets"]}
    assert set(buckets["clients"]) == {"bucket", "error"} and buckets["clients"]["error"]
    assert buckets["things"]["keys"] == 1 and buckets["things"]["replicas"] == 1
