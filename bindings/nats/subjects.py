"""The NATS subjects (docs/nats.md): the bus channel table spelled with ``.``
(vocabulary/channels.py), one token per id.

Client ids, Thing ids and affordance names are percent-encoded into one subject token
(vocabulary/addresses.py), so ``.``, ``*``, ``>``, ``%``, ``/`` and spaces never appear
raw; ``urn:dev:ops:32473-lamp-1`` stays readable.

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
``wot.twin.{thing}.state.{n}``         hub -> consumers: a property's state changed
``_INBOX.{c}.>``                       a client's own reply inboxes
=====================================  ===========================================
"""

from __future__ import annotations

from vocabulary.addresses import decode, encode
from vocabulary.channels import (
    EVENT,
    HELLO,
    NATS,
    PRESENCE,
    PROP,
    REQ,
    RESP,
    STATE,
    TD,
    Address,
    AddressError,
)

__all__ = [
    "EVENT",
    "HELLO",
    "PREFIX",
    "PRESENCE",
    "PROP",
    "REQ",
    "RESP",
    "STATE",
    "TD",
    "Address",
    "AddressError",
    "agent",
    "client_request",
    "client_responses",
    "decode",
    "encode",
    "inbox_prefix",
    "notification",
    "parse",
    "twin",
]

PREFIX = NATS.PREFIX
agent = NATS.agent
client_request = NATS.client_request
client_responses = NATS.client_responses
inbox_prefix = NATS.inbox_prefix
notification = NATS.notification
parse = NATS.parse
twin = NATS.twin
