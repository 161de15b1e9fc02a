"""The forms and security the HTTP binding puts in every twin TD (WoT HTTP Basic and
SSE profiles), and the URL of each resource. One place for URLs, so the forms and
the routes cannot drift apart.

Each observable affordance has two forms: long polling first (``subprotocol:
longpoll``, what node-wot and other clients that pick the first usable form can
follow with their ordinary HTTP client and credentials), then SSE (the WoT HTTP SSE
profile's form, lossless and resumable). See docs/http.md."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vocabulary import operations as ops

from .longpoll import PARAMETER as LONGPOLL_PARAMETER
from .paths import encode

JSON = "application/json"
SSE = "sse"
HISTORY_REL = "history"  # the relation of a twin TD's link to an affordance's history
STATE_REL = "state"  # the relation of a twin TD's link to the Thing's state document
LONGPOLL = "longpoll"


class HttpForms:
    """A ``digitwin.twintd.FormProvider`` for the hub's HTTPS API at ``base_url``."""

    name = "http"

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    # -- URLs ------------------------------------------------------------------------

    def thing_url(self, thing_id: str) -> str:
        return f"{self.base_url}/things/{encode(thing_id)}"

    def affordance_url(self, thing_id: str, member: str, name: str | None = None) -> str:
        url = f"{self.thing_url(thing_id)}/{member}"
        return url if name is None else f"{url}/{encode(name)}"

    def request_url(self, thing_id: str, member: str, name: str, request_id: str) -> str:
        """Where an action's (or a queued write's) status lives: query with GET,
        cancel with DELETE."""
        return f"{self.affordance_url(thing_id, member, name)}/{encode(request_id)}"

    def history_url(self, thing_id: str, member: str, name: str) -> str:
        return f"{self.affordance_url(thing_id, member, name)}/history"

    # -- FormProvider ----------------------------------------------------------------

    def history_links(self, thing_id: str, kind: str, name: str) -> list[dict[str, Any]]:
        """One TD link per property or event: its history (docs/history.md), anchored
        at the affordance's own URL."""
        member = "properties" if kind == "property" else "events"
        return [
            {
                "rel": HISTORY_REL,
                "href": self.history_url(thing_id, member, name),
                "type": JSON,
                "anchor": self.affordance_url(thing_id, member, name),
            }
        ]

    def state_links(self, thing_id: str) -> list[dict[str, Any]]:
        """The TD link to the Thing's state document (docs/digitwin.md)."""
        return [{"rel": STATE_REL, "href": f"{self.thing_url(thing_id)}/state", "type": JSON}]

    def security_definitions(self) -> dict[str, dict[str, Any]]:
        return {
            "bearer_sc": {
                "scheme": "bearer",
                "in": "header",
                "format": "jwt",
                "alg": "EdDSA",
                "authorization": f"{self.base_url}/authn/login",
            }
        }

    def forms(
        self, thing_id: str, kind: str, name: str | None, operations: tuple[str, ...]
    ) -> list[dict[str, Any]]:
        forms = []
        urls: dict[str, str] = {}  # by member: several resources share one URL
        for carried, member, shape in _RESOURCES.get(kind, ()):  # a group's: group_td.py
            offered = [op for op in operations if op in carried]
            if offered:
                if member not in urls:
                    urls[member] = self.affordance_url(thing_id, member, name)
                # A resource that serves one operation names it; one that serves several
                # lists those offered (a read-only property's form is ["readproperty"]).
                op = offered if len(carried) > 1 else offered[0]
                forms += shape(urls[member], op)
        return forms


def _plain(href: str, op: str | list[str]) -> list[dict[str, Any]]:
    return [{"href": href, "op": op, "contentType": JSON}]


def _sse(href: str, op: str | list[str]) -> list[dict[str, Any]]:
    return [{"href": href, "op": op, "subprotocol": SSE, "contentType": JSON}]


def _observe(href: str, op: str | list[str]) -> list[dict[str, Any]]:
    """A long-poll form, then the SSE form, for one affordance."""
    poll = {"href": f"{href}?{LONGPOLL_PARAMETER}=true", "op": op, "subprotocol": LONGPOLL}
    return [{**poll, "contentType": JSON}, *_sse(href, op)]


Shape = Callable[[str, str | list[str]], list[dict[str, Any]]]

# The operations each resource serves (an affordance's URL is /things/{id}/{member}/{name},
# the Thing's /things/{id}/{member}), and the shape of its forms. An action's status and
# cancel URLs are per request (in its ActionStatus), so queryaction and cancelaction have
# no form here.
_RESOURCES: dict[str, list[tuple[frozenset[str], str, Shape]]] = {
    "property": [
        (frozenset({ops.READ_PROPERTY, ops.WRITE_PROPERTY}), "properties", _plain),
        (frozenset({ops.OBSERVE_PROPERTY, ops.UNOBSERVE_PROPERTY}), "properties", _observe),
    ],
    "action": [(frozenset({ops.INVOKE_ACTION}), "actions", _plain)],
    "event": [(frozenset({ops.SUBSCRIBE_EVENT, ops.UNSUBSCRIBE_EVENT}), "events", _observe)],
    "thing": [
        (frozenset({ops.READ_ALL_PROPERTIES}), "properties", _plain),
        (frozenset({ops.WRITE_MULTIPLE_PROPERTIES}), "properties", _plain),
        (frozenset({ops.OBSERVE_ALL_PROPERTIES, ops.UNOBSERVE_ALL_PROPERTIES}), "properties", _sse),
        (frozenset({ops.SUBSCRIBE_ALL_EVENTS, ops.UNSUBSCRIBE_ALL_EVENTS}), "events", _sse),
        (frozenset({ops.QUERY_ALL_ACTIONS}), "actions", _plain),
    ],
}
