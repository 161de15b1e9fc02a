"""The bus channel table (vocabulary/channels.py): one scheme for MQTT topics and NATS
subjects, and one rule for the envelope fields an address implies."""

from __future__ import annotations

import pytest

from vocabulary.channels import (
    AGENT,
    HUB,
    MQTT,
    NATS,
    AddressError,
    Bus,
)
from vocabulary.envelope import EnvelopeError
from vocabulary.identity import Client

LAMP = "urn:dev:ops:lamp.1/a"  # a separator of each bus in the id
AGENT_ID, VIEWER = Client("lamp-agent", "agent"), Client("vera", "viewer")
BUSES = pytest.mark.parametrize("bus", [MQTT, NATS], ids=["mqtt", "nats"])


def _example(bus: Bus, levels: tuple[str, ...]) -> str:
    values = {"{client}": "lamp-agent", "{thingID}": LAMP, "{name}": "on a.b/c"}
    values["{operation}"] = "readthing"
    return bus.join(*(bus.encode(values[slot]) if slot in values else slot for slot in levels))


def test_both_buses_have_the_same_agent_channels():
    def agent_channels(bus: Bus) -> set[tuple[str, ...]]:
        return {c.levels for c in bus.channels if c.family == AGENT}

    assert agent_channels(MQTT) == agent_channels(NATS)
    assert {c.kind for c in NATS.channels} - {c.kind for c in MQTT.channels} == {"presence"}


@BUSES
def test_every_channel_of_a_bus_parses_back_to_itself(bus):
    for channel in bus.channels:
        address = bus.parse(_example(bus, channel.levels))
        assert address.channel is channel
        if "{thingID}" in channel.levels:
            assert address.thing_id == LAMP
        if "{name}" in channel.levels:
            assert address.name == "on a.b/c"


@BUSES
def test_the_builders_name_the_channels_of_the_table(bus):
    assert bus.parse(bus.agent("lamp-agent", "prop", LAMP, "on")).channel.operations == (
        "observeproperty",
    )
    assert bus.parse(bus.agent("lamp-agent", "td")).thing_id is None
    assert bus.parse(bus.agent_requests("lamp-agent")).channel.publisher == HUB
    assert bus.parse(bus.client_responses("vera")).owner == "vera"
    assert bus.parse(bus.twin(LAMP, "event", "clicked")).name == "clicked"


@BUSES
@pytest.mark.parametrize(
    "address",
    ["wot/agent/lamp-agent/foo", "wot/agent//td", "wot/twin", "other/agent/x/td", ""],
)
def test_an_address_outside_the_scheme_is_refused(bus, address):
    with pytest.raises(AddressError):
        bus.parse(address.replace("/", bus.separator))


@BUSES
def test_fields_the_address_implies_may_be_left_out(bus):
    raw = {"value": 42}
    bus.parse(bus.agent("lamp-agent", "prop", LAMP, "on")).fill(raw)
    assert raw == {
        "value": 42,
        "messageType": "notification",
        "operation": "observeproperty",
        "thingID": LAMP,
        "name": "on",
    }
    td = {"input": {"id": LAMP}}
    bus.parse(bus.agent("lamp-agent", "td", LAMP)).fill(td)
    assert td["operation"] == "updatething" and td["thingID"] == LAMP  # the default


@BUSES
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("thingID", "urn:dev:ops:fan-1"),
        ("name", "off"),
        ("operation", "observeallproperties"),
        ("messageType", "request"),
    ],
)
def test_fields_the_address_implies_must_agree_when_present(bus, field, value):
    address = bus.parse(bus.agent("lamp-agent", "prop", LAMP, "on"))
    with pytest.raises(EnvelopeError) as refused:
        address.fill({field: value, "value": 1})
    assert refused.value.field == field
    assert bus.noun in refused.value.description


@BUSES
def test_an_agent_td_channel_takes_updatething_and_deletething_only(bus):
    address = bus.parse(bus.agent("lamp-agent", "td", LAMP))
    address.fill({"operation": "deletething"})
    with pytest.raises(EnvelopeError) as refused:
        address.fill({"operation": "readthing"})
    assert refused.value.field == "operation"


def test_a_nats_request_subject_implies_its_operation_and_mqtts_only_the_type():
    raw = {"thingID": LAMP}
    NATS.parse(NATS.client_request("vera", "readthing")).fill(raw)
    assert raw == {"thingID": LAMP, "messageType": "request", "operation": "readthing"}
    raw = {"operation": "readthing", "thingID": LAMP}
    MQTT.parse(MQTT.client_requests("vera")).fill(raw)
    assert raw["messageType"] == "request"


@BUSES
def test_a_wrong_type_is_named_as_such_not_as_a_mismatch(bus):
    with pytest.raises(EnvelopeError) as refused:
        bus.parse(bus.agent("lamp-agent", "prop", LAMP, "on")).fill({"thingID": 7})
    assert refused.value.description == "must be a string, not a number"


@BUSES
def test_only_the_owner_publishes_and_only_agents_on_agent_channels(bus):
    report = bus.parse(bus.agent("lamp-agent", "prop", LAMP, "on"))
    assert report.may_publish(AGENT_ID)
    assert not report.may_publish(Client("other-agent", "agent"))
    assert not bus.parse(bus.agent("vera", "prop", LAMP, "on")).may_publish(VIEWER)
    assert not bus.parse(bus.agent_requests("lamp-agent")).may_publish(AGENT_ID)
    assert not bus.parse(bus.client_responses("vera")).may_publish(VIEWER)
    assert not bus.parse(bus.twin(LAMP, "prop", "on")).may_publish(VIEWER)


def test_client_request_channels_are_for_every_role():
    assert MQTT.parse(MQTT.client_requests("vera")).may_publish(VIEWER)
    assert NATS.parse(NATS.client_request("vera", "readthing")).may_publish(VIEWER)


def test_notifications_go_to_the_twin_channels_each_bus_has():
    assert MQTT.notification("observeproperty", LAMP, "on") == MQTT.twin(LAMP, "prop", "on")
    assert NATS.notification("deletething", LAMP, None) == NATS.twin(LAMP, "td")
    assert NATS.notification("updatepresence", LAMP, None) == NATS.twin(LAMP, "presence")
    assert MQTT.notification("updatepresence", LAMP, None) is None  # NATS only
    assert NATS.notification("readproperty", LAMP, "on") is None


def test_wildcards_of_each_bus():
    assert MQTT.matches("wot/twin/a/prop/x", "wot/twin/+/prop/#")
    assert MQTT.matches("wot/twin/a", "wot/twin/a/#")  # "#" covers the parent too
    assert not MQTT.matches("wot/twin/a/event/x", "wot/twin/+/prop/+")
    assert NATS.matches("wot.twin.a.prop.x", "wot.twin.*.prop.>")
    assert not NATS.matches("wot.twin.a", "wot.twin.a.>")  # ">" needs one more token
    assert not NATS.matches("wot.twin.a.prop", "wot.twin.*.prop.*")
