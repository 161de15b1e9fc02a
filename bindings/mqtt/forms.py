"""The ``mqtts://`` forms the MQTT binding adds to twin TDs (W3C MQTT binding draft:
``mqv:filter`` for subscribing, ``mqv:retain`` where the latest value is sent retained,
and the same topic in the href path, which is where node-wot reads it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import topics

MQV_CONTEXT = {"mqv": "https://www.w3.org/2019/wot/mqtt#"}
JSON = "application/json"


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

    def _form(self, ops: list[str], topic_filter: str, **extra: Any) -> dict[str, Any]:
        return {
            "href": f"{self.base_url}/{topic_filter}",
            "op": ops,
            "mqv:filter": topic_filter,
            "contentType": JSON,
            **extra,
        }

    def forms(
        self, thing_id: str, kind: str, name: str | None, affordance: dict[str, Any] | None
    ) -> list[dict[str, Any]]:
        if not self.base_url:
            return []
        if kind == "property":
            if affordance and affordance.get("writeOnly"):
                return []
            topic = topics.twin_property(thing_id, name or "")
            return [
                self._form(
                    ["readproperty", "observeproperty", "unobserveproperty"],
                    topic,
                    **{"mqv:retain": True, "mqv:qos": "0"},
                )
            ]
        if kind == "event":
            topic = topics.twin_event(thing_id, name or "")
            return [self._form(["subscribeevent", "unsubscribeevent"], topic, **{"mqv:qos": "0"})]
        if kind == "thing":
            base = f"{topics.ROOT}/{topics.TWIN}/{topics.encode(thing_id)}"
            return [
                self._form(
                    ["observeallproperties", "unobserveallproperties"], f"{base}/{topics.PROP}/+"
                ),
                self._form(
                    ["subscribeallevents", "unsubscribeallevents"], f"{base}/{topics.EVENT}/+"
                ),
            ]
        return []  # actions: requests go as envelopes to the client's own req topic
