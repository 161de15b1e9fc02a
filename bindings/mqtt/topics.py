"""The MQTT topic scheme (docs/mqtt.md).

Thing ids, client ids and affordance names each fill one topic level, percent-encoded:
every character outside ``A-Z a-z 0-9 _ ~ : -`` becomes ``%XX`` (UTF-8 bytes), so ``/``,
``+``, ``#``, ``.``, ``%`` and spaces never appear raw and ``urn:dev:ops:32473-lamp-1``
stays readable. The same encoded text is used in the href path of the twin TD's forms.

    agent -> hub   wot/agent/{agent}/td[/{thing}]        updatething / deletething request
                   wot/agent/{agent}/prop/{thing}[/{name}]  property value(s) notification
                   wot/agent/{agent}/event/{thing}/{name}   event notification
                   wot/agent/{agent}/resp                   response to a request
    hub -> agent   wot/agent/{agent}/req                    requests (queued ones on subscribe)
    client -> hub  wot/client/{client}/req                  requests (the envelope)
    hub -> client  wot/client/{client}/resp                 responses, and error responses
    hub -> all     wot/twin/{thing}/prop/{name}             latest value (sent retained)
                   wot/twin/{thing}/event/{name}            event data
                   wot/twin/{thing}/td                      the twin TD (sent retained)
"""

from __future__ import annotations

from dataclasses import dataclass

from bindings.common.addresses import decode, encode

ROOT = "wot"
AGENT, CLIENT, TWIN = "agent", "client", "twin"
REQ, RESP, TD, PROP, EVENT = "req", "resp", "td", "prop", "event"


# -- building topics ---------------------------------------------------------------------


def agent_requests(agent_id: str) -> str:
    return f"{ROOT}/{AGENT}/{encode(agent_id)}/{REQ}"


def client_responses(client_id: str) -> str:
    return f"{ROOT}/{CLIENT}/{encode(client_id)}/{RESP}"


def client_requests(client_id: str) -> str:
    return f"{ROOT}/{CLIENT}/{encode(client_id)}/{REQ}"


def twin_property(thing_id: str, name: str) -> str:
    return f"{ROOT}/{TWIN}/{encode(thing_id)}/{PROP}/{encode(name)}"


def twin_event(thing_id: str, name: str) -> str:
    return f"{ROOT}/{TWIN}/{encode(thing_id)}/{EVENT}/{encode(name)}"


def twin_td(thing_id: str) -> str:
    return f"{ROOT}/{TWIN}/{encode(thing_id)}/{TD}"


def agent_topic(agent_id: str, kind: str, thing_id: str | None = None, name: str | None = None):
    """An agent's publish topic: kind td, prop, event or resp."""
    parts = [ROOT, AGENT, encode(agent_id), kind]
    if thing_id is not None:
        parts.append(encode(thing_id))
    if name is not None:
        parts.append(encode(name))
    return "/".join(parts)


# -- reading the topics clients publish to -----------------------------------------------


@dataclass(frozen=True, slots=True)
class Published:
    """What a publish topic says: whose it is, its kind, and the Thing and name it names."""

    family: str  # AGENT or CLIENT
    owner: str  # the client id in the topic (decoded)
    kind: str  # td, prop, event, resp (agent) or req (client)
    thing_id: str | None = None
    name: str | None = None


class TopicError(ValueError):
    pass


_AGENT_SHAPES = {TD: (0, 1), PROP: (1, 2), EVENT: (2, 2), RESP: (0, 0)}


def parse_publish(topic: str) -> Published:
    """The meaning of a topic a client may publish to; TopicError if it has none."""
    levels = topic.split("/")
    if len(levels) < 4 or levels[0] != ROOT or levels[1] not in (AGENT, CLIENT):
        raise TopicError(f"{topic!r} is not a wot/agent/... or wot/client/... topic")
    try:
        owner = decode(levels[2])
        rest = [decode(level) for level in levels[4:]]
    except UnicodeDecodeError:
        raise TopicError(f"{topic!r} has a level that is not percent-encoded UTF-8") from None
    kind = levels[3]
    if levels[1] == CLIENT:
        if kind != REQ or rest:
            raise TopicError(f"clients publish requests to wot/client/{{id}}/req, not {topic!r}")
        return Published(CLIENT, owner, REQ)
    shape = _AGENT_SHAPES.get(kind)
    if shape is None or not shape[0] <= len(rest) <= shape[1] or any(not r for r in rest):
        raise TopicError(f"{topic!r} is not an agent topic of docs/mqtt.md")
    return Published(
        AGENT,
        owner,
        kind,
        rest[0] if rest else None,
        rest[1] if len(rest) > 1 else None,
    )


# -- subscription filters ----------------------------------------------------------------

# The topic families the hub publishes, as level templates; T = a Thing, N = a name,
# C = a client id.
TWIN_FAMILIES = {
    PROP: (ROOT, TWIN, "T", PROP, "N"),
    EVENT: (ROOT, TWIN, "T", EVENT, "N"),
    TD: (ROOT, TWIN, "T", TD),
}


def match_family(
    filter_levels: list[str], template: tuple[str, ...], values: dict[str, str]
) -> tuple[bool, dict[str, str | None]]:
    """Can the filter match a topic of this family? If so, the encoded values it fixes
    for the template's placeholders (None: any). ``values`` pins placeholders (C)."""
    fixed: dict[str, str | None] = {}
    for index, slot in enumerate(template):
        if index >= len(filter_levels):
            return False, {}
        level = filter_levels[index]
        if level == "#":
            for rest in template[index:]:
                if rest in ("T", "N", "C"):
                    fixed.setdefault(rest, None)
            return True, fixed
        if slot in ("T", "N", "C"):
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


def valid_filter(topic_filter: str) -> bool:
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            return False
        if "+" in level and level != "+":
            return False
    return bool(topic_filter)


def matches(topic: str, topic_filter: str) -> bool:
    """MQTT topic filter matching (3.1.1, section 4.7)."""
    if "#" not in topic_filter and "+" not in topic_filter:
        return topic == topic_filter
    topic_levels = topic.split("/")
    filter_levels = topic_filter.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels) or level not in ("+", topic_levels[index]):
            return False
    return len(filter_levels) == len(topic_levels)
