"""What MQTT needs on the NATS bus beyond plain subjects (nats-server's MQTT listener,
docs/mqtt.md): retained values and QoS 1 deliveries are JetStream messages in the
streams nats-server keeps for its MQTT clients, written by the hub like any message.

- A retained value: ``$MQTT.rmsgs.<subject>`` (stream ``$MQTT_rmsgs``, one per subject)
  with the MQTT topic and flags in headers; an empty body deletes it. A new MQTT
  subscription gets it with the retain flag; live subscribers get the plain publish.
- A QoS 1 message for an MQTT client with a kept session (``clean_session`` false):
  ``$MQTT.msgs.<subject>`` (stream ``$MQTT_msgs``), held for the client's durable
  consumer while it is offline. The plain publish carries ``Nmqtt-Pub: 1`` so MQTT QoS 1
  subscriptions skip it (they get the stream copy) while NATS and QoS 0 subscribers get it.
- MQTT messages reach NATS subscribers with header ``Nmqtt-Pub`` (their QoS).
"""

from __future__ import annotations

RETAINED_PREFIX = "$MQTT.rmsgs."
QUEUED_PREFIX = "$MQTT.msgs."
RETAINED_STREAM, QUEUED_STREAM, SESSION_STREAM = "$MQTT_rmsgs", "$MQTT_msgs", "$MQTT_sess"
MQTT_STREAMS = (SESSION_STREAM, QUEUED_STREAM, RETAINED_STREAM)
QOS_HEADER = "Nmqtt-Pub"
QOS1 = {QOS_HEADER: "1"}
_RETAIN = "1"  # MQTT PUBLISH flags in hex: bit 0 retain, bits 1-2 QoS
_DELETE = "-1"


def from_mqtt(headers: dict[str, str] | None) -> bool:
    """Whether a NATS message came from an MQTT client."""
    return bool(headers) and QOS_HEADER in headers  # type: ignore[operator]


def topic(subject: str) -> str:
    """The MQTT topic of a NATS subject (the hub's subjects hold no ``/``: ids are
    percent-encoded)."""
    return subject.replace(".", "/")


def retained(subject: str, payload: bytes) -> tuple[str, bytes, dict[str, str]]:
    """The stream write that makes ``payload`` the retained message of ``subject``
    (an empty payload deletes it)."""
    flags = _RETAIN if payload else _DELETE
    headers = {"Nmqtt-RTopic": topic(subject), "Nmqtt-RFlags": flags}
    return RETAINED_PREFIX + subject, payload, headers


def queued(subject: str) -> str:
    """Where a QoS 1 message for MQTT subscribers of ``subject`` is written."""
    return QUEUED_PREFIX + subject
