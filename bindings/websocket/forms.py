"""The ``wss://`` forms the WebSocket binding adds to twin TDs (Web Thing Protocol
draft: one endpoint, the operation in the message, ``subprotocol: webthingprotocol``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vocabulary import operations as ops

SUBPROTOCOL = "webthingprotocol"
PATH = "/ws"

# Every operation goes as a message to the one endpoint, except writemultipleproperties,
# which the hub serves over HTTP only (one PUT, queued whole or not at all).
_CARRIED = ops.WOT_OPERATIONS - {ops.WRITE_MULTIPLE_PROPERTIES}


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
        self, thing_id: str, kind: str, name: str | None, operations: tuple[str, ...]
    ) -> list[dict[str, Any]]:
        carried = [op for op in operations if op in _CARRIED]
        if not carried:
            return []
        return [
            {
                "href": self.url,
                "op": carried,
                "subprotocol": SUBPROTOCOL,
                "contentType": "application/json",
            }
        ]
