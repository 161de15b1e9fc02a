"""Thing Descriptions the tests register: one lamp for every test that needs a device,
one sign for the operations tests (text everywhere), and ``thing_td`` for the few other
Things (a sensor, a meter).

A test that needs a different lamp builds it from this one and says why: ``only`` keeps
some of the lamp's affordances (a smaller TD), ``properties``/``actions``/``events`` add
or replace affordances by name, ``members`` sets other TD members. No test copies a TD."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

TD11 = "https://www.w3.org/2022/wot/td/v1.1"
LAMP = "urn:dev:ops:32473-lamp-1"
SIGN = "urn:dev:ops:ops-sign-1"
AFFORDANCES = ("properties", "actions", "events")
# A lamp id with a "/": the HTTP tests' lamp, as a Thing id must travel percent-encoded.
SLASHED_LAMP = "urn:dev:ops:lamp/1"
# An event without data, for the tests of how one travels.
CLICKED = {"clicked": {"forms": [{"href": "https://lamp.local/c"}]}}


def thing_td(thing_id: str | None, title: str, **members: Any) -> dict:
    """A valid TD with no security (``thing_id`` None: anonymous, no ``id``) and
    ``members`` (affordances and anything else) as given."""
    td: dict[str, Any] = {"@context": TD11}
    if thing_id is not None:
        td["id"] = thing_id
    td |= {
        "title": title,
        "securityDefinitions": {"nosec_sc": {"scheme": "nosec"}},
        "security": "nosec_sc",
    }
    return td | members


def _lamp_affordances() -> dict[str, dict]:
    """Two writable properties, a read-only one, an action without input, one with input
    and output, and an event with data."""
    return {
        "properties": {
            "on": {"type": "boolean", "forms": [{"href": "https://lamp.local/on"}]},
            "brightness": {
                "type": "integer",
                "minimum": 0,
                "maximum": 100,
                "forms": [{"href": "https://lamp.local/brightness"}],
            },
            "model": {
                "type": "string",
                "readOnly": True,
                "forms": [{"href": "https://lamp.local/model"}],
            },
        },
        "actions": {
            "toggle": {"forms": [{"href": "https://lamp.local/toggle"}]},
            "fade": {
                "input": {
                    "type": "object",
                    "properties": {"level": {"type": "integer", "minimum": 0, "maximum": 100}},
                    "required": ["level"],
                },
                "output": {"type": "integer"},
                "forms": [{"href": "https://lamp.local/fade"}],
            },
        },
        "events": {
            "overheated": {"data": {"type": "number"}, "forms": [{"href": "https://lamp.local/oh"}]}
        },
    }


def lamp_td(
    thing_id: str | None = LAMP,
    title: Any = "Lamp",
    *,
    only: Collection[str] | None = None,
    properties: dict | None = None,
    actions: dict | None = None,
    events: dict | None = None,
    **members: Any,
) -> dict:
    """The lamp. ``only``: the names of the affordances to keep (the others go; a kind
    left empty is left out). ``properties``, ``actions``, ``events``: affordances added
    after the lamp's own, or replacing one of the same name. ``members``: other TD
    members (``description=...``), set last. ``title`` may be anything, for the tests of
    a bad one."""
    affordances = _lamp_affordances()
    added = {"properties": properties, "actions": actions, "events": events}
    td = thing_td(thing_id, title)
    for kind in AFFORDANCES:
        kept = {
            name: affordance
            for name, affordance in affordances[kind].items()
            if only is None or name in only
        }
        kept |= added[kind] or {}
        if kept:
            td[kind] = kept
    return td | members


def http_lamp_td(thing_id: str = SLASHED_LAMP) -> dict:
    """The HTTP tests' lamp: the shared one with a "/" in its id (the id must travel
    percent-encoded) and an event without data."""
    return lamp_td(thing_id, events=CLICKED)


def sensor_td(thing_id: str | None = None) -> dict:
    """A sensor with one number, for the twin core's own tests."""
    return thing_td(
        thing_id,
        "Sensor",
        properties={"t": {"type": "number", "forms": [{"href": "https://s.local/t"}]}},
    )


def sign_td(thing_id: str = SIGN, padding: int = 0) -> dict:
    """A sign with a writable text, an action taking text and an event carrying text;
    ``padding`` characters of description make the TD as large as a test needs."""
    return thing_td(
        thing_id,
        "Sign",
        description="x" * padding,
        properties={"text": {"type": "string", "forms": [{"href": "https://s.local/t"}]}},
        actions={"say": {"input": {"type": "string"}, "forms": [{"href": "https://s.local/say"}]}},
        events={"said": {"data": {"type": "string"}, "forms": [{"href": "https://s.local/e"}]}},
    )
