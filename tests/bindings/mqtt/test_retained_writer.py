"""bindings/mqtt/retained.py: a subject's first value is written at once, a burst after
it only by its newest value at the window's end, and what is pending on close too."""

from __future__ import annotations

from bindings.mqtt.bus import RETAINED_PREFIX
from bindings.mqtt.retained import RetainedWriter
from tests.waiting import until


async def test_bursts_write_the_first_and_the_newest_value_of_each_subject():
    written: list[tuple[str, bytes]] = []

    async def publish(subject: str, payload: bytes, headers: dict[str, str]) -> None:
        written.append((subject.removeprefix(RETAINED_PREFIX), payload))

    writer = RetainedWriter(publish, interval=0.05)
    await writer.put("wot.twin.a.prop.p", b"0")
    assert written == [("wot.twin.a.prop.p", b"0")]  # at once
    for value in range(1, 100):
        await writer.put("wot.twin.a.prop.p", str(value).encode())
    await writer.put("wot.twin.b.prop.p", b"x")  # another subject: at once too
    assert written[1:] == [("wot.twin.b.prop.p", b"x")]
    await until(lambda: len(written) == 3, 5)
    assert written[2] == ("wot.twin.a.prop.p", b"99")  # only the newest of the burst
    await until(lambda: not writer.holding, 5)  # a quiet window ends it

    await writer.put("wot.twin.a.prop.p", b"100")  # quiet again: at once
    await writer.put("wot.twin.a.prop.p", b"")  # deleted within the window
    await writer.close()
    assert written[3:] == [("wot.twin.a.prop.p", b"100"), ("wot.twin.a.prop.p", b"")]


async def test_a_restore_leaves_alone_the_subjects_that_got_a_live_value():
    written: list[tuple[str, bytes]] = []

    async def publish(subject: str, payload: bytes, headers: dict[str, str]) -> None:
        written.append((subject.removeprefix(RETAINED_PREFIX), payload))

    writer = RetainedWriter(publish, interval=0.05)
    writer.start_restore()
    await writer.put("wot.twin.a.prop.p", b"2")  # live, after the restore read 1
    assert not await writer.restore("wot.twin.a.prop.p", b"1")
    assert await writer.restore("wot.twin.b.prop.p", b"7")
    writer.end_restore()
    assert written == [("wot.twin.a.prop.p", b"2"), ("wot.twin.b.prop.p", b"7")]
    await writer.close()
