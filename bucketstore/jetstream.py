"""JetStream key-value backend: buckets replicated by a NATS cluster (for cluster mode).

Each store bucket is one JetStream KV bucket (a stream ``KV_<prefix>_<name>`` with one
message per key). Writes go to the servers and return once JetStream acknowledged them,
that is once the stream's replicas stored them. Reads never leave the process: every
bucket keeps a local replica (a SortedDict, as in memory.py, plus each key's revision),
loaded and kept current by a KV watch, so ordering, seeking and paging cost what they
cost in memory. Other stores' writes reach the replica through the watch (eventually);
this store's own writes are applied to it as soon as they are acknowledged.

The API is synchronous like every backend's. The NATS connection lives on a private
event loop on a thread of the store; each call hands a coroutine to that loop and
waits for it, at most ``timeout`` seconds.

Names: a bucket name becomes lowercase base32 (stream names are directory names on the
server, which may be case-insensitive); a key becomes base64url (one subject token).
Neither has padding. Batches use JetStream's atomic batch publish (the stream allows
it), so they are all-or-nothing on the server too. ``batch_if`` (and ``swap``, which is
``batch_if`` on one key) is a compare-and-set on the keys' revisions, checked by the
server inside the atomic batch.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import json
import logging
import os
import re
import ssl
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import api
from sortedcontainers import SortedDict

from .api import (
    Bucket,
    BucketStore,
    Items,
    Range,
    check_bucket_name,
    check_expected,
    check_key,
    check_value,
)
from .errors import (
    BucketStoreError,
    InvalidKeyError,
    InvalidValueError,
    StoreClosedError,
    StoreUnavailableError,
)
from .memory import select

log = logging.getLogger(__name__)
T = TypeVar("T")

BATCH_LIMIT = 1000  # nats-server refuses atomic batches of more messages
MAX_KEY_BYTES = 2048  # UTF-8; its subject must fit the server's 4 KiB protocol line
_HEADER_ROOM = 1024  # of max_payload, left for the headers of a batch
_STREAM_NAME_MAX = 255  # nats-server's limit
_PREFIX = re.compile(r"[A-Za-z0-9-]+\Z")  # no "_": it separates prefix and bucket
_KV_OP = "KV-Operation"
_WRITER = "Wothub-Writer"  # which store wrote a message: its own are not "changes"
_WRITE_ID = "Wothub-Write"  # one conditional write, the same in each of its attempts
_MARKER_REASON = "Nats-Marker-Reason"  # server-placed deletes (TTL, max age)
_EXPECTED_LAST = "Nats-Expected-Last-Subject-Sequence"
_WRONG_LAST = (10071, 10164)  # JetStream's "wrong last sequence" error codes
# Pauses between attempts of a conditional write refused while the value it expects is
# still there: the key has a write in flight (another node's, or an earlier attempt of
# this one that no quorum has committed yet). Doubling from the first, up to the last.
_IN_FLIGHT_PAUSE = (0.005, 0.1)
ELECTION_WAIT = 10.0  # seconds opening a bucket waits for a starting cluster, by default
# JetStream's errors while fewer servers are up than replicas: insufficient resources,
# no suitable peers for placement.
_TOO_FEW_SERVERS = {10023, 10005}
_NO_STREAM_PAUSE = 0.05  # seconds between writes while a stream has no leader
_FIRST_ATTEMPT = 1.0  # seconds a write's first attempt waits for its acknowledgement
# How long the acknowledgement of the current attempt is waited for (_answered sets it).
_attempt_timeout: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "attempt_timeout", default=None
)
_WATCH_HEARTBEAT = 1.0  # seconds; a watch that misses two re-creates its consumer


def _b32(text: str) -> str:
    return base64.b32encode(text.encode()).decode().rstrip("=").lower()


def _unb32(token: str) -> str:
    padded = token.upper() + "=" * (-len(token) % 8)
    return base64.b32decode(padded).decode()


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


subject_token = _b64  # any text as one subject token, as the buckets' keys are


def _unb64(token: str) -> str:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()


subject_text = _unb64  # a subject token back to its text


def kv_name(prefix: str, bucket: str) -> str:
    """The JetStream KV bucket that holds store bucket ``bucket`` (its stream is
    ``KV_`` and this name): what an operator or a benchmark looks up on the server."""
    return f"{prefix}_{_b32(bucket)}"


async def _cancel_tasks() -> None:
    """Cancel every other task of this loop and wait for them to finish."""
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _while_electing(
    nc: Any, request: Callable[[], Awaitable[T]], timeout: float, wait: float = ELECTION_WAIT
) -> T:
    """``request()``, again while the cluster answers but is not ready yet.

    A cluster elects its meta leader shortly after it starts, and a new stream its own
    leader (a few seconds at worst); until then requests go unanswered or are refused
    as unavailable, and a stream with more replicas than servers up is refused for lack
    of resources (the other nodes are still starting). While connected, this retries for
    ``wait`` seconds (or ``timeout``, if longer), with short attempts first so that one
    lost request does not use up the time; the requests made here (creating a stream, a
    watch) may repeat.
    """
    deadline = time.monotonic() + max(timeout, wait)
    attempt = 0.5
    while True:
        left = deadline - time.monotonic()
        try:
            return await asyncio.wait_for(request(), min(attempt, timeout, left))
        except (TimeoutError, nats.js.errors.ServiceUnavailableError):
            if not nc.is_connected or time.monotonic() + 0.1 > deadline:
                raise
        except nats.js.errors.APIError as exc:
            if exc.err_code not in _TOO_FEW_SERVERS or time.monotonic() + 0.1 > deadline:
                raise
        attempt = min(attempt * 2, 5.0)
        await asyncio.sleep(0.1 if attempt < 5.0 else 0.5)


class _Replica:
    """A bucket's local copy: key -> value in order, key -> revision.

    Written from the store's loop thread (the watch, acknowledged writes), read from the
    caller's: a lock makes each read a consistent view. The watch delivers the stream in
    order, so once it has passed a revision (``watched``), the copy holds that revision
    or newer for every key, and a write's acknowledgement that arrives later than the
    watch's update changes nothing. A write applied ahead of the watch leaves its
    revision behind even when it deletes (a tombstone, until the watch passes it), so
    an older update still on its way through the watch cannot bring the key back.
    """

    __slots__ = ("data", "lock", "revisions", "watched")

    def __init__(self) -> None:
        self.data: SortedDict = SortedDict()
        self.revisions: dict[str, int] = {}
        self.watched = 0  # the last revision the watch delivered
        self.lock = threading.Lock()

    def apply(self, key: str, value: bytes | None, revision: int, watched: bool = False) -> bool:
        """Whether this brought a revision of the key the replica did not have yet (from
        the watch: a write of this store too, when its acknowledgement comes after the
        watch's update)."""
        with self.lock:
            if watched:
                self.watched = revision
            elif revision <= self.watched:
                return False
            known = self.revisions.get(key, 0)
            if revision < known:
                return False
            if value is not None:
                self.data[key] = value
                self.revisions[key] = revision
            else:
                self.data.pop(key, None)
                if watched:  # nothing older can follow it
                    self.revisions.pop(key, None)
                else:
                    self.revisions[key] = revision
            return revision != known

    def current(self, key: str) -> tuple[bytes | None, int]:
        with self.lock:
            return self.data.get(key), self.revisions.get(key, 0)


class JetStreamBucket(Bucket):
    max_batch = BATCH_LIMIT

    def __init__(self, store: JetStreamStore, name: str, kv_name: str) -> None:
        self.name = name
        self._store = store
        self._stream = f"KV_{kv_name}"
        self._pre = f"$KV.{kv_name}."
        self._replica = _Replica()
        self._watch: Any = None
        self._listeners: list[tuple[Callable[[str], object], asyncio.AbstractEventLoop]] = []
        # (revision, future): set once the watch has delivered that revision
        self._catching_up: list[tuple[int, asyncio.Future[None]]] = []

    # -- reads: the local replica ---------------------------------------------------------

    def _check_open(self) -> None:
        if self._store.closed:
            raise StoreClosedError(f"{self._store} is closed (bucket {self.name!r})")

    def get(self, key: str) -> bytes | None:
        self._check_open()
        return self._replica.data.get(check_key(key))

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        self._check_open()
        wanted = [check_key(key) for key in keys]
        with self._replica.lock:
            data = self._replica.data
            return {key: data[key] for key in wanted if key in data}

    def count(self) -> int:
        self._check_open()
        return len(self._replica.data)

    def on_change(self, callback: Callable[[str], object], loop: asyncio.AbstractEventLoop) -> None:
        self._listeners.append((callback, loop))

    def _range(
        self, bounds: Range, reverse: bool, keys: bool, values: bool, limit: int | None
    ) -> Iterator[Any]:
        self._check_open()
        with self._replica.lock:
            return select(self._replica.data, bounds, reverse, keys, values, limit)

    # -- writes: acknowledged by JetStream, then applied here -----------------------------

    def _subject(self, key: str) -> str:
        check_key(key)
        if len(key.encode()) > MAX_KEY_BYTES:
            raise InvalidKeyError(
                f"key {key[:40]!r}... is {len(key.encode())} bytes in UTF-8; the jetstream "
                f"backend takes at most {MAX_KEY_BYTES}"
            )
        return self._pre + _b64(key)

    def _check_value(self, key: str, value: Any) -> None:
        check_value(key, value)
        limit = self._store._max_value
        if len(value) > limit:
            raise InvalidValueError(
                f"value for key {key!r} is {len(value)} bytes; this JetStream store takes at "
                f"most {limit} (the server's max_payload less {_HEADER_ROOM} for headers)"
            )

    def set(self, key: str, value: bytes) -> None:
        self._check_open()
        subject = self._subject(key)
        self._check_value(key, value)
        value = bytes(value)
        write = self._store._answered(lambda: self._publish(key, subject, value))
        self._store._run(write, f"setting {key!r}", self)

    def delete(self, key: str) -> None:
        self._check_open()
        subject = self._subject(key)
        write = self._store._answered(lambda: self._publish(key, subject, None))
        self._store._run(write, f"deleting {key!r}", self)

    async def _publish(self, key: str, subject: str, value: bytes | None) -> api.PubAck:
        headers = {_WRITER: self._store.writer}
        if value is None:
            headers[_KV_OP] = "DEL"
        ack = await self._store._request(subject, value or b"", headers)
        self._replica.apply(key, value, ack.seq)
        return ack

    def batch(self, set: Items = (), delete: Iterable[str] = ()) -> None:
        self._check_open()
        writes = self._writes(set, delete)
        if writes:
            what = f"writing a batch of {len(writes)} keys"
            self._store._run(self._store._answered(lambda: self._publish_batch(writes)), what, self)

    def batch_if(
        self, expect: Mapping[str, bytes | None], set: Items = (), delete: Iterable[str] = ()
    ) -> bool:
        self._check_open()
        writes = self._writes(set, delete)
        expected = check_expected(expect, writes)
        what = f"writing a batch of {len(writes)} keys if {len(expected)} are as expected"
        write_id = uuid.uuid4().hex
        batch = self._store._answered(lambda: self._batch_if(writes, expected, write_id))
        return self._store._run(batch, what, self)

    async def _batch_if(
        self,
        writes: dict[str, tuple[str, bytes | None]],
        expected: dict[str, bytes | None],
        write_id: str,
    ) -> bool:
        # The replica's revisions are tried first (no extra round trip when it is
        # current); the server's answer decides: after a refusal, or when the replica
        # disagrees with what is expected (it may lag behind another node), read the
        # server. An earlier attempt of this write whose acknowledgement did not come may
        # have been stored: the server's message then carries this write's id.
        revisions = {}
        trust_replica = True
        for key, old in expected.items():
            value, revisions[key] = self._replica.current(key)
            trust_replica = trust_replica and value == old
        # A refusal while the server still holds the expected values means a write to
        # one of the keys is in flight; it ends committed or dropped, so this asks again
        # until the attempt's time is up (then no quorum commits: a timeout, not a race).
        deadline = time.monotonic() + (_attempt_timeout.get() or self._store.timeout)
        pause = 0.0
        while True:
            if not trust_replica:
                for key, old in expected.items():
                    value, revisions[key], stored_by = await self._read_server(key, writes[key][0])
                    if stored_by == write_id:
                        return True
                    if value != old:
                        return False
            try:
                await self._publish_batch(writes, revisions, write_id)
                return True
            except nats.js.errors.APIError as exc:
                if exc.err_code not in _WRONG_LAST:
                    raise
            if not trust_replica:  # the server agreed, yet refused: in flight
                first, most = _IN_FLIGHT_PAUSE
                pause = min(most, pause * 2 or first)
                if time.monotonic() + pause > deadline:
                    raise nats.errors.TimeoutError
                await asyncio.sleep(pause)
            trust_replica = False

    def _writes(self, set: Items, delete: Iterable[str]) -> dict[str, tuple[str, bytes | None]]:
        """key -> (subject, value or None to delete), checked, for one atomic batch."""
        writes: dict[str, tuple[str, bytes | None]] = {}
        for key in delete:
            writes[key] = (self._subject(key), None)
        for key, value in set.items() if isinstance(set, Mapping) else set:
            subject = self._subject(key)
            self._check_value(key, value)
            writes[key] = (subject, bytes(value))  # a key in both ends up set
        if len(writes) > BATCH_LIMIT:
            raise BucketStoreError(
                f"bucket {self.name!r}: a batch of {len(writes)} keys is more than the "
                f"{BATCH_LIMIT} one atomic JetStream batch can hold"
            )
        return writes

    async def _publish_batch(
        self,
        writes: dict[str, tuple[str, bytes | None]],
        expected: dict[str, int] | None = None,
        write_id: str | None = None,
    ) -> None:
        """One atomic batch: the server stores every message or none, at consecutive
        sequence numbers, and acknowledges only the last (the commit)."""
        batch_id = uuid.uuid4().hex
        last = len(writes)
        publish = self._store._nc.publish
        ack = None
        for number, (key, (subject, value)) in enumerate(writes.items(), 1):
            headers = {
                "Nats-Batch-Id": batch_id,
                "Nats-Batch-Sequence": str(number),
                _WRITER: self._store.writer,
            }
            if value is None:
                headers[_KV_OP] = "DEL"
            if write_id is not None:
                headers[_WRITE_ID] = write_id
            if expected is not None and key in expected:  # the server refuses the batch
                headers[_EXPECTED_LAST] = str(expected[key])  # if the key moved on
            if number < last:
                await publish(subject, value or b"", headers=headers)
            else:
                headers["Nats-Batch-Commit"] = "1"
                ack = await self._store._request(subject, value or b"", headers)
        assert ack is not None
        first = ack.seq - last + 1
        for offset, (key, (_subject, value)) in enumerate(writes.items()):
            self._replica.apply(key, value, first + offset)

    async def _read_server(self, key: str, subject: str) -> tuple[bytes | None, int, str | None]:
        """The key's current value (None when missing), revision and write id (of a
        conditional write), from the stream's leader. Not a direct get: any replica
        answers those, a follower that lags too (just after a leader change), and a
        conditional write that decided on its answer could be refused again and again,
        or report a change that is not there."""
        try:
            msg = await self._store._js.get_msg(self._stream, subject=subject, direct=False)
        except nats.js.errors.NotFoundError:
            return None, 0, None
        headers = msg.headers or {}
        deleted = _KV_OP in headers or _MARKER_REASON in headers
        value = None if deleted else (msg.data or b"")
        # Another store's change learned here is reported here: the watch, when it
        # brings the same revision later, finds nothing new.
        if self._replica.apply(key, value, msg.seq) and headers.get(_WRITER) != self._store.writer:
            self._report(key)
        await self._caught_up(msg.seq)
        return value, msg.seq, headers.get(_WRITE_ID)

    async def _caught_up(self, revision: int) -> None:
        """Wait until the watch has delivered ``revision`` (at most ``timeout``), so the
        replica holds everything written before it too. A conditional write that read
        the server because the replica lagged decides on that revision; what it decides
        (the next arrival number of a request queue) must come with what was written
        before (the requests that number follows), or a read right after the write
        misses them."""
        if self._replica.watched >= revision:
            return
        future = asyncio.get_running_loop().create_future()
        self._catching_up.append((revision, future))
        try:
            await asyncio.wait_for(asyncio.shield(future), self._store.timeout)
        except TimeoutError:
            log.warning("bucket %s: the watch is behind revision %d", self.name, revision)
        finally:
            if (revision, future) in self._catching_up:
                self._catching_up.remove((revision, future))

    def _watched(self, revision: int) -> None:
        """The watch delivered ``revision``: wake the writes waiting for it."""
        waiting = self._catching_up
        for entry in [entry for entry in waiting if entry[0] <= revision]:
            waiting.remove(entry)
            if not entry[1].done():
                entry[1].set_result(None)

    def _report(self, key: str) -> None:
        """Tell the on_change listeners, each on its loop, that another store changed
        ``key``."""
        for listener, loop in self._listeners:
            try:
                loop.call_soon_threadsafe(listener, key)
            except RuntimeError:  # its loop is closed: nobody listens any more
                log.debug("a change listener of bucket %s is gone", self.name)

    # -- the watch that keeps the replica current -----------------------------------------

    async def _open(self, replicas: int, timeout: float, wait: float) -> None:
        """Create the stream (or find it), then load the replica through a watch."""
        nc, js = self._store._nc, self._store._js
        config = api.StreamConfig(
            name=self._stream,
            subjects=[self._pre + ">"],
            # What nats-py's create_key_value sets for history 1, plus atomic batches.
            allow_direct=True,
            allow_rollup_hdrs=True,
            allow_msg_ttl=True,
            deny_delete=True,
            discard=api.DiscardPolicy.NEW,
            duplicate_window=120.0,
            max_consumers=-1,
            max_msgs=-1,
            max_msgs_per_subject=1,
            num_replicas=replicas,
            storage=api.StorageType.FILE,
            allow_atomic=True,
        )
        try:
            info = await _while_electing(nc, lambda: js.add_stream(config), timeout, wait)
        except nats.js.errors.APIError as exc:
            if exc.err_code != 10058:
                raise
            # It exists with another configuration (made elsewhere): use it as it is.
            info = await js.stream_info(self._stream)
            if not info.config.allow_atomic:
                info = await js.update_stream(info.config.evolve(allow_atomic=True))
        await self._watch_from(info.state.messages, info.state.last_seq, timeout, wait)

    async def _watch_from(self, messages: int, last_seq: int, timeout: float, wait: float) -> None:
        loaded = asyncio.Event()
        if messages == 0:
            loaded.set()
        pre = len(self._pre)
        replica = self._replica
        apply = replica.apply
        writer = self._store.writer

        async def on_message(msg: Msg) -> None:
            seq = msg.metadata.sequence.stream
            headers = msg.headers
            deleted = headers is not None and (_KV_OP in headers or _MARKER_REASON in headers)
            key = _unb64(msg.subject[pre:])
            changed = apply(key, None if deleted else msg.data, seq, watched=True)
            if changed and (headers is None or headers.get(_WRITER) != writer):
                self._report(key)
            if self._catching_up:
                self._watched(seq)
            if seq >= last_seq:
                loaded.set()

        subscribe = self._store._js.subscribe
        self._watch = await _while_electing(
            self._store._nc,
            lambda: subscribe(
                self._pre + ">",
                stream=self._stream,
                cb=on_message,
                ordered_consumer=True,
                deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT,
                # The consumer lives on one server: when that one is lost, the
                # missing heartbeats make nats-py re-create it where the stream went.
                idle_heartbeat=_WATCH_HEARTBEAT,
            ),
            timeout,
            wait,
        )
        # Loading a large bucket may take longer than one timeout: wait while it moves.
        try:
            while True:
                before = replica.watched
                try:
                    await asyncio.wait_for(loaded.wait(), timeout)
                    return
                except TimeoutError:
                    if replica.watched == before:
                        raise
        except BaseException:
            await self._watch.unsubscribe()
            raise


class JetStreamStore(BucketStore):
    """Buckets in JetStream KV buckets on ``servers`` (a URL or a list of them).

    ``tls`` (an ssl.SSLContext), ``nkeys_seed`` (a seed string) or ``user``/``password``
    authenticate; ``replicas`` is each new bucket's replica count; ``prefix`` keeps
    this store's buckets apart from other users of the same servers; ``timeout`` bounds
    every call in seconds; ``cluster_wait``: seconds opening a bucket waits for a
    starting cluster (its leaders, and enough servers for the replicas). ``path`` is
    only remembered. ``write_wait`` (``timeout`` unless set) is how long a write waits
    for a stream that has no leader: a starting node sets it to ``cluster_wait`` until
    it serves, since the other streams elect their leaders after the first opened.
    """

    backend = "jetstream"

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        servers: str | list[str],
        tls: ssl.SSLContext | None = None,
        nkeys_seed: str | None = None,
        user: str | None = None,
        password: str | None = None,
        replicas: int = 1,
        prefix: str = "wothub",
        timeout: float = 5.0,
        cluster_wait: float = ELECTION_WAIT,
    ) -> None:
        if not _PREFIX.match(prefix):
            raise InvalidKeyError(f"prefix {prefix!r} may only have letters, digits and '-'")
        self.path = Path(path) if path is not None else None
        self.servers = [servers] if isinstance(servers, str) else list(servers)
        self.prefix = prefix
        self.writer = uuid.uuid4().hex  # stamped on its writes (_WRITER)
        self.replicas = replicas
        self.timeout = timeout
        self.cluster_wait = cluster_wait
        self.write_wait = timeout
        self._buckets: dict[str, JetStreamBucket] = {}
        self._closed = False
        self._lock = threading.Lock()  # one bucket opening at a time
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"jetstream-store-{prefix}", daemon=True
        )
        self._thread.start()
        options = {"user": user, "password": password, "nkeys_seed_str": nkeys_seed}
        try:
            self._nc = self._run(self._connect(tls, options), "connecting")
        except BaseException:
            self._stop_loop()
            self._closed = True
            raise
        self._js = self._nc.jetstream(timeout=timeout)
        self._max_value = self._nc.max_payload - _HEADER_ROOM

    async def _connect(self, tls: ssl.SSLContext | None, options: dict[str, Any]) -> Any:
        async def error_cb(exc: Exception) -> None:
            log.debug("jetstream store %s: %s", self.servers, exc)

        # nats-py would try the servers forever (it reconnects without limit): bound it.
        connecting = nats.connect(
            self.servers,
            name=f"bucketstore-{self.prefix}",
            tls=tls,
            connect_timeout=self.timeout,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.2,
            error_cb=error_cb,
            **{name: value for name, value in options.items() if value is not None},
        )
        return await asyncio.wait_for(connecting, self.timeout)

    # -- running coroutines on the store's loop -------------------------------------------

    def _run(
        self,
        work: Coroutine[Any, Any, T],
        what: str,
        bucket: Bucket | None = None,
        bounded: bool = True,
    ) -> T:
        """Run ``work`` on the store's loop; NATS failures become bucketstore errors.

        Each request inside times out after ``timeout``; when ``bounded``, one second
        more is the safety net around the whole.
        """
        where = f"{self}" + (f", bucket {bucket.name!r}" if bucket is not None else "")
        wait = max(self.timeout, self.write_wait)
        future = asyncio.run_coroutine_threadsafe(work, self._loop)
        try:
            return future.result(wait + 1.0 if bounded else None)
        except (TimeoutError, nats.errors.TimeoutError):
            future.cancel()
            raise StoreUnavailableError(
                f"{where}: no answer within {wait} s while {what}"
            ) from None
        except nats.js.errors.APIError as exc:
            raise BucketStoreError(
                f"{where}: JetStream refused {what}: {exc.description or type(exc).__name__} "
                f"(code {exc.code}, error {exc.err_code})"
            ) from None
        except (nats.errors.Error, OSError) as exc:
            detail = str(exc) or type(exc).__name__
            raise StoreUnavailableError(f"{where}: {what} failed: {detail}") from None

    async def _request(self, subject: str, payload: bytes, headers: dict | None) -> api.PubAck:
        """Publish to the stream and wait for its acknowledgement (or its refusal)."""
        timeout = _attempt_timeout.get() or self.timeout
        msg = await self._nc.request(subject, payload, timeout=timeout, headers=headers)
        answer = json.loads(msg.data)
        if "error" in answer:
            nats.js.errors.APIError.from_error(answer["error"])  # raises it
        return api.PubAck.from_response(answer)

    async def _answered(self, write: Callable[[], Awaitable[T]]) -> T:
        """``write()``, again while no stream answers, for up to ``write_wait``.

        After a server is lost, a stream has no leader until the others elect one (a
        few seconds); meanwhile its subjects have no responders, or a leader just
        elected answers 503 (JetStream temporarily unavailable), and nothing is written,
        so the whole write can be repeated. A publish sent in that moment may also get
        no answer at all: each attempt waits 1 s for its acknowledgement, then twice as
        long, so the write goes to the new leader instead of waiting out the whole
        timeout (the callers' event loop waits meanwhile). Repeating is safe: a write
        stores the same values again, and a conditional write recognises its own
        earlier attempt by its write id.
        """
        wait = self.write_wait
        deadline = time.monotonic() + wait
        attempt = _FIRST_ATTEMPT
        while True:
            left = deadline - time.monotonic()
            token = _attempt_timeout.set(max(1e-4, min(attempt, left)))
            try:
                return await write()
            except (nats.errors.NoRespondersError, nats.js.errors.ServiceUnavailableError):
                if time.monotonic() + _NO_STREAM_PAUSE > deadline:
                    raise StoreUnavailableError(
                        f"no JetStream stream answered within {wait} s (its leader "
                        f"is being elected, JetStream is off, or the stream was deleted)"
                    ) from None
            except nats.errors.TimeoutError:
                if time.monotonic() + _NO_STREAM_PAUSE > deadline:
                    raise
                attempt = min(attempt * 2, self.timeout)
                log.warning("a JetStream write got no acknowledgement in time; sending it again")
            finally:
                _attempt_timeout.reset(token)
            await asyncio.sleep(_NO_STREAM_PAUSE)  # paces the attempts

    # -- for other users of the same JetStream (digitwin/history_jetstream.py) ------------

    @property
    def connection(self) -> Any:
        """The store's NATS connection; use it only in coroutines given to ``call``."""
        return self._nc

    @property
    def max_value(self) -> int:
        """The largest value (message payload) this store writes, in bytes."""
        return self._max_value

    def call(self, work: Callable[[], Awaitable[T]], what: str) -> T:
        """``work()`` on the store's loop, again while no stream answers (as the
        buckets' writes); NATS failures become bucketstore errors naming ``what``."""
        if self._closed:
            raise StoreClosedError(f"{self} is closed")
        return self._run(self._answered(work), what)

    # -- buckets --------------------------------------------------------------------------

    def bucket(self, name: str) -> JetStreamBucket:
        bucket = self._buckets.get(name)
        if bucket is not None:
            return bucket
        check_bucket_name(name)
        kv = kv_name(self.prefix, name)
        if len(kv) + 3 > _STREAM_NAME_MAX:
            raise InvalidKeyError(f"bucket name {name[:40]!r}... is too long for JetStream")
        with self._lock:
            if self._closed:
                raise StoreClosedError(f"{self} is closed")
            bucket = self._buckets.get(name)
            if bucket is None:
                bucket = JetStreamBucket(self, name, kv)
                # Loading a large bucket may take longer than one timeout while it
                # progresses (_watch_from bounds it), so no overall limit here.
                opening = bucket._open(self.replicas, self.timeout, self.cluster_wait)
                self._run(opening, f"opening bucket {name!r}", bounded=False)
                self._buckets[name] = bucket
        return bucket

    def health(self) -> dict[str, Any]:
        """The server connected to, and for each open bucket its stream's replicas: the
        leader, and each other peer's state (current, lag, seconds since heard of); or
        the bucket's ``error`` when its stream did not answer (no leader yet, say)."""
        if self._closed:
            raise StoreClosedError(f"{self} is closed")
        return self._run(self._health(), "reading the buckets' state")

    async def _health(self) -> dict[str, Any]:
        # Asked all at once, each answering for itself: one stream electing its leader
        # (up to the timeout) neither hides the others nor adds up to more than that.
        named = sorted(self._buckets.items())
        infos = await asyncio.gather(
            *(self._js.stream_info(bucket._stream) for _, bucket in named),
            return_exceptions=True,
        )
        buckets = [_bucket_health(name, info) for (name, _), info in zip(named, infos, strict=True)]
        return {
            "backend": self.backend,
            "connected": self._nc.connected_url.geturl() if self._nc.connected_url else None,
            "buckets": buckets,
        }

    def buckets(self) -> list[str]:
        if self._closed:
            raise StoreClosedError(f"{self} is closed")
        names = self._run(self._stream_names(), "listing buckets")
        start = f"KV_{self.prefix}_"
        return sorted(_unb32(name[len(start) :]) for name in names if name.startswith(start))

    async def _stream_names(self) -> list[str]:
        names: list[str] = []
        while True:
            query = json.dumps({"offset": len(names)}).encode()
            msg = await self._nc.request("$JS.API.STREAM.NAMES", query, timeout=self.timeout)
            answer = json.loads(msg.data)
            if "error" in answer:
                nats.js.errors.APIError.from_error(answer["error"])  # raises it
            page = answer.get("streams") or []
            names += page
            if not page or len(names) >= answer.get("total", 0):
                return names

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            future = asyncio.run_coroutine_threadsafe(self._disconnect(), self._loop)
            future.result(self.timeout + 1.0)
        except Exception as exc:  # closing must not fail: the servers may be gone
            log.debug("closing %s: %s", self, exc)
        self._stop_loop()

    async def _disconnect(self) -> None:
        for bucket in self._buckets.values():
            if bucket._watch is not None:
                try:
                    await bucket._watch.unsubscribe()
                except nats.errors.Error as exc:
                    log.debug("unsubscribing %s: %s", bucket, exc)
        await self._nc.close()

    def _stop_loop(self) -> None:
        try:  # nats-py may leave tasks behind (a cancelled connect, a subscription's)
            asyncio.run_coroutine_threadsafe(_cancel_tasks(), self._loop).result(self.timeout)
        except Exception as exc:
            log.debug("stopping the loop of %s: %s", self, exc)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(self.timeout)
        if not self._thread.is_alive():
            self._loop.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        return f"<JetStreamStore {self.prefix!r} on {', '.join(self.servers)}>"


def _bucket_health(name: str, info: api.StreamInfo | BaseException) -> dict[str, Any]:
    """One bucket's part of ``health``: its replicas, or why its stream did not answer."""
    if isinstance(info, (nats.errors.Error, TimeoutError, OSError)):
        return {"bucket": name, "error": str(info) or type(info).__name__}
    if isinstance(info, BaseException):
        raise info
    cluster = info.cluster
    peers = [
        {
            "name": peer.name,
            "current": bool(peer.current),
            "offline": bool(peer.offline),
            "lag": peer.lag or 0,
            # JetStream gives nanoseconds since the leader last heard of it
            "seenAgo": None if peer.active is None else round(peer.active / 1e9, 3),
        }
        for peer in (cluster.replicas or [] if cluster else [])
    ]
    return {
        "bucket": name,
        "replicas": info.config.num_replicas,
        "leader": cluster.leader if cluster else None,
        "peers": peers,
        "keys": info.state.messages,
    }
