"""The channels of the message buses: one table for MQTT topics and NATS subjects.

An address is a row of levels, joined with ``/`` on MQTT and ``.`` on NATS:
``wot/agent/lamp-agent/prop/urn:dev:ops:1/on`` is ``wot.agent.lamp-agent.prop.urn:dev:ops:1.on``
(docs/mqtt.md, docs/nats.md). Each channel is a template of literal levels and
placeholders, who publishes on it, and what a message on it is:

    agent -> hub   wot/agent/{client}/hello                 subscribed: send me requests
                   wot/agent/{client}/td[/{thingID}]        updatething / deletething request
                   wot/agent/{client}/prop/{thingID}[/{name}]  property value(s) notification
                   wot/agent/{client}/event/{thingID}/{name}   event notification
                   wot/agent/{client}/resp                  response to a request
    hub -> agent   wot/agent/{client}/req                   requests
    client -> hub  wot/client/{client}/req                  requests (MQTT's only one)
                   wot/client/{client}/req/{operation}      (NATS) requests of that operation
    hub -> client  wot/client/{client}/resp                 responses
    hub -> all     wot/twin/{thingID}/prop/{name}, .../event/{name}, .../td,
                   .../state/{name}, .../presence (NATS)

What an address says about its message (the message type, the operation, the Thing and
the name) may be left out of the envelope; when present it must agree (``Address.fill``).
Pure data and functions: no I/O.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from . import operations as ops
from .addresses import decode, encode
from .envelope import NOTIFICATION, REQUEST, RESPONSE, EnvelopeError, check_text_fields
from .identity import Client

ROOT = "wot"
AGENT, CLIENT, TWIN = "agent", "client", "twin"
HELLO, REQ, RESP, TD, PROP, EVENT, PRESENCE, STATE = (
    "hello",
    "req",
    "resp",
    "td",
    "prop",
    "event",
    "presence",
    "state",
)
HUB = "hub"  # a channel only the hub publishes on

# Placeholders: each fills one level, percent-encoded (vocabulary/addresses.py).
OWNER, THING, NAME, OPERATION = "{client}", "{thingID}", "{name}", "{operation}"

MQTT_BUS, NATS_BUS = "mqtt", "nats"
_BOTH, _NATS = frozenset({MQTT_BUS, NATS_BUS}), frozenset({NATS_BUS})


@dataclass(frozen=True)
class Channel:
    levels: tuple[str, ...]  # literal levels and placeholders
    publisher: str  # AGENT: that agent; CLIENT: that client, whatever its role; HUB
    message_type: str | None = None  # what a message on it is (None: not an envelope)
    operations: tuple[str, ...] = ()  # the operations it carries, the first by default
    buses: frozenset[str] = _BOTH

    @property
    def family(self) -> str:
        return self.levels[1]  # AGENT, CLIENT or TWIN

    @property
    def kind(self) -> str:
        return self.levels[3]  # td, prop, event, resp, req, hello, presence, state


_AGENT_TD = (REQUEST, (ops.UPDATE_THING, ops.DELETE_THING))
AGENT_REQUESTS = Channel((ROOT, AGENT, OWNER, REQ), HUB, REQUEST)
CLIENT_RESPONSES = Channel((ROOT, CLIENT, OWNER, RESP), HUB, RESPONSE)
CHANNELS = (
    Channel((ROOT, AGENT, OWNER, HELLO), AGENT),
    Channel((ROOT, AGENT, OWNER, TD), AGENT, *_AGENT_TD),
    Channel((ROOT, AGENT, OWNER, TD, THING), AGENT, *_AGENT_TD),
    Channel((ROOT, AGENT, OWNER, PROP, THING), AGENT, NOTIFICATION, (ops.OBSERVE_ALL_PROPERTIES,)),
    Channel((ROOT, AGENT, OWNER, PROP, THING, NAME), AGENT, NOTIFICATION, (ops.OBSERVE_PROPERTY,)),
    Channel((ROOT, AGENT, OWNER, EVENT, THING, NAME), AGENT, NOTIFICATION, (ops.SUBSCRIBE_EVENT,)),
    Channel((ROOT, AGENT, OWNER, RESP), AGENT, RESPONSE),
    AGENT_REQUESTS,
    # MQTT's one request topic; on NATS too, where MQTT clients' requests arrive
    Channel((ROOT, CLIENT, OWNER, REQ), CLIENT, REQUEST),
    Channel((ROOT, CLIENT, OWNER, REQ, OPERATION), CLIENT, REQUEST, buses=_NATS),
    CLIENT_RESPONSES,
    Channel((ROOT, TWIN, THING, PROP, NAME), HUB, NOTIFICATION, (ops.OBSERVE_PROPERTY,)),
    Channel((ROOT, TWIN, THING, EVENT, NAME), HUB, NOTIFICATION, (ops.SUBSCRIBE_EVENT,)),
    Channel((ROOT, TWIN, THING, TD), HUB, NOTIFICATION, (ops.UPDATE_THING, ops.DELETE_THING)),
    # a property's entry of the state document changed (desired or declined)
    Channel((ROOT, TWIN, THING, STATE, NAME), HUB, NOTIFICATION, (ops.OBSERVE_STATE,)),
    Channel((ROOT, TWIN, THING, PRESENCE), HUB, NOTIFICATION, (ops.UPDATE_PRESENCE,), _NATS),
)


class AddressError(ValueError):
    """An address that is no channel of the bus."""


@dataclass(frozen=True, slots=True)
class Address:
    """What one address says: its channel and the values of its placeholders (decoded)."""

    channel: Channel
    noun: str  # "topic" or "subject", for error texts
    owner: str | None = None  # the client id in it
    thing_id: str | None = None
    name: str | None = None
    operation: str | None = None

    def may_publish(self, client: Client) -> bool:
        """Only its owner publishes on an address, and on an agent channel only if it is
        an agent; nobody on the hub's own channels."""
        publisher = self.channel.publisher
        if self.owner != client.id or publisher == HUB:
            return False
        return publisher == CLIENT or client.is_agent

    # The envelope fields this address fixes, worked out once (parse() keeps its
    # addresses in an lru_cache); do not change the dict.
    implied: dict[str, str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        fields: dict[str, str] = {}
        if self.channel.message_type is not None:
            fields["messageType"] = self.channel.message_type
        operation = self.operation
        if operation is None and len(self.channel.operations) == 1:
            operation = self.channel.operations[0]
        for wire, value in (("operation", operation), ("thingID", self.thing_id)):
            if value is not None:
                fields[wire] = value
        if self.name is not None:
            fields["name"] = self.name
        object.__setattr__(self, "implied", fields)

    def fill(self, raw: dict[str, Any]) -> None:
        """Fill in the fields the address implies and the envelope left out; an
        EnvelopeError naming the field that contradicts it."""
        check_text_fields(raw)  # a wrong type is named as such, not as a mismatch
        for wire, value in self.implied.items():
            if raw.setdefault(wire, value) != value:
                if wire == "messageType":
                    raise EnvelopeError(wire, f"this {self.noun} takes {value} messages")
                if wire == "operation":
                    raise EnvelopeError(wire, f"{raw[wire]!r} does not go on this {self.noun}")
                raise EnvelopeError(wire, f"{raw[wire]!r} differs from the {self.noun}'s {value!r}")
        allowed = self.channel.operations
        if len(allowed) > 1:
            raw.setdefault("operation", allowed[0])
            if raw["operation"] not in allowed:
                raise EnvelopeError(
                    "operation", f"{raw['operation']!r} does not go on this {self.noun}"
                )


class Bus:
    """The channel table as one bus spells it: its separator and wildcards."""

    # The kinds, for callers that build addresses.
    PREFIX = ROOT
    HELLO, REQ, RESP, TD, PROP, EVENT, PRESENCE = HELLO, REQ, RESP, TD, PROP, EVENT, PRESENCE
    STATE = STATE
    encode = staticmethod(encode)
    decode = staticmethod(decode)

    def __init__(self, bus: str, separator: str, one_level: str, all_levels: str, noun: str):
        self.separator = separator
        self.one_level = one_level  # "+" (MQTT), "*" (NATS)
        self.all_levels = all_levels  # "#" (MQTT), ">" (NATS)
        self.noun = noun
        self.channels = tuple(channel for channel in CHANNELS if bus in channel.buses)
        # The same few addresses come again and again (an agent's reports): parse once.
        self.parse = functools.lru_cache(maxsize=4096)(self._parse)
        self.notification = functools.lru_cache(maxsize=4096)(self._notification)
        self.agent = functools.lru_cache(maxsize=4096)(self._agent)  # a device's reports

    def join(self, *levels: str) -> str:
        return self.separator.join(levels)

    # -- building addresses ---------------------------------------------------------------

    def _agent(
        self, client_id: str, kind: str, thing_id: str | None = None, name: str | None = None
    ) -> str:
        """An agent's address of that kind (td, prop, event, resp, req, hello)."""
        levels = [ROOT, AGENT, encode(client_id), kind]
        levels += [encode(value) for value in (thing_id, name) if value is not None]
        return self.join(*levels)

    def agent_requests(self, client_id: str) -> str:
        return self.agent(client_id, REQ)

    def client_responses(self, client_id: str) -> str:
        return self.join(ROOT, CLIENT, encode(client_id), RESP)

    def twin(self, thing_id: str, kind: str, name: str | None = None) -> str:
        """Where the hub publishes a twin's notifications of that kind."""
        levels = [ROOT, TWIN, encode(thing_id), kind]
        return self.join(*levels) if name is None else self.join(*levels, encode(name))

    def _notification(self, operation: str, thing_id: str, name: str | None) -> str | None:
        """The twin address of a notification, or None when the bus carries none for it."""
        for channel in self.channels:
            if channel.family == TWIN and operation in channel.operations:
                return self.twin(thing_id, channel.kind, name if NAME in channel.levels else None)
        return None

    # -- reading addresses ----------------------------------------------------------------

    def _parse(self, address: str) -> Address:
        """The channel and values of an address; AddressError if it is no channel."""
        levels = address.split(self.separator)
        for channel in self.channels:
            if len(channel.levels) != len(levels):
                continue
            values: dict[str, str] = {}
            for slot, level in zip(channel.levels, levels, strict=True):
                if slot.startswith("{"):
                    values[slot] = level
                elif slot != level:
                    break
            else:
                return self._address(channel, values, address)
        raise AddressError(f"{address!r} is no {self.noun} of the hub's scheme")

    def _address(self, channel: Channel, values: dict[str, str], address: str) -> Address:
        try:
            decoded = {slot: decode(level) for slot, level in values.items()}
        except UnicodeDecodeError:
            raise AddressError(
                f"{address!r} has a level that is not percent-encoded UTF-8"
            ) from None
        if any(not value for value in decoded.values()):
            raise AddressError(f"{address!r} has an empty level")
        return Address(
            channel,
            self.noun,
            owner=decoded.get(OWNER),
            thing_id=decoded.get(THING),
            name=decoded.get(NAME),
            operation=decoded.get(OPERATION),
        )

    def matches(self, address: str, pattern: str) -> bool:
        """Does a subscription pattern (with the bus's wildcards) cover the address?"""
        if self.one_level not in pattern and self.all_levels not in pattern:
            return address == pattern
        levels = address.split(self.separator)
        wanted = pattern.split(self.separator)
        for index, level in enumerate(wanted):
            if level == self.all_levels:
                return self.all_levels == "#" or index < len(levels)  # NATS ">": one or more
            if index >= len(levels) or level not in (self.one_level, levels[index]):
                return False
        return len(wanted) == len(levels)


class MqttTopics(Bus):
    def __init__(self) -> None:
        super().__init__(MQTT_BUS, "/", "+", "#", "topic")

    def client_requests(self, client_id: str) -> str:
        return self.join(ROOT, CLIENT, encode(client_id), REQ)

    def agent_topic(
        self, client_id: str, kind: str, thing_id: str | None = None, name: str | None = None
    ) -> str:
        """``agent``, by the name the MQTT client knows it."""
        return self.agent(client_id, kind, thing_id, name)


class NatsSubjects(Bus):
    def __init__(self) -> None:
        super().__init__(NATS_BUS, ".", "*", ">", "subject")

    def client_request(self, client_id: str, operation: str) -> str:
        return self.join(ROOT, CLIENT, encode(client_id), REQ, operation)

    @staticmethod
    def inbox_prefix(client_id: str) -> str:
        """A client's own reply inboxes: ``_INBOX.{client}.>``."""
        return f"_INBOX.{encode(client_id)}"


MQTT = MqttTopics()
NATS = NatsSubjects()
