"""Configuration restore (docs/digitwin.md): a Thing whose TD says
``"wothub:restoreConfiguration": true``, or for which an admin turned it on
(``urn:wothub:restore``), gets the last values of its writable properties when its
agent comes online, so a device that lost them gets them back. The device is a real
WebSocket agent (``running.device``) that comes back empty; the manager writes and the
admin sets over HTTPS."""

from __future__ import annotations

import asyncio

import pytest

from auth.accounts import HUB_ID
from digitwin.state import RESTORE_TERM
from tests.support.devices import AGENT, answer, register_all, report
from tests.support.http import url
from tests.support.problems import problem_of
from tests.support.tds import lamp_td
from tests.waiting import until
from vocabulary.things import RESTORE_THING

pytestmark = pytest.mark.timeout(60)

RESTORED = "urn:dev:ops:restored-lamp"
PLAIN = "urn:dev:ops:plain-lamp"


async def write(session, thing: str, name: str, value) -> int:
    async with session.put(url(thing, "properties", name), json=value) as response:
        return response.status


async def take_writes(device, count: int) -> list:
    return [await device.next_request() for _ in range(count)]


async def test_a_device_that_comes_back_empty_gets_its_configuration(running):
    device = await register_all(
        running, AGENT, [lamp_td(RESTORED, **{RESTORE_TERM: True}), lamp_td(PLAIN)]
    )
    for thing in (RESTORED, PLAIN):
        await report(device, "on", True, thing)
        await report(device, "brightness", 40, thing)
        await report(device, "model", "L-1", thing)  # read-only: never restored
    manager = running.add_client("mia", "consumer", "manager")
    async with running.session(manager) as session:
        # Accepted and not reported back (a device that does not report its writes):
        # the accepted value is newer than the reported one.
        async def accept():
            (delivered,) = await take_writes(device, 1)
            await answer(device, delivered, status="completed")

        status, _ = await asyncio.gather(write(session, RESTORED, "brightness", 70), accept())
        assert status == 204
        await device.close()
        # Queued while it is away: sent as it is, not restored as well.
        assert await write(session, RESTORED, "on", False) == 202

        device = await running.device(AGENT)  # back, with nothing configured
        # Every request for it was sent before connect() returned.
        assert device.pending() == 2
        queued, restored = await take_writes(device, 2)
        assert (queued.thing_id, queued.name, queued.input) == (RESTORED, "on", False)
        assert (restored.thing_id, restored.name, restored.input) == (RESTORED, "brightness", 70)
        assert restored.sender_id == HUB_ID
        state = running.hub.twin.read_state(RESTORED)
        assert state["delta"] == {"on": False, "brightness": 70}
        for delivered in (queued, restored):
            await report(device, delivered.name, delivered.input, delivered.thing_id)
            await answer(device, delivered, status="completed")
        await until(lambda: running.hub.twin.read_state(RESTORED)["delta"] == {})

        # Reported since, and back again: the reported values are the newer ones.
        await report(device, "brightness", 55, RESTORED)
        await device.close()
        device = await running.device(AGENT)
        restored = sorted((r.name, r.input) for r in await take_writes(device, device.pending()))
        assert restored == [("brightness", 55), ("on", False)]


async def test_nothing_is_restored_while_a_restore_is_still_open(running):
    device = await register_all(running, AGENT, [lamp_td(RESTORED, **{RESTORE_TERM: True})])
    await report(device, "brightness", 40, RESTORED)
    await device.close()
    device = await running.device(AGENT)
    (first,) = await take_writes(device, device.pending())
    await device.close()  # gone before answering: the restore is delivered again, once
    device = await running.device(AGENT)
    (again,) = await take_writes(device, device.pending())
    assert (again.action_id, again.input) == (first.action_id, 40)


def set_restore(session, thing: str, restore):
    setting = {"thingID": thing, "restore": restore}
    return session.post(url(RESTORE_THING, "actions", "setSetting"), json=setting)


async def test_an_admin_turns_restore_on_or_off_whatever_the_td_says(running):
    device = await register_all(
        running, AGENT, [lamp_td(RESTORED, **{RESTORE_TERM: True}), lamp_td(PLAIN)]
    )
    for thing in (RESTORED, PLAIN):
        await report(device, "brightness", 40, thing)
    manager = running.add_client("mia", "consumer", "manager")
    admin = running.add_client("ada", "consumer", "admin")
    async with running.session(manager) as session, set_restore(session, PLAIN, True) as refused:
        await problem_of(refused, 403)  # an admin's setting only
    async with running.session(admin) as session:
        for thing, restore in ((PLAIN, True), (RESTORED, False)):
            async with set_restore(session, thing, restore) as response:
                assert response.status == 200, await response.text()
                described = await response.json()
            assert described == {
                "thingID": thing,
                "restore": restore,
                "registered": True,
                "effective": restore,
            }
        async with set_restore(session, PLAIN, "yes") as response:
            await problem_of(response, 400)

        await device.close()
        device = await running.device(AGENT)  # back, with nothing configured
        # Every request for it was sent before connect() returned: PLAIN's only.
        restored = await take_writes(device, device.pending())
        assert [(r.thing_id, r.name, r.input) for r in restored] == [(PLAIN, "brightness", 40)]
        for delivered in restored:
            await answer(device, delivered, status="completed")
        await until(lambda: not running.hub.twin.requests.open_for_thing(PLAIN))

        # The setting removed: each Thing's TD decides again.
        for thing in (PLAIN, RESTORED):
            async with set_restore(session, thing, None) as response:
                described = await response.json()
            assert (described["restore"], described["effective"]) == (None, thing == RESTORED)
        await device.close()
        device = await running.device(AGENT)
        restored = await take_writes(device, device.pending())
        assert [(r.thing_id, r.name, r.input) for r in restored] == [(RESTORED, "brightness", 40)]
