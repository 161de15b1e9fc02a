"""Bucket store throughput per backend, with raw plyvel as the LevelDB baseline.

The baseline does the same work with plyvel directly and inline, with no function of
ours in between: the same str keys, UTF-8-encoded and joined to the bucket prefix at
each call (plyvel takes only bytes), the same values, the same write batches. The
ratio is therefore the cost of the bucketstore layer itself.

    python bench/bucketstore.py [--json] [--rounds N]
"""

from __future__ import annotations

import tempfile

from _harness import Result, arguments, best_of, report, unshadow_packages

unshadow_packages()
from bucketstore import backend_names, open_store  # noqa: E402
from bucketstore.leveldb import LevelDBStore  # noqa: E402

SINGLE = 50_000  # keys for single set / get
BATCH = 1_000  # items per set_many
BATCHES = 20
SCAN = 100_000  # items in the full scan
VALUE = b"v" * 100
PREFIX = b"bench\x00"  # the LevelDB backend's prefix for bucket "bench"


def keys(count: int) -> list[str]:
    return [f"urn:dev:ops:{i:08d}/property" for i in range(count)]


def backend_runs(bucket):
    single, batch, scan = keys(SINGLE), keys(BATCH * BATCHES), keys(SCAN)
    batches = [[(k, VALUE) for k in batch[i : i + BATCH]] for i in range(0, len(batch), BATCH)]

    def set_one() -> int:
        put = bucket.set
        for key in single:
            put(key, VALUE)
        return SINGLE

    def get_one() -> int:
        get = bucket.get
        for key in single:
            get(key)
        return SINGLE

    def set_many() -> int:
        for items in batches:
            bucket.set_many(items)
        return BATCH * BATCHES

    def scan_all() -> int:
        count = 0
        for _key, _value in bucket.items(prefix="urn:dev:ops:"):
            count += 1
        assert count >= SCAN, count
        return count

    bucket.set_many([(k, VALUE) for k in scan])
    return {"set": set_one, "get": get_one, "set_many_1000": set_many, "scan_100000": scan_all}


def plyvel_runs(db):
    single, batch = keys(SINGLE), keys(BATCH * BATCHES)
    batches = [[(k, VALUE) for k in batch[i : i + BATCH]] for i in range(0, len(batch), BATCH)]
    scan_prefix = PREFIX + b"urn:dev:ops:"

    def set_one() -> int:
        put = db.put
        for key in single:
            put(PREFIX + key.encode(), VALUE)
        return SINGLE

    def get_one() -> int:
        get = db.get
        for key in single:
            get(PREFIX + key.encode())
        return SINGLE

    def set_many() -> int:
        for items in batches:
            with db.write_batch(transaction=True) as wb:
                put = wb.put
                for key, value in items:
                    put(PREFIX + key.encode(), value)
        return BATCH * BATCHES

    def scan_all() -> int:
        count = 0
        for key, _value in db.iterator(prefix=scan_prefix):
            key.decode()  # the caller wants str keys, as the bucket gives them
            count += 1
        assert count >= SCAN, count
        return count

    return {"set": set_one, "get": get_one, "set_many_1000": set_many, "scan_100000": scan_all}


def main() -> None:
    args = arguments(__doc__.splitlines()[0])
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in backend_names():
            store = open_store(f"{tmp}/{name}", name)
            runs = backend_runs(store.bucket("bench"))
            # The raw side works on the very same plyvel handle (no public API exposes it).
            baseline = plyvel_runs(store._db) if isinstance(store, LevelDBStore) else {}
            for bench, run in runs.items():
                if bench in baseline:
                    ours, base = best_of(args.rounds, run, baseline[bench])
                    results.append(Result(bench, name, ours, base, "raw plyvel, same db"))
                else:
                    (ours,) = best_of(args.rounds, run)
                    results.append(Result(bench, name, ours))
            store.close()
    report(results, args.json)


if __name__ == "__main__":
    main()
