"""Property reports through the router, in one process (bench/digitwin.py and
bench/history.py measure them): an agent's report as JSON bytes, parsed by the strict
envelope parser, through the router to one subscriber, which takes it from its outbox
and encodes it as JSON."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from _harness import unshadow_packages

unshadow_packages()
from core.authz import Client  # noqa: E402
from core.router import Router  # noqa: E402
from vocabulary.envelope import parse_message  # noqa: E402


class AllowAll:
    """The benchmarks measure routing, not the rule table."""

    def authorize(self, client, operation, thing_id, owner):
        return None

    def overrides_ownership(self, client):
        return False


def report_wire(thing_id: str, count: int) -> list[bytes]:
    """``count`` reports of the Thing's ``temperature``, as an agent sends them."""
    return [
        orjson.dumps(
            {
                "messageType": "notification",
                "operation": "observeproperty",
                "thingID": thing_id,
                "name": "temperature",
                "value": 20 + (i % 100) / 10,
            }
        )
        for i in range(count)
    ]


def property_reports(
    router: Router, td: dict[str, Any], count: int
) -> Callable[[], Awaitable[int]]:
    """An agent registers ``td`` and a viewer observes its ``temperature``; the returned
    coroutine function sends ``count`` reports through the router, takes each
    notification from the viewer's outbox as JSON, and returns ``count``."""
    agent = router.connect(Client("agent", "agent"), "bench")
    register = {"messageType": "request", "operation": "updatething", "input": td}
    router.handle(agent, parse_message(register, "agent"))
    subscriber = router.connect(Client("viewer", "viewer"), "bench")
    observe = {"messageType": "request", "operation": "observeproperty", "thingID": td["id"]}
    router.handle(subscriber, parse_message({**observe, "name": "temperature"}, "viewer"))
    wire = report_wire(td["id"], count)

    async def through_router() -> int:
        delivered = 0
        for raw in wire:
            router.handle(agent, parse_message(raw, "agent"))
            while subscriber.pending():
                _, message = await subscriber.next()
                message.to_json()
                delivered += 1
        assert delivered == count, delivered
        return count

    return through_router
