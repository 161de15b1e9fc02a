"""The clients' messages partitioned over the hub's workers (``wothub serve --workers N``,
docs/cluster.md): every message a client sends the hub goes to the worker of its
partition, so one client's messages stay in order, and its connection to the router
(presence, requests to deliver, subscriptions) lives in that one worker.

nats-server does it, with a subject mapping in the account of the clients (``APP``):
each subject a client sends the hub gets its partition, ``partition(N, client token)``,
as a token after the client's::

    wot.agent.lamp-agent.prop.urn:dev:1.on   ->  wot.agent.lamp-agent.1.prop.urn:dev:1.on
    wot.client.otto.req.readproperty         ->  wot.client.otto.0.req.readproperty

Worker ``i`` subscribes to ``wot.agent.*.{i}.>``, ``wot.client.*.{i}.req.*`` and
``wot.client.*.{i}.req``. The partition is FNV-1a (32 bit) of the client's token, modulo
N, which ``partition_of`` computes the same way (the hub needs it for presence and the
callout's permissions).

nats-server checks a client's publish permissions on the mapped subject. An agent's
``wot.agent.{c}.>`` covers its mapped subjects; a consumer's request subjects are exact,
so with partitions the callout grants each its mapped form too (``mapped``), for the
client's own partition only. What the hub sends to clients (``wot.agent.{c}.req``,
``wot.client.{c}.resp``, ``wot.twin...``) is not mapped.
"""

from __future__ import annotations

import functools

from .subjects import PREFIX

# Client -> hub subjects, as (source, its tokens after the client's): each source maps to
# the same subject with the partition after the client's token. The sources must not
# overlap (nats-server takes the first mapping that matches, in no fixed order) and must
# leave out wot.agent.{c}.req (the hub's requests to the agent).
_SOURCES = (
    ("agent", "hello"),
    ("agent", "td"),
    ("agent", "td.*"),
    ("agent", "prop.>"),
    ("agent", "event.>"),
    ("agent", "resp"),
    ("client", "req"),
    ("client", "req.*"),
)


@functools.lru_cache(maxsize=65_536)
def partition_of(token: str, count: int) -> int:
    """The partition of a client token, as nats-server's ``partition(count, ...)``
    computes it: FNV-1a 32 of the token's bytes, modulo ``count``."""
    value = 0x811C9DC5
    for byte in token.encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value % count


def mappings(count: int) -> str:
    """The ``mappings`` block of the clients' account for ``count`` workers."""
    lines = []
    for kind, rest in _SOURCES:
        source = f"{PREFIX}.{kind}.*.{rest}"
        wildcards = iter(range(2, 10))
        tail = ".".join(
            f"{{{{wildcard({next(wildcards)})}}}}" if token == "*" else token
            for token in rest.split(".")
        )
        destination = f"{PREFIX}.{kind}.{{{{wildcard(1)}}}}.{{{{partition({count},1)}}}}.{tail}"
        lines.append(f'      "{source}": "{destination}"')
    return "mappings: {\n" + "\n".join(lines) + "\n    }"


def subscriptions(index: int) -> list[str]:
    """What worker ``index`` (from 0) subscribes to: its partition of every source."""
    return [
        f"{PREFIX}.agent.*.{index}.>",
        f"{PREFIX}.client.*.{index}.req",
        f"{PREFIX}.client.*.{index}.req.*",
    ]


def unmapped(subject: str) -> str:
    """The subject as the client sent it: without the partition token."""
    head, _, rest = subject.partition(".")  # wot
    kind, _, rest = rest.partition(".")
    client, _, rest = rest.partition(".")
    return f"{head}.{kind}.{client}.{rest.partition('.')[2]}"


def mapped(subject: str, count: int) -> str:
    """A client -> hub subject as nats-server maps it (for the callout's permissions:
    they are checked on the mapped subject)."""
    head, kind, client, rest = subject.split(".", 3)
    return f"{head}.{kind}.{client}.{partition_of(client, count)}.{rest}"
