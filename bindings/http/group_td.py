"""A group's own TD: a Thing whose affordances are the ones all its members share, with
forms on the group's HTTP resources (``/groups/{name}/...``, groups_api.py), so any WoT
consumer can read, write, invoke and observe the whole group from this TD alone."""

from __future__ import annotations

from typing import Any

from vocabulary import operations as ops

from .forms import JSON, SSE
from .paths import encode

TD_CONTEXT = ["https://www.w3.org/2019/wot/td/v1", "https://www.w3.org/2022/wot/td/v1.1"]


def group_url(base_url: str, name: str) -> str:
    return f"{base_url}/groups/{encode(name)}"


def group_td_of(groups: Any, client: Any, name: str, forms: Any) -> dict[str, Any]:
    """The TD of the group ``name`` as ``client`` sees it: ``groups`` is the router's
    GroupOps, ``forms`` the HTTP binding's HttpForms (its base URL and security)."""
    shown, shared = groups.td_parts(client, name)
    return group_td(
        shown,
        len(shown["memberIDs"]),
        shared,
        forms.base_url,
        forms.security_definitions(),
        groups.observe_forms(shown["id"]),
    )


def group_td(
    group: dict[str, Any],
    members: int,
    shared: dict[str, dict[str, Any]],
    base_url: str,
    security: dict[str, dict[str, Any]],
    bus_forms: tuple[list[dict[str, Any]], dict[str, str]] = ([], {}),
) -> dict[str, Any]:
    """``bus_forms``: the other bindings' forms to observe the group and their terms'
    prefixes (GroupOps.observe_forms)."""
    other_forms, prefixes = bus_forms
    base = group_url(base_url, group["name"])
    properties = {}
    for name, affordance in shared.get("properties", {}).items():
        op = [ops.READ_PROPERTY]
        if not affordance.get("readOnly"):
            op.append(ops.WRITE_PROPERTY)
        href = f"{base}/properties/{encode(name)}"
        # Observed through the group's one stream (the Thing's form), not one by one.
        shared_schema = {k: v for k, v in affordance.items() if k != "observable"}
        properties[name] = {**shared_schema, "forms": [_plain(href, op)]}
    actions = {
        name: {
            **affordance,
            "synchronous": False,  # one request per member; the answer is the group's status
            "forms": [
                {
                    "href": f"{base}/actions/{encode(name)}",
                    "op": ops.INVOKE_ACTION,
                    "contentType": JSON,
                }
            ],
        }
        for name, affordance in shared.get("actions", {}).items()
    }
    events = {
        name: {
            **affordance,
            "forms": [
                {
                    "href": f"{base}/events/{encode(name)}",
                    "op": ops.SUBSCRIBE_EVENT,
                    "subprotocol": SSE,
                    "contentType": JSON,
                }
            ],
        }
        for name, affordance in shared.get("events", {}).items()
    }
    td: dict[str, Any] = {
        "@context": [*TD_CONTEXT, prefixes] if prefixes else TD_CONTEXT,
        "id": group["id"],
        "title": group.get("title") or group["name"],
        "description": (
            f"The group {group['name']!r} of {members} Things: each operation is done on "
            "every member that has the affordance (docs/groups.md)"
        ),
        "securityDefinitions": {"nosec_sc": {"scheme": "nosec"}, **security},
        "security": list(security) or ["nosec_sc"],
        "properties": properties,
        "actions": actions,
        "events": events,
        "forms": [
            _plain(f"{base}/properties", ops.READ_ALL_PROPERTIES),
            {
                "href": f"{base}/events",
                "op": [ops.OBSERVE_ALL_PROPERTIES, ops.SUBSCRIBE_ALL_EVENTS],
                "subprotocol": SSE,
                "contentType": JSON,
            },
            *other_forms,
        ],
    }
    return td


def _plain(href: str, op: str | list[str]) -> dict[str, Any]:
    return {"href": href, "op": op, "contentType": JSON}
