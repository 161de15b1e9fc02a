"""Things the hub implements itself (directory, authentication, clients, certificates).

A service Thing has a TD like any other, registered in the directory under the hub's
own id, so every binding gives it forms and every consumer finds it. Its actions run in
the router at once, with the same authorization and input checks as any action, instead
of waiting for an agent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vocabulary.identity import Client

Handler = Callable[[Client, Any], Any]


def service_td(
    thing_id: str, title: str, description: str, actions: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """A TD for a service Thing; ``actions`` maps names to their description, input and
    output schemas. Forms and security are the bindings' (see digitwin.twintd)."""
    return {
        "@context": ["https://www.w3.org/2019/wot/td/v1", "https://www.w3.org/2022/wot/td/v1.1"],
        "id": thing_id,
        "title": title,
        "description": description,
        "securityDefinitions": {"nosec_sc": {"scheme": "nosec"}},
        "security": "nosec_sc",
        "actions": {
            name: {
                **action,
                "synchronous": True,
                "forms": [{"href": f"{thing_id}/actions/{name}"}],
            }
            for name, action in actions.items()
        },
    }


class ServiceThing:
    """A TD and a handler per action: ``handler(client, input) -> output``."""

    def __init__(self, td: dict[str, Any], handlers: dict[str, Handler]) -> None:
        missing = set(td.get("actions", {})) ^ set(handlers)
        if missing:
            raise ValueError(f"actions and handlers differ: {sorted(missing)}")
        self.td = td
        self.thing_id: str = td["id"]
        self._handlers = handlers

    def invoke(self, client: Client, action: str, data: Any) -> Any:
        return self._handlers[action](client, data)
