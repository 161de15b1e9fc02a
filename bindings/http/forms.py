"""The forms and security the HTTP binding puts in every twin TD (WoT HTTP Basic and
SSE profiles), and the URL of each resource. One place for URLs, so the forms and
the routes cannot drift apart.

Each observable affordance has two forms: long polling first (``subprotocol:
longpoll``, what node-wot and other clients that pick the first usable form can
follow with their ordinary HTTP client and credentials), then SSE (the WoT HTTP SSE
profile's form, lossless and resumable). See docs/http.md."""

from __future__ import annotations

from typing import Any

from .longpoll import PARAMETER as LONGPOLL_PARAMETER
from .paths import encode

JSON = "application/json"
SSE = "sse"
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

    # -- FormProvider ----------------------------------------------------------------

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
        self, thing_id: str, kind: str, name: str | None, affordance: dict[str, Any] | None
    ) -> list[dict[str, Any]]:
        if kind == "property":
            return self._property_forms(thing_id, name, affordance or {})
        if kind == "action":
            href = self.affordance_url(thing_id, "actions", name)
            return [{"href": href, "op": "invokeaction", "contentType": JSON}]
        if kind == "event":
            href = self.affordance_url(thing_id, "events", name)
            return _observe(href, ["subscribeevent", "unsubscribeevent"])
        return self._thing_forms(thing_id)

    def _property_forms(
        self, thing_id: str, name: str | None, affordance: dict[str, Any]
    ) -> list[dict[str, Any]]:
        href = self.affordance_url(thing_id, "properties", name)
        ops = []
        if not affordance.get("writeOnly"):
            ops.append("readproperty")
        if not affordance.get("readOnly"):
            ops.append("writeproperty")
        forms = [{"href": href, "op": ops, "contentType": JSON}] if ops else []
        if not affordance.get("writeOnly"):
            # The twin can stream every property the device reports, observable or not.
            forms += _observe(href, ["observeproperty", "unobserveproperty"])
        return forms

    def _thing_forms(self, thing_id: str) -> list[dict[str, Any]]:
        properties = self.affordance_url(thing_id, "properties")
        return [
            {"href": properties, "op": "readallproperties", "contentType": JSON},
            {"href": properties, "op": "writemultipleproperties", "contentType": JSON},
            _sse(properties, ["observeallproperties", "unobserveallproperties"]),
            _sse(
                self.affordance_url(thing_id, "events"),
                ["subscribeallevents", "unsubscribeallevents"],
            ),
            {
                "href": self.affordance_url(thing_id, "actions"),
                "op": "queryallactions",
                "contentType": JSON,
            },
        ]


def _sse(href: str, ops: list[str]) -> dict[str, Any]:
    return {"href": href, "op": ops, "subprotocol": SSE, "contentType": JSON}


def _observe(href: str, ops: list[str]) -> list[dict[str, Any]]:
    """A long-poll form, then the SSE form, for one affordance."""
    poll = {"href": f"{href}?{LONGPOLL_PARAMETER}=true", "op": ops, "subprotocol": LONGPOLL}
    return [{**poll, "contentType": JSON}, _sse(href, ops)]
