"""The receive pipeline (bindings/common/receive.py) on a real router and twin: what it
refuses never reaches the router, what it takes does, and the fields an MQTT topic or
a NATS subject implies follow one rule on both buses."""

from __future__ import annotations

import logging

import orjson
import pytest

from bindings.common.receive import Receiver
from tests.support.tds import LAMP, lamp_td
from vocabulary.channels import MQTT, NATS
from vocabulary.envelope import Message
from vocabulary.identity import Client

LIMIT = 4096
BUSES = pytest.mark.parametrize("bus", [MQTT, NATS], ids=["mqtt", "nats"])
# A report that sets the lamp's brightness to 5 if it reaches the router.
REPORT = {
    "messageType": "notification",
    "operation": "observeproperty",
    "thingID": LAMP,
    "name": "brightness",
    "value": 5,
}


class Answers(list):
    """The reply callback: what the pipeline answered, in order."""

    def error(self) -> dict:
        assert len(self) == 1, self
        answer = self[0]
        assert isinstance(answer, dict) and answer["status"] == "failed", answer
        return answer["error"]


@pytest.fixture
def receiver(running):
    return Receiver(running.hub.router, LIMIT, logging.getLogger("test"))


@pytest.fixture
def agent(running, receiver):
    """A connected agent whose lamp is registered through the pipeline."""
    connection = running.agent("lamp-agent")
    answers = Answers()
    registered = {"messageType": "request", "operation": "updatething", "input": lamp_td()}
    assert receiver.receive(connection, orjson.dumps(registered), answers.append)
    assert answers[0].output == {"id": LAMP, "created": True}
    return connection


def brightness(running):
    return running.hub.twin.read_property(LAMP, "brightness").get("value")


@pytest.mark.parametrize(
    ("payload", "status", "field", "words"),
    [
        (orjson.dumps(REPORT)[:-1], 400, "(root)", "not valid JSON"),
        (orjson.dumps([REPORT]), 400, "(root)", "a JSON object, not an array"),
        (orjson.dumps({**REPORT, "messageType": "gossip"}), 400, "messageType", "'gossip'"),
        (orjson.dumps({**REPORT, "colour": "red"}), 400, "colour", "not a field"),
        (orjson.dumps({**REPORT, "messageID": "x" * LIMIT}), 413, None, "over the limit"),
    ],
)
def test_a_bad_message_gets_an_error_and_never_reaches_the_router(
    running, receiver, agent, payload, status, field, words
):
    answers = Answers()
    assert not receiver.receive(agent, payload, answers.append)
    error = answers.error()
    assert error["status"] == status and words in error["detail"], error
    if field is not None:
        assert error["validationErrors"][0]["field"] == field
    assert receiver.refused == 1
    assert brightness(running) is None

    assert receiver.receive(agent, orjson.dumps(REPORT), answers.append)  # the good one
    assert brightness(running) == 5


def test_the_size_is_measured_as_received_bytes_or_characters(receiver, agent):
    answers = Answers()
    assert not receiver.receive(agent, "é" * (LIMIT + 1), answers.append)
    detail = answers.error()["detail"]
    assert detail == f"a message of {LIMIT + 1} characters is over the limit of {LIMIT}"


def test_an_error_carries_the_id_of_the_message_it_answers(receiver, agent):
    answers = Answers()
    bad = {"messageType": "request", "operation": "nosuchthing", "correlationID": "c-7"}
    assert not receiver.receive(agent, orjson.dumps(bad), answers.append)
    assert answers[0]["correlationID"] == "c-7"


def test_a_refusal_by_the_router_is_its_response_not_a_bad_message(running, receiver, agent):
    running.add_client("vera")
    viewer = running.hub.router.connect(Client("vera", "viewer"), "test")
    answers = Answers()
    delete = {"messageType": "request", "operation": "deletething", "thingID": LAMP}
    assert receiver.receive(viewer, orjson.dumps(delete), answers.append)
    assert isinstance(answers[0], Message) and answers[0].error["status"] == 403
    assert receiver.refused == 0


@BUSES
def test_a_report_may_leave_out_what_its_address_implies(running, receiver, agent, bus):
    address = bus.parse(bus.agent("lamp-agent", "prop", LAMP, "brightness"))
    answers = Answers()
    assert receiver.receive(agent, b'{"value": 42}', answers.append, address)
    assert answers == [] and brightness(running) == 42


@BUSES
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("thingID", "urn:dev:ops:fan-1"),
        ("name", "on"),
        ("operation", "observeallproperties"),
        ("messageType", "request"),
    ],
)
def test_a_field_that_contradicts_its_address_is_answered_400(
    running, receiver, agent, bus, field, value
):
    address = bus.parse(bus.agent("lamp-agent", "prop", LAMP, "brightness"))
    answers = Answers()
    report = {**REPORT, field: value}
    assert not receiver.receive(agent, orjson.dumps(report), answers.append, address)
    error = answers.error()
    assert error["status"] == 400 and error["validationErrors"][0]["field"] == field
    assert brightness(running) is None
