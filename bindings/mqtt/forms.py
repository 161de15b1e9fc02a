"""The ``mqtts://`` forms the MQTT binding adds to twin TDs (W3C MQTT binding draft:
``mqv:filter`` for subscribing, ``mqv:retain`` where the latest value is sent retained,
and the same topic in the href path, which is where node-wot reads it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vocabulary import operations as ops

from . import topics

MQV_CONTEXT = {"mqv": "https://www.w3.org/2019/wot/mqtt#"}
JSON = "application/json"

# The operations each twin topic serves (see _twin_topics).
_PROPERTY = frozenset({ops.READ_PROPERTY, ops.OBSERVE_PROPERTY, ops.UNOBSERVE_PROPERTY})
_EVENT = frozenset({ops.SUBSCRIBE_EVENT, ops.UNSUBSCRIBE_EVENT})
_ALL_PROPERTIES = frozenset({ops.OBSERVE_ALL_PROPERTIES, ops.UNOBSERVE_ALL_PROPERTIES})
_ALL_EVENTS = frozenset({ops.SUBSCRIBE_ALL_EVENTS, ops.UNSUBSCRIBE_ALL_EVENTS})


def _basic() -> dict[str, dict[str, Any]]:
    return {"mqtt_sc": {"scheme": "basic", "in": "auto"}}


class MqttForms:
    """A ``digitwin.twintd.FormProvider`` for the broker at ``base_url``
    (``mqtts://host:port``)."""

    name = "mqtt"
    context = {"mqv": "https://www.w3.org/2019/wot/mqtt#"}  # the W3C MQTT binding's terms

    def __init__(
        self,
        base_url: str = "",
        security: Callable[[], dict[str, dict[str, Any]]] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._security = security or _basic

    def set_base_url(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def security_definitions(self) -> dict[str, dict[str, Any]]:
        return self._security()

    def _form(self, op: list[str], topic_filter: str, **extra: Any) -> dict[str, Any]:
        return {
            "href": f"{self.base_url}/{topic_filter}",
            "op": op,
            "mqv:filter": topic_filter,
            "contentType": JSON,
            **extra,
        }

    def state_links(self, thing_id: str) -> list[dict[str, Any]]:
        """Where the changes of the Thing's state document come (docs/digitwin.md): one
        topic per property (``+``), each message that property's entry."""
        if not self.base_url:
            return []
        topic_filter = f"{topics.twin_state(thing_id)}/+"
        return [
            {
                "rel": "state",
                "href": f"{self.base_url}/{topic_filter}",
                "type": JSON,
                "mqv:filter": topic_filter,
            }
        ]

    def forms(
        self, thing_id: str, kind: str, name: str | None, operations: tuple[str, ...]
    ) -> list[dict[str, Any]]:
        if not self.base_url:
            return []
        forms = []
        for carried, topic_filter, extra in _twin_topics(thing_id, kind, name or ""):
            offered = [op for op in operations if op in carried]
            if offered:
                forms.append(self._form(offered, topic_filter, **extra))
        return forms


def _twin_topics(
    thing_id: str, kind: str, name: str
) -> list[tuple[frozenset[str], str, dict[str, Any]]]:
    """The twin topics of an affordance (or of the Thing), each with the operations it
    serves and its form's extra terms. A property's latest value is sent retained, so
    reading it is subscribing. Requests (writeproperty, invokeaction, ...) go as
    envelopes to the client's own req topic, which a TD cannot name for every client:
    they have no MQTT form."""
    if kind == "property":
        topic = topics.twin_property(thing_id, name)
        return [(_PROPERTY, topic, {"mqv:retain": True, "mqv:qos": "0"})]
    if kind == "event":
        return [(_EVENT, topics.twin_event(thing_id, name), {"mqv:qos": "0"})]
    if kind == "thing":
        base = f"{topics.ROOT}/{topics.TWIN}/{topics.encode(thing_id)}"
        return [
            (_ALL_PROPERTIES, f"{base}/{topics.PROP}/+", {}),
            (_ALL_EVENTS, f"{base}/{topics.EVENT}/+", {}),
        ]
    return []
