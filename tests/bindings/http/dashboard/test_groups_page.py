"""The groups pages in headless Chromium against a real hub: a manager defines a group
by @type, sees its table with the members' values kept current, and writes a property
to every member; a viewer sees the groups without the forms."""

from __future__ import annotations

import pytest

from tests.support.devices import register, report
from vocabulary.identity import Client

from .conftest import desk_lamp_td

pytestmark = pytest.mark.timeout(90)

LAMPS = ("urn:dev:desk:1", "urn:dev:desk:2")
DASH = "\N{EN DASH}"  # as in the pager: 1-2 of 2


async def test_define_a_group_see_its_table_and_write_to_every_member(running, open_dashboard):
    running.add_client("mia", "consumer", "manager")
    devices = []
    for n, thing_id in enumerate(LAMPS):
        device = await register(running, f"agent-{n}", desk_lamp_td(thing_id, f"Desk {n}"))
        await report(device, "brightness", 10 + n)
        devices.append(device)
    ui = await open_dashboard()
    await ui.login("mia")
    await ui.page.click("nav a[href='#/groups']")
    await ui.page.locator("#groups-body:has-text('No groups yet.')").wait_for()
    await ui.page.fill("#group-name", "desks")
    await ui.page.fill("#group-title", "Desk lamps")
    await ui.page.fill("#group-type", "Light")
    await ui.page.click("#group-form button[type=submit]")
    row = ui.page.locator("#groups-body tr[data-group=desks]")
    await row.locator("td:has-text('type = Light')").wait_for()
    await ui.shot("groups")

    await row.locator("a").click()
    await ui.page.locator("#group-title:has-text('Desk lamps')").wait_for()
    await ui.page.locator(f"#group-range:has-text('1{DASH}2 of 2')").wait_for()
    first = ui.page.locator(f'#group-table-body tr[data-id="{LAMPS[0]}"] [data-value=brightness]')
    await first.locator("text=10").wait_for()
    await ui.page.locator("#group-live.on").wait_for()
    await report(devices[0], "brightness", 55)  # kept current from the group's stream
    await first.locator("text=55").wait_for()

    await ui.page.select_option("#group-write-name", "brightness")
    await ui.page.fill("#group-write-value", "30")
    await ui.page.click("#group-write button[type=submit]")
    await ui.page.locator("#group-write-status:has-text('2 delivered')").wait_for()
    for device in devices:
        delivered = await device.next_request()
        assert (delivered.name, delivered.input, delivered.sender_id) == ("brightness", 30, "mia")
    await ui.shot("group")
    assert ui.errors == []


async def test_a_viewer_sees_groups_without_forms(running, open_dashboard):
    running.add_client("vera", "consumer", "viewer")
    running.add_thing("agent-0", desk_lamp_td(LAMPS[0], "Desk 0"))
    running.add_client("root", "consumer", "admin")
    running.hub.router.groups.define(Client("root", "admin"), "desks", {"members": [LAMPS[0]]})
    ui = await open_dashboard()
    await ui.login("vera")
    await ui.open("/#/group/desks")
    await ui.page.locator(f"#group-range:has-text('1{DASH}1 of 1')").wait_for()
    assert await ui.page.locator("#group-write").count() == 0
    await ui.open("/#/groups")
    await ui.page.locator("#groups-body tr[data-group=desks]").wait_for()
    assert await ui.page.locator("#group-form").count() == 0
    assert ui.errors == []
