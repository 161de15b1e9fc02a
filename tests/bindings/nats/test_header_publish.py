"""The twin relay's own HPUB writer (bindings/nats/header_publish.py) against the
installed nats-py and a real nats-server: what it writes arrives as ``publish`` would
send it, in order with what ``publish`` sends, and it steps aside when it must."""

from __future__ import annotations

from bindings.nats.header_publish import HeaderPublisher, usable
from tests.waiting import until
from vocabulary import twin_wire
from vocabulary.envelope import NOTIFICATION, Message
from vocabulary.operations import OBSERVE_PROPERTY

from .conftest import Watched


async def test_the_installed_nats_py_has_what_it_writes_to(nats_hub):
    assert usable(nats_hub.binding._nc)


async def test_messages_arrive_with_their_headers_in_order_with_publish(nats_hub):
    nc = nats_hub.binding._nc
    publisher = HeaderPublisher(nc)
    got: list = []

    async def keep(msg) -> None:
        got.append(msg)

    sub = await nc.subscribe("test.header.publish", cb=keep)
    await nc.flush()
    for i in range(200):
        message = Message(NOTIFICATION, OBSERVE_PROPERTY, "urn:x", "level", value=i)
        block = twin_wire.header_block(message)
        if i % 3 == 0:  # mixed with nats-py's own publish: one stream, one order
            await nc.publish("test.header.publish", b"%d" % i, headers=twin_wire.headers(message))
        else:
            assert publisher.try_publish("test.header.publish", b"%d" % i, block)
    await until(lambda: len(got) == 200)
    await sub.unsubscribe()
    assert [int(msg.data) for msg in got] == list(range(200))
    for msg in got:
        assert set(msg.headers) == {twin_wire.TIMESTAMP, twin_wire.MESSAGE_ID}


async def test_it_steps_aside_when_not_connected_or_too_large(nats_hub):
    nc = nats_hub.binding._nc
    publisher = HeaderPublisher(nc)
    big = b"x" * (nc.max_payload + 1)
    assert not publisher.try_publish("test.header.big", big, b"NATS/1.0\r\n\r\n")

    nats_hub.add("header-viewer")
    watched = await Watched.connect(nats_hub, "header-viewer")
    await watched.close()
    assert not HeaderPublisher(watched.nc).try_publish("x.y", b"1", b"NATS/1.0\r\n\r\n")


async def test_consecutive_commands_share_one_buffered_item_until_publish_writes(nats_hub):
    """One item (one TLS record) for the commands written between two flushes; a
    ``publish`` in between starts a new item, so the order on the wire is kept."""
    nc = nats_hub.binding._nc
    publisher = HeaderPublisher(nc)
    got: list = []

    async def keep(msg) -> None:
        got.append(int(msg.data))

    sub = await nc.subscribe("test.header.batch", cb=keep)
    await nc.flush()
    block = b"NATS/1.0\r\n\r\n"
    before = len(nc._pending)  # nothing awaited from here to the last check
    for i in range(3):
        assert publisher.try_publish("test.header.batch", b"%d" % i, block)
    assert len(nc._pending) == before + 1
    await nc.publish("test.header.batch", b"3")  # after the item: 4 and 5 need a new one
    for i in range(4, 6):
        assert publisher.try_publish("test.header.batch", b"%d" % i, block)
    await until(lambda: len(got) == 6)
    await sub.unsubscribe()
    assert got == list(range(6))
