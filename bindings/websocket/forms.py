"""The ``wss://`` forms the WebSocket binding adds to twin TDs (Web Thing Protocol
draft: one endpoint, the operation in the message, ``subprotocol: webthingprotocol``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

SUBPROTOCOL = "webthingprotocol"
PATH = "/ws"

_OPS = {
    "property": ["readproperty", "writeproperty", "observeproperty", "unobserveproperty"],
    "action": ["invokeaction", "queryaction", "cancelaction"],
    "event": ["subscribeevent", "unsubscribeevent"],
    "thing": [
        "readallproperties",
        "readmultipleproperties",
        "observeallproperties",
        "unobserveallproperties",
        "subscribeallevents",
        "unsubscribeallevents",
        "queryallactions",
    ],
}


_READS = ("readproperty", "observeproperty", "unobserveproperty")


class WebSocketForms:
    """A ``digitwin.twintd.FormProvider``; the URL follows the HTTPS base URL."""

    name = "websocket"

    def __init__(
        self, security: Callable[[], dict[str, dict[str, Any]]], base_url: str = ""
    ) -> None:
        """``security`` gives the HTTP binding's definitions: the same tokens work here,
        so twin TDs declare one scheme (and its login URL) for both."""
        self.url = ""
        self._security = security
        self.set_base_url(base_url)

    def set_base_url(self, base_url: str) -> None:
        base = base_url.rstrip("/")
        if base.startswith("https://"):
            base = "wss://" + base[len("https://") :]
        elif base.startswith("http://"):
            base = "ws://" + base[len("http://") :]
        self.url = base + PATH

    def security_definitions(self) -> dict[str, dict[str, Any]]:
        return self._security()

    def forms(
        self, thing_id: str, kind: str, name: str | None, affordance: dict[str, Any] | None
    ) -> list[dict[str, Any]]:
        ops = list(_OPS[kind])
        if kind == "property" and affordance and affordance.get("readOnly"):
            ops.remove("writeproperty")
        if kind == "property" and affordance and affordance.get("writeOnly"):
            ops = [op for op in ops if op not in _READS]
        return [
            {
                "href": self.url,
                "op": ops,
                "subprotocol": SUBPROTOCOL,
                "contentType": "application/json",
            }
        ]
