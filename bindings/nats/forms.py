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

from vocabulary import operations as ops

from . import subjects

NAMESPACE = "https://wothub.dev/ns/nats#"
CONTENT_TYPE = "application/json"
CLIENT = "{clientID}"
STATE_REL = "state"  # the relation of the twin TD's link to the state document's changes

# The operations each twin subject serves (see _twin_subjects): subscribe to it.
_OBSERVE = frozenset({ops.OBSERVE_PROPERTY, ops.UNOBSERVE_PROPERTY})
_SUBSCRIBE = frozenset({ops.SUBSCRIBE_EVENT, ops.UNSUBSCRIBE_EVENT})
_OBSERVE_ALL = frozenset({ops.OBSERVE_ALL_PROPERTIES, ops.UNOBSERVE_ALL_PROPERTIES})
_SUBSCRIBE_ALL = frozenset({ops.SUBSCRIBE_ALL_EVENTS, ops.UNSUBSCRIBE_ALL_EVENTS})
# Every other operation is a request the router answers, except writemultipleproperties,
# which the hub serves over HTTP only.
_REQUESTS = (
    ops.WOT_OPERATIONS
    - _OBSERVE
    - _SUBSCRIBE
    - _OBSERVE_ALL
    - _SUBSCRIBE_ALL
    - {ops.WRITE_MULTIPLE_PROPERTIES}
)


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
        self, thing_id: str, kind: str, name: str | None, operations: tuple[str, ...]
    ) -> list[dict[str, Any]]:
        if not self.url:
            return []
        if kind == "group":  # requests on the group's Thing id, on the one request subject
            return [
                self._form(list(operations), f"{subjects.PREFIX}.client.{CLIENT}.req", "request")
            ]
        out = [
            self._form(op, f"{subjects.PREFIX}.client.{CLIENT}.req.{op}", "request")
            for op in operations
            if op in _REQUESTS
        ]
        for carried, subject in _twin_subjects(thing_id, kind, name):
            offered = [op for op in operations if op in carried]
            if offered:
                out.append(self._form(offered, subject))
        return out

    def state_links(self, thing_id: str) -> list[dict[str, Any]]:
        """Where the changes of the Thing's state document come (docs/digitwin.md): one
        subject per property (``*``), each message that property's entry."""
        if not self.url:
            return []
        return [
            {
                "rel": STATE_REL,
                "href": self.url,
                "type": CONTENT_TYPE,
                "nats:subject": subjects.twin(thing_id, subjects.STATE) + ".*",
                "nats:messageType": "notification",
            }
        ]

    def _form(self, op: Any, subject: str, message_type: str = "notification") -> dict[str, Any]:
        return {
            "href": self.url,
            "op": op,
            "contentType": CONTENT_TYPE,
            "nats:subject": subject,
            "nats:messageType": message_type,
        }


def _twin_subjects(thing_id: str, kind: str, name: str | None) -> list[tuple[frozenset[str], str]]:
    """The twin subjects to subscribe to, each with the operations it serves."""
    if kind == "property":
        return [(_OBSERVE, subjects.twin(thing_id, "prop", name))]
    if kind == "event":
        return [(_SUBSCRIBE, subjects.twin(thing_id, "event", name))]
    if kind == "thing":
        return [
            (_OBSERVE_ALL, subjects.twin(thing_id, "prop") + ".*"),
            (_SUBSCRIBE_ALL, subjects.twin(thing_id, "event") + ".*"),
        ]
    return []
