"""The NATS subject scheme (docs/nats.md): one token per id.

Client ids, Thing ids and affordance names are percent-encoded into one subject token:
every character outside ``A-Z a-z 0-9 _ ~ : -`` becomes ``%XX`` (UTF-8 bytes), so ``.``,
``*``, ``>``, ``%``, ``/`` and spaces never appear raw; ``urn:dev:ops:32473-lamp-1``
stays readable.

=====================================  ===========================================
``wot.agent.{c}.hello``                agent -> hub: online and subscribed (empty)
``wot.agent.{c}.td[.{thing}]``         agent -> hub: updatething / deletething
``wot.agent.{c}.prop.{thing}[.{n}]``   agent -> hub: observeproperty / ...allproperties
``wot.agent.{c}.event.{thing}.{n}``    agent -> hub: subscribeevent notification
``wot.agent.{c}.resp``                 agent -> hub: progress or result of a request
``wot.agent.{c}.req``                  hub -> agent: requests (and refusals of reports)
``wot.client.{c}.req.{operation}``     consumer -> hub: a request (reply to an inbox)
``wot.client.{c}.resp``                hub -> consumer: later responses, notifications
``wot.twin.{thing}.prop.{n}``          hub -> consumers: property values
``wot.twin.{thing}.event.{n}``         hub -> consumers: events
``wot.twin.{thing}.td``                hub -> consumers: TD created, updated, deleted
``wot.twin.{thing}.presence``          hub -> consumers: the agent went on/offline
``_INBOX.{c}.>``                       a client's own reply inboxes
=====================================  ===========================================
"""

from __future__ import annotations

from bindings.common.addresses import decode as decode  # the subject codec, for the binding
from bindings.common.addresses import encode

PREFIX = "wot"

# Kinds of agent subjects (the fourth token).
HELLO, TD, PROP, EVENT, RESP, REQ = "hello", "td", "prop", "event", "resp", "req"


def inbox_prefix(client_id: str) -> str:
    return f"_INBOX.{encode(client_id)}"


def agent(client_id: str, kind: str, *rest: str) -> str:
    return ".".join((PREFIX, "agent", encode(client_id), kind, *(encode(r) for r in rest)))


def client_request(client_id: str, operation: str) -> str:
    return f"{PREFIX}.client.{encode(client_id)}.req.{operation}"


def client_responses(client_id: str) -> str:
    return f"{PREFIX}.client.{encode(client_id)}.resp"


def twin(thing_id: str, kind: str, name: str | None = None) -> str:
    subject = f"{PREFIX}.twin.{encode(thing_id)}.{kind}"
    return subject if name is None else f"{subject}.{encode(name)}"
