"""A twin's state document (docs/digitwin.md): per property what the device reported,
the write waiting for it (desired) and the last write it refused (declined), and the
delta (desired values that differ from the reported ones).

Nothing here is stored twice: reported values are the twin's, desired and declined
come from the stored write records (digitwin/requests.py), so they survive a restart
for as long as the records are kept (``request_retention``). Pure functions over a
twin and its records; ``DigiTwin`` keeps the declined writes of an active twin.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from vocabulary import clock
from vocabulary import operations as ops
from vocabulary.envelope import COMPLETED, FAILED

from .requests import Record

# The TD term by which a Thing asks for its configuration back when its agent connects.
RESTORE_TERM = "wothub:restoreConfiguration"


def declined_entry(record: Record) -> dict[str, Any]:
    """A refused write as the state document shows it."""
    return {
        "value": record.input,
        "error": record.error,
        "time": clock.rfc3339(record.time_ended or record.time_requested),
        "senderID": record.sender_id,
        "id": record.id,
    }


def last_ended_writes(records: Iterable[Record]) -> dict[str, Record]:
    """Per property, its newest write that the device answered (completed or failed),
    from a Thing's records newest first. Expired and cancelled writes are no answer."""
    ended: dict[str, Record] = {}
    for record in records:
        if (
            record.operation == ops.WRITE_PROPERTY
            and record.status in (COMPLETED, FAILED)
            and record.name not in ended
        ):
            ended[record.name] = record
    return ended


def declined_writes(records: Iterable[Record]) -> dict[str, dict[str, Any]]:
    """Per property, the write the device refused last, unless it accepted one since."""
    return {
        name: declined_entry(record)
        for name, record in last_ended_writes(records).items()
        if record.status == FAILED
    }


def property_state(
    reported: dict[str, Any] | None,
    desired: dict[str, Any] | None,
    declined: dict[str, Any] | None,
) -> dict[str, Any]:
    """One property's entry: ``reported`` {value, time}, ``desired`` {value, time,
    senderID, id} and ``declined`` {value, error, time, senderID, id}, each when known."""
    entry: dict[str, Any] = {}
    if reported and "value" in reported:
        entry["reported"] = {"value": reported["value"], "time": reported["timestamp"]}
    if desired:
        entry["desired"] = {
            "value": desired["value"],
            "time": desired["timestamp"],
            "senderID": desired.get("senderID"),
            "id": desired["id"],
        }
    if declined:
        entry["declined"] = declined
    return entry


def state_document(thing_id: str, properties: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The document of a Thing from its properties' entries (``property_state``)."""
    delta = {
        name: entry["desired"]["value"]
        for name, entry in properties.items()
        if "desired" in entry
        and ("reported" not in entry or entry["reported"]["value"] != entry["desired"]["value"])
    }
    return {"thingID": thing_id, "properties": properties, "delta": delta}


def restores(td: dict[str, Any], setting: bool | None) -> bool:
    """Whether a Thing gets its configuration back: the administrators' ``setting``
    when there is one, else its TD's ``RESTORE_TERM``."""
    return setting if setting is not None else td.get(RESTORE_TERM) is True


def restore_values(
    td: dict[str, Any],
    reported: dict[str, dict[str, Any]],
    ended: dict[str, Record],
    queued: set[str],
    setting: bool | None = None,
) -> dict[str, Any]:
    """What configuration restore sends a Thing that gets it (``restores``): per
    writable property (not readOnly, not writeOnly) with no write queued, the newer of
    its last reported value and the last write its device accepted."""
    if not restores(td, setting):
        return {}
    values: dict[str, Any] = {}
    for name, affordance in (td.get("properties") or {}).items():
        if (
            not isinstance(affordance, dict)
            or affordance.get("readOnly")
            or affordance.get("writeOnly")
            or name in queued
        ):
            continue
        last = reported.get(name) or {}
        accepted = ended.get(name)
        if accepted is not None and accepted.status == COMPLETED:
            # Timestamps have milliseconds: a value reported in the millisecond the
            # write ended came after it (the device reports once it took the write).
            ended_ms = int((accepted.time_ended or accepted.time_requested) * 1000)
            if "value" not in last or ended_ms > _milliseconds(last["timestamp"]):
                last = {"value": accepted.input}
        if "value" in last:
            values[name] = last["value"]
    return values


def _milliseconds(timestamp: str) -> int:
    try:
        return round(clock.parse_rfc3339(timestamp) * 1000)  # whole milliseconds
    except ValueError:  # an agent's odd timestamp: the accepted write is newer
        return 0
