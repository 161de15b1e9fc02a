"""MQTT topics and NATS subjects encode ids the same way (docs/nats.md, docs/mqtt.md)."""

import pytest

from vocabulary import addresses
from vocabulary.channels import MQTT, NATS


def test_both_buses_encode_ids_alike_and_never_leave_a_separator_raw():
    thing = "urn:dev:ops:lamp.1/a+b#c*>d%e f é"
    level = addresses.encode(thing)
    assert MQTT.twin(thing, "prop", "on") == f"wot/twin/{level}/prop/on"
    assert NATS.twin(thing, "prop", "on") == f"wot.twin.{level}.prop.on"
    assert not set(level) & set("./+#*> ")
    assert addresses.decode(level) == thing
    assert addresses.encode("urn:dev:ops:32473-lamp-1") == "urn:dev:ops:32473-lamp-1"


def test_an_empty_id_has_no_address():
    with pytest.raises(ValueError):
        addresses.encode("")
