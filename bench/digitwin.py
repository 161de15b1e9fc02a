"""DigiTwin core and router throughput, each next to a baseline from the same run.

- property_updates: an agent's property report as JSON bytes, parsed by the strict
  envelope parser, through the router (authorize, twin update, notification log,
  fan-out) to one subscriber, which takes it from its outbox and encodes it as JSON.
  Baseline: the same messages doing only JSON decode, a dict update and JSON encode.
- register_tds: registering TDs (validation against the TD 1.1 schema, directory
  record and indexes written through). Baseline: raw plyvel puts of the same TDs as
  JSON. Also reports the process's peak RSS with 1,000 twins active.
- load_inactive_twin: loading a twin that is not in memory (TD record, stored values,
  open writes). Baseline: the two raw plyvel reads and JSON decodes it needs, on the
  same database.

    python bench/digitwin.py [--json] [--rounds N] [--tds N] [--updates N]
"""

from __future__ import annotations

import asyncio
import resource
import tempfile
import time

import orjson
import plyvel
from _harness import Result, arguments, best_of, report, unshadow_packages
from _routing import AllowAll, property_reports, report_wire

unshadow_packages()
from bucketstore import open_store  # noqa: E402
from core.router import Router  # noqa: E402
from digitwin.core import DigiTwin, TwinConfig  # noqa: E402

ACTIVE = 1000
TD = {
    "@context": ["https://www.w3.org/2019/wot/td/v1", "https://www.w3.org/2022/wot/td/v1.1"],
    "title": "Thermostat",
    "securityDefinitions": {"nosec_sc": {"scheme": "nosec"}},
    "security": "nosec_sc",
    "properties": {
        "temperature": {
            "type": "number",
            "unit": "degree Celsius",
            "readOnly": True,
            "forms": [{"href": "https://dev.local/temperature"}],
        },
        "target": {
            "type": "number",
            "minimum": 5,
            "maximum": 30,
            "forms": [{"href": "https://dev.local/target"}],
        },
        "mode": {
            "type": "string",
            "enum": ["off", "heat", "cool"],
            "forms": [{"href": "https://dev.local/mode"}],
        },
    },
    "actions": {
        "boost": {
            "input": {"type": "integer", "minimum": 1, "maximum": 60},
            "forms": [{"href": "https://dev.local/boost"}],
        }
    },
    "events": {
        "overheated": {"data": {"type": "number"}, "forms": [{"href": "https://dev.local/oh"}]}
    },
}


def thing(i: int) -> dict:
    """A TD with its own id; a shallow copy (nothing downstream changes nested members),
    made when needed, so the benchmark's own data does not swell the peak RSS."""
    return {**TD, "id": f"urn:dev:thermostat:{i:06d}"}


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def property_updates(tmp: str, count: int, rounds: int) -> Result:
    loop = asyncio.new_event_loop()
    store = open_store(f"{tmp}/updates")
    through_router = property_reports(Router(store, AllowAll()), thing(0), count)
    wire = report_wire(thing(0)["id"], count)

    def ours() -> int:
        return loop.run_until_complete(through_router())

    def baseline() -> int:
        state: dict = {}
        for raw in wire:
            data = orjson.loads(raw)
            state[data["name"]] = data["value"]
            orjson.dumps(data)
        return count

    ours_ops, base_ops = best_of(rounds, ours, baseline)
    store.close()
    loop.close()
    return Result(
        "property_updates",
        "leveldb",
        ours_ops,
        base_ops,
        "json decode + dict update + json encode",
    )


def register_and_load(tmp: str, count: int) -> list[Result]:
    store = open_store(f"{tmp}/register")
    twin = DigiTwin(store, TwinConfig(max_active=ACTIVE))
    twin.update_thing(thing(count), "agent")  # compiles the TD schema before timing
    rss_before = peak_rss_mb()
    started = time.perf_counter()
    for i in range(count):
        twin.update_thing(thing(i), "agent")
    ours = count / (time.perf_counter() - started)

    raw = plyvel.DB(f"{tmp}/raw-register", create_if_missing=True)
    started = time.perf_counter()
    for i in range(count):
        td = thing(i)
        raw.put(b"td\x00" + td["id"].encode(), orjson.dumps(td))
    base = count / (time.perf_counter() - started)
    raw.close()

    ids = [f"urn:dev:thermostat:{i:06d}" for i in range(count)]
    for thing_id in ids[:ACTIVE]:  # 1,000 active twins, each with a value
        twin.report_property(thing_id, "temperature", 21.0)
    twin.flush()
    register = Result(
        "register_tds",
        "leveldb",
        ours,
        base,
        "raw plyvel put of the TD JSON",
        {
            "tds": count,
            "active": twin.stats().active,
            "peak_rss_mb": peak_rss_mb(),
            "rss_before_mb": rss_before,
        },
    )

    # Load twins that are not in memory: the ones after the first ACTIVE.
    inactive = ids[ACTIVE : ACTIVE + min(20_000, count - ACTIVE)]
    started = time.perf_counter()
    for thing_id in inactive:
        twin.twins.get(thing_id)
    ours = len(inactive) / (time.perf_counter() - started)
    db = store._db  # raw plyvel on the very same database, as bench/bucketstore.py does
    started = time.perf_counter()
    for thing_id in inactive:
        key = thing_id.encode()
        orjson.loads(db.get(b"things\x00td\x00" + key))
        stored = db.get(b"twins\x00" + key)
        if stored:
            orjson.loads(stored)
    base = len(inactive) / (time.perf_counter() - started)
    store.close()
    load = Result(
        "load_inactive_twin",
        "leveldb",
        ours,
        base,
        "raw plyvel reads + json decode, same db",
        {"mean_us": round(1e6 / ours, 1)},
    )
    return [register, load]


def main() -> None:
    args = arguments(
        __doc__.splitlines()[0],
        **{
            "--tds": {"type": int, "default": 100_000, "help": "TDs to register"},
            "--updates": {"type": int, "default": 20_000, "help": "property updates a round"},
        },
    )
    with tempfile.TemporaryDirectory() as tmp:
        results = [property_updates(tmp, args.updates, args.rounds)]
        results += register_and_load(tmp, max(args.tds, ACTIVE + 1))
    report(results, args.json)


if __name__ == "__main__":
    main()
