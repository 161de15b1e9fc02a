"""The ``nats://`` forms the NATS binding adds to twin TDs.

There is no W3C NATS binding, so the forms use terms of the hub's own namespace
(docs/nats.md), prefix ``nats`` = ``https://wothub.dev/ns/nats#``:

- ``nats:subject``: the subject to publish a request to (``{clientID}`` stands for the
  consumer's own client id, percent-encoded as a subject token), or to subscribe to for
  notifications;
- ``nats:messageType``: ``request`` (publish the envelope with a reply inbox under
  ``_INBOX.{clientID}``; the response comes back there) or ``notification`` (subscribe;
  each message is an envelope).
"""

from __future__ import annotations

from typing import Any

from . import subjects

NAMESPACE = "https://wothub.dev/ns/nats#"
CONTENT_TYPE = "application/json"
CLIENT = "{clientID}"

_REQUESTS = {
    "property": ["readproperty", "writeproperty"],
    "action": ["invokeaction", "queryaction", "cancelaction"],
    "event": [],
    "thing": ["readallproperties", "readmultipleproperties", "queryallactions"],
}


class NatsForms:
    """A ``digitwin.twintd.FormProvider``."""

    name = "nats"
    context = {"nats": NAMESPACE}

    def __init__(self, url: str = "") -> None:
        self.url = url

    def set_url(self, url: str) -> None:
        self.url = url

    def security_definitions(self) -> dict[str, dict[str, Any]]:
        return {}  # the hub's credentials, declared by the HTTP binding, work here too

    def forms(
        self, thing_id: str, kind: str, name: str | None, affordance: dict[str, Any] | None
    ) -> list[dict[str, Any]]:
        if not self.url:
            return []
        affordance = affordance or {}
        out = []
        for op in _REQUESTS[kind]:
            if op == "writeproperty" and affordance.get("readOnly"):
                continue
            if op == "readproperty" and affordance.get("writeOnly"):
                continue
            out.append(self._form(op, f"{subjects.PREFIX}.client.{CLIENT}.req.{op}", "request"))
        if kind == "property" and not affordance.get("writeOnly"):
            subject = subjects.twin(thing_id, "prop", name)
            out.append(self._form(["observeproperty", "unobserveproperty"], subject))
        elif kind == "event":
            subject = subjects.twin(thing_id, "event", name)
            out.append(self._form(["subscribeevent", "unsubscribeevent"], subject))
        elif kind == "thing":
            out.append(
                self._form(
                    ["observeallproperties", "unobserveallproperties"],
                    subjects.twin(thing_id, "prop") + ".*",
                )
            )
            out.append(
                self._form(
                    ["subscribeallevents", "unsubscribeallevents"],
                    subjects.twin(thing_id, "event") + ".*",
                )
            )
        return out

    def _form(self, op: Any, subject: str, message_type: str = "notification") -> dict[str, Any]:
        return {
            "href": self.url,
            "op": op,
            "contentType": CONTENT_TYPE,
            "nats:subject": subject,
            "nats:messageType": message_type,
        }
