"""One-time join tokens (auth/join_tokens.py) on a real LevelDB store, and on two
JetStream stores that share a server (two cluster nodes): a token works once, even when
two nodes redeem it at the same moment."""

import asyncio
import threading

import pytest

from auth.join_tokens import (
    BUCKET,
    KEEP_SPENT,
    JoinTokens,
    SpentJoinToken,
    UnknownJoinToken,
)
from bucketstore import open_store
from tests.waiting import until
from vocabulary import clock


@pytest.fixture
def store(tmp_path):
    with open_store(tmp_path / "store", "leveldb") as store:
        yield store


def test_a_token_works_once_and_only_its_hash_is_stored(store):
    tokens = JoinTokens(store.bucket(BUCKET))
    token, record = tokens.create("admin", ttl=600)
    assert len(token) >= 40  # 32 random bytes, base64url
    assert record.expires - record.created == 600
    stored = list(store.bucket(BUCKET).items())
    assert len(stored) == 1
    assert token not in stored[0][0] and token.encode() not in stored[0][1]

    used = tokens.redeem(token, used_by="192.0.2.7")
    assert (used.created_by, used.used_by) == ("admin", "192.0.2.7")
    with pytest.raises(SpentJoinToken, match="was used at") as refused:
        tokens.redeem(token, used_by="192.0.2.8")
    assert refused.value.status == 403
    # Another token is its own.
    other, _ = tokens.create("admin")
    assert tokens.redeem(other, used_by="192.0.2.8").used is not None


def test_expired_and_unknown_tokens_are_refused(store):
    tokens = JoinTokens(store.bucket(BUCKET))
    now = clock.now()
    token, record = tokens.create("admin", ttl=60, now=now - 61)
    with pytest.raises(SpentJoinToken, match=f"expired at {clock.rfc3339(record.expires)}"):
        tokens.redeem(token, used_by="192.0.2.7", now=now)
    for unknown in ("no-such-token", "", None, 42, "x" * 10_000):
        with pytest.raises(UnknownJoinToken) as refused:
            tokens.redeem(unknown, used_by="192.0.2.7")
        assert refused.value.status == 401


def test_the_time_to_live_is_bounded(store):
    tokens = JoinTokens(store.bucket(BUCKET))
    for ttl in (59, 7 * 86400 + 1):
        with pytest.raises(ValueError, match="60 to 604800 seconds"):
            tokens.create("admin", ttl=ttl)
    assert store.bucket(BUCKET).count() == 0


def test_spent_tokens_are_removed_a_day_later(store):
    bucket = store.bucket(BUCKET)
    tokens = JoinTokens(bucket)
    now = clock.now()
    old, _ = tokens.create("admin", ttl=60, now=now - KEEP_SPENT - 120)
    recent, _ = tokens.create("admin", ttl=60, now=now - 120)  # expired, still explained
    tokens.create("admin", now=now)
    assert bucket.count() == 2
    with pytest.raises(UnknownJoinToken):
        tokens.redeem(old, used_by="192.0.2.7")
    with pytest.raises(SpentJoinToken, match="expired"):
        tokens.redeem(recent, used_by="192.0.2.7")


async def test_two_nodes_redeeming_one_token_at_once_one_wins(jetstream_store_factory):
    one = JoinTokens(jetstream_store_factory().bucket(BUCKET))
    two_bucket = jetstream_store_factory().bucket(BUCKET)
    two = JoinTokens(two_bucket)
    for round in range(5):  # five tokens, each raced by both nodes
        token, _ = one.create("admin")
        # Node two's replica has the new record before the race starts.
        await until(lambda round=round: two_bucket.count() == round + 1, timeout=5)
        start = threading.Barrier(2)

        def redeem(tokens: JoinTokens, node: str, token=token, start=start) -> str:
            start.wait(5)
            try:
                tokens.redeem(token, used_by=node)
                return "won"
            except SpentJoinToken as exc:
                return exc.detail

        results = await asyncio.gather(
            asyncio.to_thread(redeem, one, "one"), asyncio.to_thread(redeem, two, "two")
        )
        assert results.count("won") == 1, results
        lost = next(result for result in results if result != "won")
        assert "used" in lost, results  # the loser is told the token was used
