"""Value history (docs/history.md), each figure next to a baseline from the same run.

- property_updates: an agent's property reports through the router (as in
  bench/digitwin.py, to one subscriber) plus the write-behind flush, with history on.
  Baseline: the same with history off (goal: a ratio of at least 0.8).
- downsample_day: one day of 1 Hz values (86,400) downsampled to 500 buckets (step
  172.8 s), a query's latency in ms (goal: within 50 ms). Baseline: iterating over the
  same 86,400 keys and values of the store, doing nothing with them.
- raw_page: a page of the 1,000 newest values, in ms. Baseline: the bucket's ``page``
  of the same 1,000 items (no decoding, no times).
- bytes_per_value: the LevelDB files after a compaction, per stored value. Baseline:
  the bytes of the key and the JSON value, uncompressed.
- downsample_day_3m: the same day into 480 buckets of 3 minutes (a step of whole
  minutes, which the history stream answers from its per-minute rollups).
- downsample_day, downsample_day_3m and raw_page on jetstream: the same queries on
  cluster mode's history stream (digitwin/history_jetstream.py) on a nats-server of
  their own (one server, one replica, on loopback). Baseline: the LevelDB figure of the
  same run. The day is written as the hub writes it: a value a second, a flush a
  second, on a simulated clock (so a minute's rollup goes out once it has ended, and
  the query reads the last minutes from their values); ``rollups_per_minute`` is the
  rollup messages of the series per minute (goal: 1).

    python bench/history.py [--json] [--rounds N] [--updates N]
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from _harness import Result, arguments, bench_td, best_of, report, unshadow_packages
from _routing import AllowAll, property_reports

unshadow_packages()
from bucketstore import open_store  # noqa: E402
from core.router import Router  # noqa: E402
from digitwin.core import TwinConfig  # noqa: E402
from digitwin.history import (  # noqa: E402
    PROPERTY,
    History,
    HistoryConfig,
    open_history,
    series_prefix,
)
from vocabulary import clock  # noqa: E402

THING = "urn:dev:thermostat:000001"
TD = bench_td(THING, "Thermostat", temperature={"type": "number"})
DAY = 86_400
BUCKETS = 500
STEP = "172800ms"  # 86,400 s / 172.8 s: 500 buckets (the day starts on one)
MINUTES_STEP, MINUTES_BUCKETS = "3m", 480  # whole minutes: JetStream reads rollups


def property_updates(tmp: str, count: int, rounds: int) -> Result:
    loop = asyncio.new_event_loop()
    routers = []

    def setup(name: str, enabled: bool):
        """A router on a store of its own, history on or off; its run: the reports
        through the router, then the write-behind flush (with the history after it)."""
        store = open_store(f"{tmp}/{name}")
        config = TwinConfig(history=HistoryConfig(enabled=enabled))
        router = Router(store, AllowAll(), twin_config=config)
        reports = property_reports(router, TD, count)

        async def reports_and_flush() -> int:
            await reports()
            router.flush()
            return count

        routers.append((store, router))
        return lambda: loop.run_until_complete(reports_and_flush())

    on, off = setup("on", True), setup("off", False)
    ours, base = best_of(rounds, on, off)
    stored = routers[0][1].twin.history._bucket.count()
    for store, _ in routers:
        store.close()
    loop.close()
    return Result(
        "property_updates",
        "leveldb",
        ours,
        base,
        "the same with history off",
        {"history_values": stored},
    )


def one_day(tmp: str, store=None, flush_every: int = 10_000) -> tuple[History, str, object]:
    """86,400 values at 1 Hz, written as the hub writes them (append, then flush every
    ``flush_every`` values). The history's clock is the day's (simulated): each flush
    happens half a second after its last value, and the day ends at the last one."""
    store = store or open_store(f"{tmp}/day")
    history = open_history(store)
    start = clock.parse_rfc3339("2026-01-01T00:00:00Z")
    now = [start]
    history.now = lambda: now[0]  # type: ignore[attr-defined]  # only JetStream reads it
    for second in range(DAY):
        value = round(20 + (second % 3600) / 360, 2)
        history.append(THING, PROPERTY, "temperature", value, clock.rfc3339(start + second))
        if (second + 1) % flush_every == 0:
            now[0] = start + second + 0.5
            history.flush()
    history.flush()
    return history, series_prefix(THING, PROPERTY, "temperature"), store


def rollup_messages(history, store) -> int:
    """The rollup messages of the day's series in the history stream (late ones too)."""
    rollups = history.rollup_subject(history.subject(series_prefix(THING, PROPERTY, "temperature")))

    async def count() -> int:
        js = store.connection.jetstream(timeout=store.timeout)
        info = await js.stream_info(history.stream, subjects_filter=rollups + ".>")
        late = sum((info.state.subjects or {}).values())
        info = await js.stream_info(history.stream, subjects_filter=rollups)
        return late + sum((info.state.subjects or {}).values())

    return store.call(count, "counting rollups")


