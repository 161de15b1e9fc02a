"""SSE streams write the notifications ready at once as one chunk, a batch over
``BATCH_BYTES`` as several (bindings/common/outbox.py): every stream still gets every event,
whole, in order, with its own name and id. The values reach the router as a burst (an
agent on the router's interface, as a binding hands messages over), so they are all
queued before any stream writes; the readers are real aiohttp streams."""

from __future__ import annotations

import pytest

from bindings.common.outbox import BATCH_BYTES
from tests.support.http import url
from tests.support.sse import stream
from tests.support.tds import SIGN, sign_td

pytestmark = pytest.mark.timeout(60)

COUNT = 40
LARGE = 30_000  # every 4th value: ten of them, over BATCH_BYTES together


def value(n: int) -> str:
    return f"{n:03d}" + "v" * (LARGE if n % 4 == 0 else 5)


async def test_a_burst_arrives_whole_and_in_order_on_every_stream(running, viewer):
    assert (COUNT // 4) * LARGE > BATCH_BYTES  # the batch needs more than one chunk
    agent = running.agent("sign-agent")
    request = {"messageType": "request", "operation": "updatething", "correlationID": "r"}
    assert running.send(agent, {**request, "input": sign_td()}).error is None
    epoch = running.hub.router.log.epoch
    async with (
        stream(viewer, url(SIGN, "properties", "text")) as one,
        stream(viewer, url(SIGN, "properties")) as every,
        stream(viewer, url(SIGN, "events", "said")) as said,
    ):
        for n in range(COUNT):
            report = {"messageType": "notification", "thingID": SIGN}
            running.send(agent, {**report, "operation": "observeproperty", "name": "text",
                                 "value": value(n)})  # fmt: skip
            if n % 10 == 9:  # an event among them, on its own stream only
                running.send(agent, {**report, "operation": "subscribeevent", "name": "said",
                                     "value": f"event {n}"})  # fmt: skip
        for events in (one, every):
            got = await events.take(COUNT)
            assert [(e["event"], e["data"]) for e in got] == [
                ("text", value(n)) for n in range(COUNT)
            ]
            seqs = [int(e["id"].removeprefix(f"{epoch}-")) for e in got]
            assert seqs == sorted(seqs) and len(set(seqs)) == COUNT
        events = await said.take(COUNT // 10)
        assert [(e["event"], e["data"]) for e in events] == [
            ("said", f"event {n}") for n in range(9, COUNT, 10)
        ]
