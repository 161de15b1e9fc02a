"""The twin TD consumers see: the agent's TD with the hub's forms and security.

Each binding that consumers can use provides a ``FormProvider``; the twin TD replaces
every form and security definition of the agent's TD with theirs, so a WoT consumer can
talk to the twin (through the hub) from the TD alone. The agent's TD is never changed.

Which operations the hub serves on an affordance is decided here, once
(``operations``); a provider only maps those operations to its hrefs and terms, and
leaves out the ones its protocol has no form for.
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from vocabulary import operations as ops

TD10_CONTEXT = "https://www.w3.org/2019/wot/td/v1"
TD11_CONTEXT = "https://www.w3.org/2022/wot/td/v1.1"
DISCOVERY_CONTEXT = "https://www.w3.org/2022/wot/discovery"
AFFORDANCE_KINDS = {"properties": "property", "actions": "action", "events": "event"}

# What the hub serves, by kind, in the order forms list them.
ACTION_OPERATIONS = (ops.INVOKE_ACTION, ops.QUERY_ACTION, ops.CANCEL_ACTION)
EVENT_OPERATIONS = (ops.SUBSCRIBE_EVENT, ops.UNSUBSCRIBE_EVENT)
THING_OPERATIONS = (
    ops.READ_ALL_PROPERTIES,
    ops.READ_MULTIPLE_PROPERTIES,
    ops.WRITE_MULTIPLE_PROPERTIES,
    ops.OBSERVE_ALL_PROPERTIES,
    ops.UNOBSERVE_ALL_PROPERTIES,
    ops.SUBSCRIBE_ALL_EVENTS,
    ops.UNSUBSCRIBE_ALL_EVENTS,
    ops.QUERY_ALL_ACTIONS,
)


def operations(kind: str, affordance: dict[str, Any] | None = None) -> tuple[str, ...]:
    """The operations the hub serves on one affordance (``kind`` property, action or
    event) or, with kind ``thing``, on the whole Thing."""
    if kind == "action":
        return ACTION_OPERATIONS
    if kind == "event":
        return EVENT_OPERATIONS
    if kind == "thing":
        return THING_OPERATIONS
    affordance = affordance or {}
    write_only = affordance.get("writeOnly")  # a PIN, a password: never read back
    served = [] if write_only else [ops.READ_PROPERTY]
    if not affordance.get("readOnly"):
        served.append(ops.WRITE_PROPERTY)
    # The twin can stream every value the agent reports, unless the TD says not to.
    if not write_only and affordance.get("observable") is not False:
        served += [ops.OBSERVE_PROPERTY, ops.UNOBSERVE_PROPERTY]
    return tuple(served)


def has_history(kind: str, affordance: Any) -> bool:
    """Whether the hub keeps a history of an affordance: every event, every property
    but a write-only one (docs/history.md)."""
    if kind == "event":
        return True
    return kind == "property" and not (isinstance(affordance, dict) and affordance.get("writeOnly"))


def _no_links(thing_id: str, kind: str, name: str) -> list[dict[str, Any]]:
    return []


def _none(thing_id: str) -> list[dict[str, Any]]:
    return []


class FormProvider(Protocol):
    """What a binding adds to twin TDs."""

    name: str
    # Optional: ``context`` maps the prefixes of the provider's form terms to their IRIs;
    # ``history_links(thing_id, kind, name)`` gives the TD links (``rel`` "history") to
    # where the history of a property or event is read; ``state_links(thing_id)`` the
    # links (``rel`` "state") to the Thing's state document.

    def security_definitions(self) -> dict[str, dict[str, Any]]:
        """Security schemes this binding's forms refer to, by name."""
        ...

    def forms(
        self, thing_id: str, kind: str, name: str | None, operations: tuple[str, ...]
    ) -> list[dict[str, Any]]:
        """Forms for ``operations`` (those the hub serves, see ``operations``) on one
        affordance (``kind`` property, action or event) or, with kind ``thing`` and no
        name, on the Thing; with kind ``group``, a group's Thing (its members observed
        with requests on the group's Thing id, docs/groups.md). No form for an
        operation the binding cannot carry."""
        ...


def build_twin_td(td: dict[str, Any], providers: list[FormProvider]) -> dict[str, Any]:
    """A new TD for consumers; with no providers, the agent's own forms are kept."""
    twin = orjson.loads(orjson.dumps(td))  # a deep copy, fast
    twin["@context"] = _context(twin.get("@context"))
    if not providers:
        return twin
    thing_id = twin["id"]
    # Prefixes the providers' form terms use (mqv:, nats:), declared in the @context.
    prefixes = {k: v for p in providers for k, v in getattr(p, "context", {}).items()}
    if prefixes:
        twin["@context"] = _with_prefixes(twin["@context"], prefixes)
    definitions: dict[str, dict[str, Any]] = {}
    for provider in providers:
        definitions.update(provider.security_definitions())
    names = list(definitions)
    if len(names) > 1:
        # Any one binding's scheme will do: alternatives are a combo oneOf (TD 1.1 5.3.3.5).
        definitions["hub_combo_sc"] = {"scheme": "combo", "oneOf": names}
        twin["security"] = ["hub_combo_sc"]
    else:
        twin["security"] = names or ["nosec_sc"]
        definitions = definitions or {"nosec_sc": {"scheme": "nosec"}}
    twin["securityDefinitions"] = definitions
    twin.pop("base", None)  # the agent's base would point consumers at the device

    for member, kind in AFFORDANCE_KINDS.items():
        for name, affordance in (twin.get(member) or {}).items():
            served = operations(kind, affordance)
            affordance["forms"] = [
                form for p in providers for form in p.forms(thing_id, kind, name, served)
            ]
    history = [
        link
        for member, kind in (("properties", "property"), ("events", "event"))
        for name, affordance in (twin.get(member) or {}).items()
        if has_history(kind, affordance)
        for provider in providers
        for link in getattr(provider, "history_links", _no_links)(thing_id, kind, name)
    ]
    state = [
        link for provider in providers for link in getattr(provider, "state_links", _none)(thing_id)
    ]
    if history or state:  # after the agent's own links
        twin["links"] = [*(twin.get("links") or []), *state, *history]
    served = operations("thing")
    thing_forms = [form for p in providers for form in p.forms(thing_id, "thing", None, served)]
    if thing_forms:
        twin["forms"] = thing_forms
    else:
        twin.pop("forms", None)
    return twin


def _with_prefixes(context: list[Any], prefixes: dict[str, str]) -> list[Any]:
    """The context with a map of the prefixes it does not define yet."""
    defined = {k for entry in context if isinstance(entry, dict) for k in entry}
    missing = {k: v for k, v in prefixes.items() if k not in defined}
    return [*context, missing] if missing else context


def _context(context: Any) -> list[Any]:
    """TD 1.0 first, then TD 1.1, then the rest: what TD 1.0 consumers (node-wot) need."""
    entries = context if isinstance(context, list) else [context] if context else []
    rest = [entry for entry in entries if entry not in (TD10_CONTEXT, TD11_CONTEXT)]
    return [TD10_CONTEXT, TD11_CONTEXT, *rest]


def enriched_td(twin_td: dict[str, Any], registration: dict[str, Any]) -> dict[str, Any]:
    """The twin TD as a directory serves it (WoT Discovery 6.2): with the discovery
    context and the ``registration`` information. The cached twin TD is not changed."""
    context = list(twin_td["@context"])
    if DISCOVERY_CONTEXT not in context:
        context.append(DISCOVERY_CONTEXT)
    return {**twin_td, "@context": context, "registration": registration}
