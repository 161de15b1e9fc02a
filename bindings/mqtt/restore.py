"""Every twin's latest property values and TD written again as retained messages when
the hub starts, from the twin (the bucket store): what MQTT subscribers get on subscribe
then does not depend on nats-server's JetStream store having kept them (a wiped store
directory, a new external server; docs/mqtt.md).

The walk goes page by page in Thing id order: each page of ``BATCH`` Things is read
from the twin and written, then one round trip to the server (a flush) makes sure the
server took it before the next. So the hub keeps serving between pages, the writes in
flight stay bounded, and the start does not wait for it. A live value that comes for a
topic meanwhile is newer, and the restore leaves that topic alone
(``RetainedWriter.restore``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import orjson

from core.contract import Core
from vocabulary import operations as ops
from vocabulary.channels import NATS

from .retained import RetainedWriter

log = logging.getLogger("wothub.mqtt")

BATCH = 5  # Things per page: a few milliseconds of the loop, few objects alive at once


async def restore(
    router: Core,
    writer: RetainedWriter,
    flush: Callable[[], Awaitable[None]],
    batch: int = BATCH,
) -> tuple[int, int]:
    """Write every Thing's twin TD and latest property values as retained; returns
    (Things, retained messages written)."""
    things = written = 0
    after: str | None = None
    writer.start_restore()
    try:
        while page := router.twins_after(after, batch):
            for td, values in page:
                try:
                    written += await _restore_thing(writer, td, values)
                except ValueError:  # a name no subject can carry (the live relay skips it too)
                    log.warning("cannot write the retained values of %s", td["id"])
            things += len(page)
            after = page[-1][0]["id"]
            await flush()
    finally:
        writer.end_restore()
    return things, written


async def _restore_thing(writer: RetainedWriter, td: dict, values: dict) -> int:
    thing_id = td["id"]
    written = 0
    subject = NATS.notification(ops.UPDATE_THING, thing_id, None)
    if subject is not None:
        written += await writer.restore(subject, orjson.dumps(td))
    for name, value in values.items():
        subject = NATS.notification(ops.OBSERVE_PROPERTY, thing_id, name)
        if subject is not None:
            written += await writer.restore(subject, orjson.dumps(value))
    return written
