"""A Thing's page in headless Chromium against a real hub: form messages that follow
their request to its end, property writes listed under Requests with who asked, and
write inputs that follow the live value unless the user is editing them."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import pytest

from tests.support.devices import AGENT, answer, register, report

from .conftest import LAMP, desk_lamp_td, thing_hash

pytestmark = pytest.mark.timeout(90)


async def open_thing(running, open_dashboard, client_id):
    ui = await open_dashboard()
    await ui.login(client_id)
    await ui.page.goto(running.url + thing_hash())
    await ui.page.wait_for_selector("#thing-title:has-text('Desk lamp')")
    return ui


async def test_form_messages_follow_the_request_to_its_end(running, open_dashboard):
    running.add_client("mona", "consumer", "manager")
    conn = await register(running, td=desk_lamp_td())
    await conn.close()  # offline: every request waits in the hub
    ui = await open_thing(running, open_dashboard, "mona")

    brightness = ui.page.locator('[data-property="brightness"]')
    await brightness.locator("input").fill("75")
    await brightness.locator("button[type=submit]").click()
    await brightness.locator(".form-message:has-text('Queued')").wait_for()
    on = ui.page.locator('[data-property="on"]')
    await on.locator("select").select_option("true")
    await on.locator("button[type=submit]").click()
    await on.locator(".form-message:has-text('Queued')").wait_for()
    fade = ui.page.locator('[data-action="fade"]')
    await fade.locator('[data-field="to"] input').fill("30")
    await fade.locator("button[type=submit]").click()
    await fade.locator(".form-message:has-text('Queued')").wait_for()
    await ui.shot("queued")

    conn = await running.device(AGENT)  # back: it takes the three in the order they were asked
    write, switch, action = [await conn.next_request(10) for _ in range(3)]
    assert [write.name, switch.name, action.name] == ["brightness", "on", "fade"]
    await answer(conn, write, status="completed")
    problem = {"type": "about:blank", "title": "Conflict", "status": 409, "detail": "jammed"}
    await answer(conn, switch, status="failed", error=problem)
    await answer(conn, action, status="completed", output={"level": 30})

    await brightness.locator(".form-message:text-is('Written.')").wait_for()
    await on.locator(".form-message.error:has-text('jammed')").wait_for()
    assert "Queued" not in await on.locator(".form-message").inner_text()
    await fade.locator(".form-message:text-is('Completed.')").wait_for()
    assert "level" in await fade.locator("pre.result").inner_text()
    await ui.shot("ended")
    assert ui.errors == []


async def test_property_writes_are_listed_under_requests(running, open_dashboard):
    running.add_client("mona", "consumer", "manager")
    conn = await register(running, td=desk_lamp_td())
    await conn.close()
    ui = await open_thing(running, open_dashboard, "mona")
    brightness = ui.page.locator('[data-property="brightness"]')
    await brightness.locator("input").fill("75")
    await brightness.locator("button[type=submit]").click()
    row = ui.page.locator("#requests-body tr[data-kind=write]")
    await row.locator(".state-pending").wait_for()
    assert "brightness" in await row.inner_text()
    assert "75" in await row.inner_text()

    conn = await running.device(AGENT)
    delivered = await conn.next_request(10)
    assert (delivered.name, delivered.input) == ("brightness", 75)
    await answer(conn, delivered, status="completed")
    await row.locator(".state-completed").wait_for()
    await ui.shot("write-listed")
    assert ui.errors == []


async def test_requests_say_who_asked(running, open_dashboard):
    running.add_client("mona", "consumer", "manager")
    otto = running.add_client("otto", "consumer", "operator")
    conn = await register(running, td=desk_lamp_td())
    await conn.close()
    ui = await open_thing(running, open_dashboard, "mona")
    header = ui.page.locator("#requests thead")
    assert "Requested by" in await header.inner_text()

    fade = ui.page.locator('[data-action="fade"]')
    await fade.locator('[data-field="to"] input').fill("30")
    await fade.locator("button[type=submit]").click()
    async with running.session(otto) as http:  # someone else, elsewhere
        path = "/things/" + quote(LAMP, safe="") + "/actions/fade"
        async with http.post(path, json={"to": 10}, headers={"Prefer": "respond-async"}) as r:
            assert r.status == 201, await r.text()
            by_otto = (await r.json())["id"]
    otto_row = ui.page.locator(f'#requests-body tr[data-request="{by_otto}"]')
    await otto_row.locator(".requested-by:text-is('otto')").wait_for()
    mona_row = ui.page.locator(f'#requests-body tr[data-request]:not([data-request="{by_otto}"])')
    await mona_row.locator(".requested-by:text-is('mona')").wait_for()
    await ui.shot("who-asked")
    assert ui.errors == []


async def test_a_write_input_follows_the_value_unless_being_edited(running, open_dashboard):
    from playwright.async_api import expect  # installed: the browser fixture checked

    running.add_client("mona", "consumer", "manager")
    conn = await register(running, td=desk_lamp_td())
    await report(conn, "brightness", 40)
    await report(conn, "on", False)
    ui = await open_thing(running, open_dashboard, "mona")
    await ui.page.wait_for_selector("#live-state.on")
    brightness = ui.page.locator('[data-property="brightness"]')
    field = brightness.locator("input")
    switch = ui.page.locator('[data-property="on"] select')
    await brightness.locator(".value:text-is('40')").wait_for()
    await expect(field).to_have_value("40")

    await report(conn, "brightness", 55)  # live: the input follows
    await report(conn, "on", True)
    await expect(field).to_have_value("55")
    await expect(switch).to_have_value("true")

    await field.fill("60")  # the user is typing: a new value leaves the input alone
    await report(conn, "brightness", 65)
    await brightness.locator(".value:text-is('65')").wait_for()
    assert await field.input_value() == "60"
    await ui.page.locator("#thing-title").click()  # still a change not sent: kept
    await report(conn, "brightness", 70)
    await brightness.locator(".value:text-is('70')").wait_for()
    assert await field.input_value() == "60"
    await field.press("Escape")  # the change dropped: the value as it is
    await expect(field).to_have_value("70")
    await field.fill("60")

    device = asyncio.create_task(conn.next_request(10))  # sent: it follows again
    await brightness.locator("button[type=submit]").click()
    delivered = await device
    assert (delivered.name, delivered.input) == ("brightness", 60)
    await answer(conn, delivered, status="completed")
    await report(conn, "brightness", 60)
    await brightness.locator(".form-message:text-is('Written.')").wait_for()
    await report(conn, "brightness", 80)
    await expect(field).to_have_value("80")
    await ui.shot("follows")
    assert ui.errors == []


async def test_desired_and_declined_writes_follow_the_state_live(running, open_dashboard):
    token = running.add_client("mona", "consumer", "manager")
    conn = await register(running, td=desk_lamp_td())
    await report(conn, "brightness", 40)
    await conn.close()
    ui = await open_thing(running, open_dashboard, "mona")
    brightness = ui.page.locator('[data-property="brightness"]')
    await brightness.locator(".value:text-is('40')").wait_for()

    # Written by someone else (not this page's form): the state stream tells the page.
    path = f"/things/{quote(LAMP, safe='')}/properties/brightness"
    async with running.session(token) as session, session.put(path, json=75) as response:
        assert response.status == 202
    await brightness.locator(".desired:has-text('75')").wait_for()
    await ui.page.wait_for_selector('[data-property="brightness"].in-delta')

    conn = await running.device(AGENT)  # back: it refuses the write
    delivered = await conn.next_request(10)
    problem = {"type": "about:blank", "title": "Conflict", "status": 409, "detail": "jammed"}
    await answer(conn, delivered, status="failed", error=problem)
    declined = brightness.locator(".declined")
    await declined.locator("strong:text-is('75')").wait_for()
    assert "jammed" in await declined.inner_text() and "mona" in await declined.inner_text()
    await brightness.locator(".desired").wait_for(state="hidden")
    assert await ui.page.locator('[data-property="brightness"].in-delta').count() == 0
    await ui.shot("declined")

    assert ui.errors == []

    again = await open_thing(running, open_dashboard, "mona")  # read from the state document
    brightness = again.page.locator('[data-property="brightness"]')
    await brightness.locator(".declined strong:text-is('75')").wait_for()
    assert again.errors == []
