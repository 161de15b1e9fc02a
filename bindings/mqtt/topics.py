"""The MQTT topics (docs/mqtt.md): the bus channel table spelled with ``/``
(vocabulary/channels.py), and what only MQTT has, subscription filters with ``+`` and ``#``.

Thing ids, client ids and affordance names each fill one topic level, percent-encoded
(vocabulary/addresses.py); the same encoded text is used in the href path of the twin
TD's forms.
"""

from __future__ import annotations

from vocabulary.addresses import decode, encode
from vocabulary.channels import (
    AGENT,
    AGENT_REQUESTS,
    CLIENT,
    CLIENT_RESPONSES,
    EVENT,
    HELLO,
    MQTT,
    NAME,
    OWNER,
    PROP,
    REQ,
    RESP,
    STATE,
    TD,
    THING,
    TWIN,
    Address,
    AddressError,
    Channel,
)

__all__ = [
    "AGENT",
    "AGENT_REQUESTS",
    "CLIENT",
    "CLIENT_RESPONSES",
    "EVENT",
    "HELLO",
    "NAME",
    "PROP",
    "REQ",
    "RESP",
    "ROOT",
    "TD",
    "THING",
    "TWIN",
    "TWIN_FAMILIES",
    "Address",
    "AddressError",
    "agent_requests",
    "agent_topic",
    "client_requests",
    "client_responses",
    "decode",
    "encode",
    "match_channel",
    "matches",
    "own",
    "parse",
    "twin_event",
    "twin_property",
    "twin_state",
    "twin_td",
    "valid_filter",
]

ROOT = MQTT.PREFIX

# -- building topics ---------------------------------------------------------------------

agent_topic = MQTT.agent
agent_requests = MQTT.agent_requests
client_requests = MQTT.client_requests
client_responses = MQTT.client_responses
parse = MQTT.parse
matches = MQTT.matches


def twin_property(thing_id: str, name: str) -> str:
    return MQTT.twin(thing_id, PROP, name)


def twin_event(thing_id: str, name: str) -> str:
    return MQTT.twin(thing_id, EVENT, name)


def twin_td(thing_id: str) -> str:
    return MQTT.twin(thing_id, TD)


def twin_state(thing_id: str, name: str | None = None) -> str:
    """Where a property's changes of the state document come (without a name: the
    level above them)."""
    return MQTT.twin(thing_id, STATE, name)


# -- subscription filters ----------------------------------------------------------------

# The channels of twin notifications, which consumers subscribe to, by kind.
TWIN_FAMILIES = {channel.kind: channel for channel in MQTT.channels if channel.family == TWIN}


def match_channel(
    filter_levels: list[str], channel: Channel, values: dict[str, str]
) -> tuple[bool, dict[str, str | None]]:
    """Can the filter match a topic of this channel? If so, the encoded values it fixes
    for the channel's placeholders (None: any). ``values`` pins placeholders."""
    template = channel.levels
    fixed: dict[str, str | None] = {}
    for index, slot in enumerate(template):
        if index >= len(filter_levels):
            return False, {}
        level = filter_levels[index]
        if level == "#":
            for rest in template[index:]:
                if rest.startswith("{"):
                    fixed.setdefault(rest, None)
            return True, fixed
        if slot.startswith("{"):
            if slot in values:
                if level not in ("+", values[slot]):
                    return False, {}
            else:
                fixed[slot] = None if level == "+" else level
        elif level not in ("+", slot):
            return False, {}
    if len(filter_levels) > len(template):
        # "a/b/#" also matches "a/b": a trailing "#" after the full template
        return filter_levels[len(template) :] == ["#"], fixed
    return True, fixed


def own(client_id: str) -> dict[str, str]:
    """The placeholder values that pin a filter to one client's own topics."""
    return {OWNER: encode(client_id)}


def valid_filter(topic_filter: str) -> bool:
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            return False
        if "+" in level and level != "+":
            return False
    return bool(topic_filter)
