"""digitwin/state.py: the state document's parts and the rules of configuration restore,
on records and twins as the core keeps them."""

from __future__ import annotations

from digitwin.requests import Record
from digitwin.state import (
    RESTORE_TERM,
    declined_writes,
    property_state,
    restore_values,
    restores,
    state_document,
)
from tests.support.tds import lamp_td
from vocabulary import clock
from vocabulary.envelope import CANCELLED, COMPLETED, EXPIRED, FAILED, PENDING

T0 = 1_800_000_000.0
REFUSED = {"type": "about:blank", "title": "No", "status": 400, "detail": "no"}


def write(name: str, value, status: str, ended: float, seq: int = 1) -> Record:
    return Record(
        id=f"w-{seq}",
        operation="writeproperty",
        thing_id="urn:x",
        name=name,
        sender_id="mia",
        input=value,
        time_requested=ended - 1,
        expires=ended + 3600,
        seq=seq,
        status=status,
        error=REFUSED if status == FAILED else None,
        time_ended=None if status == PENDING else ended,
    )


def reported(value, at: float) -> dict:
    return {"value": value, "timestamp": clock.rfc3339(at)}


def test_declined_is_the_last_refusal_unless_a_write_was_accepted_since():
    newest_first = [
        write("on", False, EXPIRED, T0 + 9, 9),  # no answer: no decision
        write("on", True, FAILED, T0 + 8, 8),
        write("brightness", 20, COMPLETED, T0 + 7, 7),  # accepted after the refusals
        write("brightness", 10, FAILED, T0 + 6, 6),
        write("on", False, CANCELLED, T0 + 5, 5),
        write("brightness", 30, FAILED, T0 + 4, 4),
    ]
    declined = declined_writes(newest_first)
    assert set(declined) == {"on"}
    assert declined["on"]["value"] is True and declined["on"]["error"] == REFUSED
    assert declined["on"]["time"] == clock.rfc3339(T0 + 8) and declined["on"]["senderID"] == "mia"


def test_the_delta_is_the_desired_values_that_differ_from_the_reported():
    desired = {"value": 5, "timestamp": clock.rfc3339(T0), "senderID": "mia", "id": "w-1"}
    properties = {
        "same": property_state(reported(5, T0), desired, None),
        "other": property_state(reported(4, T0), desired, None),
        "never": property_state(None, desired, None),
        "plain": property_state(reported(1, T0), None, None),
    }
    assert properties["plain"] == {"reported": {"value": 1, "time": clock.rfc3339(T0)}}
    assert state_document("urn:x", properties)["delta"] == {"other": 5, "never": 5}


def test_restore_rules():
    td = lamp_td(
        "urn:x",
        properties={"pin": {"type": "string", "writeOnly": True, "forms": [{"href": "p"}]}},
        **{RESTORE_TERM: True},
    )
    values = {
        "on": reported(True, T0 + 5),
        "brightness": reported(40, T0),
        "model": reported("L-1", T0),  # read-only
    }
    ended = {
        "on": write("on", False, COMPLETED, T0 + 1),  # older than the reported value
        "brightness": write("brightness", 70, COMPLETED, T0 + 2),  # newer
        "pin": write("pin", "1234", COMPLETED, T0 + 3),  # write-only: never kept
    }
    assert restore_values(td, values, ended, set()) == {"on": True, "brightness": 70}
    assert restore_values(td, values, ended, {"on"}) == {"brightness": 70}  # on is queued
    refused = {"brightness": write("brightness", 90, FAILED, T0 + 9)}
    assert restore_values(td, values, refused, set()) == {"on": True, "brightness": 40}
    assert restore_values({**td, RESTORE_TERM: "yes"}, values, ended, set()) == {}
    assert restore_values(lamp_td("urn:x"), values, ended, set()) == {}
    # The administrators' setting wins over the TD's flag, either way.
    assert restore_values(td, values, ended, set(), setting=False) == {}
    plain = lamp_td("urn:x")
    assert restore_values(plain, values, ended, set(), setting=True) == {
        "on": True,
        "brightness": 70,
    }


def test_the_administrators_setting_wins_over_the_tds_flag():
    asking, plain = lamp_td("urn:x", **{RESTORE_TERM: True}), lamp_td("urn:y")
    assert restores(asking, None) and not restores(plain, None)
    assert not restores(asking, False) and restores(plain, True)