def latency_ms(rounds: int, run) -> float:
    """The best of ``rounds`` calls of ``run``, in ms."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best * 1000


def minutes(history: History, prefix: str) -> None:
    """The day downsampled by whole minutes, checked."""
    from digitwin.history_query import parse_query, run_query

    params = {"step": MINUTES_STEP, "limit": MINUTES_BUCKETS, "order": "oldest"}
    buckets = run_query(history, prefix, parse_query(params))["items"]
    total = sum(b["count"] for b in buckets)
    assert len(buckets) == MINUTES_BUCKETS and total == DAY, (len(buckets), total, buckets[:3])


def queries(tmp: str, rounds: int) -> list[Result]:
    from digitwin.history_query import parse_query, run_query

    history, prefix, store = one_day(tmp)
    bucket = history._bucket
    downsample = parse_query({"step": STEP, "limit": BUCKETS, "order": "oldest"})
    raw = parse_query({"limit": 1000})
    buckets = run_query(history, prefix, downsample)["items"]
    assert len(buckets) == BUCKETS and sum(b["count"] for b in buckets) == DAY, len(buckets)
    assert len(run_query(history, prefix, raw)["items"]) == 1000

    def scan_only() -> None:
        for _ in bucket.items(prefix=prefix):
            pass

    day = latency_ms(rounds, lambda: run_query(history, prefix, downsample))
    day_base = latency_ms(rounds, scan_only)
    day_3m = latency_ms(rounds, lambda: minutes(history, prefix))
    page = latency_ms(rounds, lambda: run_query(history, prefix, raw))
    page_base = latency_ms(rounds, lambda: bucket.page(None, 1000, prefix=prefix, reverse=True))

    store._db.compact_range()
    files = sum(f.stat().st_size for f in Path(f"{tmp}/day").iterdir() if f.is_file())
    plain = sum(len(key.encode()) + len(value) for key, value in bucket.items(prefix=prefix))
    store.close()
    return [
        Result("downsample_day", "leveldb", day, day_base, "iterate the 86,400 items", unit="ms"),
        Result(
            "downsample_day_3m", "leveldb", day_3m, day_base, "iterate the 86,400 items", unit="ms"
        ),
        Result("raw_page", "leveldb", page, page_base, "bucket.page of 1,000 items", unit="ms"),
        Result(
            "bytes_per_value",
            "leveldb",
            files / DAY,
            plain / DAY,
            "key + JSON value, uncompressed",
            {"store_bytes": files},
            unit="bytes",
        ),
    ]


def jetstream_queries(tmp: str, rounds: int, leveldb: list[Result]) -> list[Result]:
    """The day's queries on the history stream, beside the LevelDB figures."""
    from bindings.nats.server import find_binary, free_port
    from bucketstore.jetstream import JetStreamStore
    from digitwin.history_query import parse_query, run_query

    home = Path(tmp) / "nats"
    home.mkdir()
    conf, port = home / "server.conf", free_port()
    conf.write_text(f'listen: "127.0.0.1:{port}"\njetstream {{ store_dir: "{home / "js"}" }}\n')
    server = subprocess.Popen([find_binary(), "-c", str(conf)], stderr=subprocess.PIPE)
    try:
        assert server.stderr is not None
        for line in server.stderr:  # wait for readiness, then let it log to the pipe's end
            if b"Server is ready" in line:
                break
        threading.Thread(target=server.stderr.read, daemon=True).start()
        store = JetStreamStore(servers=f"nats://127.0.0.1:{port}", prefix="bench")
        try:
            started = time.perf_counter()
            history, prefix, _ = one_day(tmp, store, flush_every=1)
            ingest_s = time.perf_counter() - started
            per_minute = rollup_messages(history, store) / (DAY // 60)
            downsample = parse_query({"step": STEP, "limit": BUCKETS, "order": "oldest"})
            raw = parse_query({"limit": 1000})
            buckets = run_query(history, prefix, downsample)["items"]
            assert len(buckets) == BUCKETS and sum(b["count"] for b in buckets) == DAY
            assert len(run_query(history, prefix, raw)["items"]) == 1000
            day = latency_ms(rounds, lambda: run_query(history, prefix, downsample))
            day_3m = latency_ms(rounds, lambda: minutes(history, prefix))
            page = latency_ms(rounds, lambda: run_query(history, prefix, raw))
        finally:
            store.close()
    finally:
        server.terminate()
        server.wait(10)
    base = {r.bench: r.ops_per_s for r in leveldb}
    return [
        Result(
            "downsample_day",
            "jetstream",
            day,
            base["downsample_day"],
            "leveldb",
            {"rollups_per_minute": round(per_minute, 3), "ingest_s": round(ingest_s, 1)},
            unit="ms",
        ),
        Result(
            "downsample_day_3m",
            "jetstream",
            day_3m,
            base["downsample_day_3m"],
            "leveldb",
            unit="ms",
        ),
        Result("raw_page", "jetstream", page, base["raw_page"], "leveldb", unit="ms"),
    ]


def main() -> None:
    args = arguments(
        __doc__.splitlines()[0],
        rounds=7,
        **{"--updates": {"type": int, "default": 20_000, "help": "property updates a round"}},
    )
    with tempfile.TemporaryDirectory() as tmp:
        results = [property_updates(tmp, args.updates, args.rounds)]
        leveldb = queries(tmp, args.rounds)
        results += leveldb + jetstream_queries(tmp, args.rounds, leveldb)
    report(results, args.json)


if __name__ == "__main__":
    main()
