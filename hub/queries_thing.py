"""The directory's listing and search as a hub Thing (``urn:wothub:queries``), so that
clients of the buses (WebSocket, MQTT, NATS) can select Things by agent and @type as
``GET /things?agent=..&type=..`` does over HTTP. Each action is checked as the HTTP
listing is: who may not read Things is refused, an agent sees its own Things only."""

from __future__ import annotations

from typing import Any

from core.router import Router
from core.services import ServiceThing, service_td
from digitwin.selection import Selection
from vocabulary.identity import Client
from vocabulary.things import QUERIES_THING

MAX_PAGE = 1000  # as the HTTP listing: a page never holds more TDs than this
_SELECTION = {
    "agent": {"type": "string", "minLength": 1, "description": "the agent that registered it"},
    "type": {"type": "string", "minLength": 1, "description": "one of the TD's @type"},
}


def queries_thing(router: Router) -> ServiceThing:
    def list_things(client: Client, data: Any) -> Any:
        data = data or {}
        selection = Selection(data.get("agent"), data.get("type"))
        limit = min(data.get("limit", MAX_PAGE), MAX_PAGE)
        items, total = router.list_things(client, data.get("offset", 0), limit, selection)
        return {"items": items, "total": total}

    def search_things(client: Client, data: Any) -> Any:
        selection = Selection(data.get("agent"), data.get("type"))
        return router.search_things(client, data["query"], selection)

    td = service_td(
        QUERIES_THING,
        "Thing queries",
        "The directory's listing (by agent and @type, paged) and its JSONPath search, "
        "for clients of any binding (over HTTP: GET /things and /search/jsonpath)",
        {
            "listThings": {
                "description": "A page of the TDs the client may read, in id order",
                "input": {
                    "type": "object",
                    "properties": {
                        **_SELECTION,
                        "offset": {"type": "integer", "minimum": 0},
                        "limit": {"type": "integer", "minimum": 1},
                    },
                    "additionalProperties": False,
                },
                "output": {
                    "type": "object",
                    "properties": {
                        "items": {"type": "array", "items": {"type": "object"}},
                        "total": {"type": "integer"},
                    },
                },
            },
            "searchThings": {
                "description": "RFC 9535 JSONPath over those TDs",
                "input": {
                    "type": "object",
                    "properties": {"query": {"type": "string", "minLength": 1}, **_SELECTION},
                    "required": ["query"],
                    "additionalProperties": False,
                },
                "output": {"type": "array"},
            },
        },
    )
    return ServiceThing(td, {"listThings": list_things, "searchThings": search_things})
